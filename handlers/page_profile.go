package handlers

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// handleProfilePage shows a user with their presence: online now (with
// their mode and status), or when they were last seen, as far as their
// visibility lets the viewer see (an invisible user is offline to all but
// themselves); and their local time, unless they hide it.
func handleProfilePage(s Store, engine *presence.Engine, zones *zoneRecorder, clock presence.Clock, friends FriendChecker) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := s.UserByName(c.Request().Context(), c.Param("username"))
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such user")
		}
		if err != nil {
			return err
		}
		me, _ := currentUser(c)
		ctx := c.Request().Context()
		st, online := engine.State(u.ID)
		online = online && viewerCanSee(ctx, friends, me.ID, st)
		d := views.ProfileData{
			WidgetUser:   views.WidgetUser{ID: u.ID, Username: u.Username, ProfileImageURL: u.ProfileImageURL},
			Online:       online,
			HideLastSeen: !mayShowLastSeen(ctx, friends, me.ID, u.ID, engine.Settings(u.ID)),
			LastSeen:     u.LastSeen,
			Joined:       u.CreatedAt,
			IsAdmin:      u.IsAdmin,
			Now:          engine.Clock().Now(),
		}
		if online {
			d.Mode, d.StatusText, d.StatusEmoji = string(st.Mode), st.StatusText, st.StatusEmoji
		}
		if err := addLocalTime(c, s, zones, clock, u.ID, &d); err != nil {
			return err
		}
		if me, ok := currentUser(c); ok && me.ID != u.ID {
			st, err := s.FriendStateOf(c.Request().Context(), me.ID, u.ID)
			if err != nil {
				return err
			}
			d.Friend = views.FriendButton{Show: true, UserID: u.ID, Username: u.Username,
				Friends: st.Friends, Outgoing: st.Outgoing, Incoming: st.Incoming}
		}
		return render(c, http.StatusOK, views.ProfilePage(pageFor(c, u.Username), d))
	}
}

// addLocalTime fills in the user's local time ("14:32", rendered for
// their zone) when their browser has reported one and they show it; the
// owner always sees their own, marked when hidden from others.
func addLocalTime(c echo.Context, s Store, zones *zoneRecorder, clock presence.Clock, id int64, d *views.ProfileData) error {
	lt, err := s.LocalTimeOf(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if tz, ok := zones.Zone(id); ok {
		lt.Zone = tz // reported in this run, maybe not written yet
	}
	me, _ := currentUser(c)
	own := me.ID == id
	if lt.Zone == "" || (!lt.Show && !own) {
		return nil
	}
	loc, err := time.LoadLocation(lt.Zone)
	if err != nil {
		return nil // a zone this build no longer knows: show nothing
	}
	d.LocalTime, d.TimeZone, d.LocalTimeHidden = clock.Now().In(loc).Format("15:04"), lt.Zone, !lt.Show
	return nil
}
