package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/avatar"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// Notices the settings page shows after a change (?done=...).
var settingsNotices = map[string]string{
	"avatar":         "Your avatar is updated.",
	"avatar-removed": "Your avatar is removed.",
	"local-time":     "Your local-time setting is saved.",
}

// settingsData loads what the settings page shows for the signed-in user.
func settingsData(c echo.Context, s Store, prof profileSetup) (views.SettingsData, error) {
	me, _ := currentUser(c) // loaded from the database by this request's auth
	lt, err := s.LocalTimeOf(c.Request().Context(), me.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return views.SettingsData{}, err
	}
	if tz, ok := prof.zones.Zone(me.ID); ok {
		lt.Zone = tz // reported in this run, maybe not written yet
	}
	return views.SettingsData{
		WidgetUser:     views.WidgetUser{ID: views.PublicID(me.ID, me.ExternalID), Username: me.Username, ProfileImageURL: me.ProfileImageURL, Host: me.IsHost()},
		AvatarFromHost: me.IsHost(),
		AvatarsOff:     !prof.avatars.enabled(),
		MaxAvatarMiB:   avatar.MaxBytes >> 20,
		TimeZone:       lt.Zone,
		ShowLocalTime:  lt.Show,
	}, nil
}

// handleSettingsPage shows GET /settings: the signed-in user's settings,
// one section per feature.
func handleSettingsPage(s Store, prof profileSetup) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, err := settingsData(c, s, prof)
		if err != nil {
			return err
		}
		d.Notice = settingsNotices[c.QueryParam("done")]
		return render(c, http.StatusOK, views.SettingsPage(pageFor(c, "Settings"), d))
	}
}

// settingsRefused answers a refused settings form: the settings page again
// with the reason in the section, under the error's status; clients that
// want JSON get {"detail"}.
func settingsRefused(c echo.Context, s Store, prof profileSetup, section string, err error) error {
	var he *echo.HTTPError
	if !errors.As(err, &he) || wantsJSON(c.Request()) {
		return err
	}
	d, derr := settingsData(c, s, prof)
	if derr != nil {
		return err
	}
	d.Error, d.ErrorSection = he.Message.(string), section
	return render(c, he.Code, views.SettingsPage(pageFor(c, "Settings"), d))
}

// handleAvatarUpload takes POST /settings/avatar (multipart, field
// "avatar"): the image is checked, re-encoded and becomes the user's
// avatar; 303 back to the settings page. Refusals: 413 over the size
// limit, 415 not an accepted image, 400 unreadable or absurd dimensions,
// 403 for a host user, 404 when uploads are off, 429 past the upload rate
// (avatarUploadBurst, then avatarUploadsPerHour).
func handleAvatarUpload(s Store, prof profileSetup) echo.HandlerFunc {
	a := prof.avatars
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		err := func() error {
			switch {
			case !a.enabled():
				return httpError(http.StatusNotFound, "this server does not keep uploaded avatars")
			case me.IsHost():
				return httpError(http.StatusForbidden, "your avatar comes from the site you signed in with; change it there")
			}
			if ok, wait := a.uploads.Allow(strconv.FormatInt(me.ID, 10)); !ok {
				retryAfter(c, wait)
				return httpError(http.StatusTooManyRequests, "too many uploads; try again later")
			}
			data, err := readAvatarUpload(c)
			if err != nil {
				return err
			}
			png, err := a.process(c.Request().Context(), data)
			switch {
			case errors.Is(err, avatar.ErrTooLarge):
				return httpError(http.StatusRequestEntityTooLarge, err.Error())
			case errors.Is(err, avatar.ErrUnsupported):
				return httpError(http.StatusUnsupportedMediaType, err.Error())
			case errors.Is(err, avatar.ErrDimensions):
				return httpError(http.StatusBadRequest, err.Error())
			case errors.Is(err, avatar.ErrCorrupt):
				return httpError(http.StatusBadRequest, avatar.ErrCorrupt.Error())
			case err != nil:
				return err
			}
			return avatarSetError(a.set(c.Request().Context(), me.ID, png))
		}()
		if err != nil {
			return settingsRefused(c, s, prof, "avatar", err)
		}
		return c.Redirect(http.StatusSeeOther, "/settings?done=avatar")
	}
}

// handleAvatarRemove takes POST /settings/avatar/remove: the user goes
// back to the initial; 303 back to the settings page.
func handleAvatarRemove(s Store, prof profileSetup) echo.HandlerFunc {
	a := prof.avatars
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		err := func() error {
			switch {
			case !a.enabled():
				return httpError(http.StatusNotFound, "this server does not keep uploaded avatars")
			case me.IsHost():
				return httpError(http.StatusForbidden, "your avatar comes from the site you signed in with; change it there")
			}
			return avatarSetError(a.set(c.Request().Context(), me.ID, nil))
		}()
		if err != nil {
			return settingsRefused(c, s, prof, "avatar", err)
		}
		return c.Redirect(http.StatusSeeOther, "/settings?done=avatar-removed")
	}
}

// avatarSetError maps avatars.set's errors to answers.
func avatarSetError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return httpError(http.StatusForbidden, "this account's avatar cannot be changed here")
	}
	return err
}

// handleLocalTimeSetting takes POST /settings/local-time: show_local_time
// present (any value) shows the local time on the profile, absent hides
// it; 303 back to the settings page.
func handleLocalTimeSetting(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		show := c.FormValue("show_local_time") != ""
		if err := s.SetShowLocalTime(c.Request().Context(), me.ID, show); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/settings?done=local-time")
	}
}
