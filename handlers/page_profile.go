package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// handleProfilePage shows a user with their presence: online now (with
// their mode and status), or when they were last seen, as far as their
// visibility lets the viewer see; an invisible user is offline to all but
// themselves.
func handleProfilePage(s Store, engine *presence.Engine, friends FriendChecker) echo.HandlerFunc {
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
		return render(c, http.StatusOK, views.ProfilePage(pageFor(c, u.Username), d))
	}
}
