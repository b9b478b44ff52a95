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

// handleProfilePage shows a user with their presence: online now, or when
// they were last seen.
func handleProfilePage(s Store, engine *presence.Engine) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := s.UserByName(c.Request().Context(), c.Param("username"))
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such user")
		}
		if err != nil {
			return err
		}
		d := views.ProfileData{
			WidgetUser: views.WidgetUser{ID: u.ID, Username: u.Username, ProfileImageURL: u.ProfileImageURL},
			Online:     engine.IsOnline(u.ID),
			LastSeen:   u.LastSeen,
			Joined:     u.CreatedAt,
			IsAdmin:    u.IsAdmin,
			Now:        time.Now(),
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
