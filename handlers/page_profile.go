package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// handleProfilePage shows a local account by username with their
// presence: online now, or when they were last seen. Host users are not
// found here (their names are the host's and may repeat a local one):
// their page is /host/users/{id} (handleHostProfilePage).
func handleProfilePage(s Store, engine *presence.Engine, ids idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := s.UserByName(c.Request().Context(), c.Param("username"))
		if err == nil && u.IsHost() {
			err = store.ErrNotFound
		}
		return profile(c, engine, ids, u, err)
	}
}

// handleHostProfilePage shows a host user by the host's id for them: the
// id space of the host site, never mistaken for a local account's.
func handleHostProfilePage(s Store, engine *presence.Engine, ids idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathParam(c, "id")
		if err != nil {
			return err
		}
		u, err := s.HostUser(c.Request().Context(), id)
		return profile(c, engine, ids, u, err)
	}
}

// profile renders u's profile page, or the error of looking them up.
func profile(c echo.Context, engine *presence.Engine, ids idPolicy, u store.User, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return httpError(http.StatusNotFound, "no such user")
	}
	if err != nil {
		return err
	}
	d := views.ProfileData{
		WidgetUser: views.WidgetUser{ID: ids.public(u), Username: u.Username, ProfileImageURL: u.ProfileImageURL, Host: u.IsHost()},
		Online:     engine.IsOnline(u.ID),
		LastSeen:   u.LastSeen,
		Joined:     u.CreatedAt,
		IsAdmin:    u.IsAdmin,
		Now:        time.Now(),
	}
	return render(c, http.StatusOK, views.ProfilePage(pageFor(c, u.Username), d))
}

// pathParam is the path parameter name, unescaped once. Echo matches
// routes on the escaped path when the request has one (an id with '/' or
// '?' comes as %2F, %3F), else on the decoded path, where a literal '%'
// must stay as it is.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath != "" {
		u, err := url.PathUnescape(v)
		if err != nil {
			return "", httpError(http.StatusBadRequest, "the path is not validly escaped")
		}
		v = u
	}
	if store.ValidateExternalID(v) != nil {
		return "", httpError(http.StatusNotFound, "no such user")
	}
	return v, nil
}
