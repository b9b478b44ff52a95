package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// userPresenceJSON is the answer of GET /api/users/{username}/presence/.
type userPresenceJSON struct {
	onlineUserJSON
	// LastSeenAgo is last_seen in words ("5 minutes ago"), null when
	// online, never seen, or hidden by the user's visibility.
	LastSeenAgo *string `json:"last_seen_ago"`
}

// handleAPIUserPresence answers GET /api/users/{username}/presence/: one
// user's presence as the requester may see it. An invisible user, or one
// whose visibility leaves the requester out, is offline; their last seen
// is null unless their visibility lets the requester see it.
func handleAPIUserPresence(s Store, engine *presence.Engine, idp idPolicy, friends FriendChecker) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		u, err := s.UserByName(ctx, c.Param("username"))
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such user")
		}
		if err != nil {
			return err
		}
		me, _ := currentUser(c)
		out := userPresenceJSON{onlineUserJSON: onlineUserJSON{ID: restID(idp.public(u)), Username: u.Username, Mode: string(presence.ModeOffline)}}
		if u.ProfileImageURL != "" {
			out.ProfileImageURL = &u.ProfileImageURL
		}
		if st, ok := engine.State(u.ID); ok && viewerCanSee(ctx, friends, me.ID, st) {
			out.IsOnline = st.Mode != presence.ModeInvisible
			out.Mode, out.StatusText, out.StatusEmoji = string(st.Mode), st.StatusText, st.StatusEmoji
			out.LastActivity = jsonTime(st.LastActivity)
		}
		if mayShowLastSeen(ctx, friends, me.ID, u.ID, engine.Settings(u.ID)) {
			out.LastSeen = jsonTime(u.LastSeen)
			if !out.IsOnline && out.LastActivity == nil {
				out.LastActivity = jsonTime(u.LastActivity)
			}
			if !out.IsOnline && !u.LastSeen.IsZero() {
				ago := agoText(engine.Clock().Now(), u.LastSeen)
				out.LastSeenAgo = &ago
			}
		}
		return c.JSON(http.StatusOK, out)
	}
}
