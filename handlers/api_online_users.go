package handlers

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
)

// onlineUserJSON is one element of GET /api/users/online/, in the original
// app's shape.
type onlineUserJSON struct {
	// ID is the public id: the host's id for a host user (a number when
	// it is a whole number, else a string), the row id of a local account
	// ("local:N" when host users are on). See idPolicy.
	ID              json.RawMessage `json:"id"`
	Username        string          `json:"username"`
	ProfileImageURL *string         `json:"profile_image_url"`
	IsOnline        bool            `json:"is_online"`
	LastSeen        *string         `json:"last_seen"`
	LastActivity    *string         `json:"last_activity"`
	// Mode (online, away or dnd), StatusText and StatusEmoji came with
	// issue 12; the status fields are empty strings when none is set.
	Mode        string `json:"mode"`
	StatusText  string `json:"status_text"`
	StatusEmoji string `json:"status_emoji"`
}

// handleAPIOnlineUsers lists every online user except the requester, as a
// plain (unpaginated) JSON array ordered by username. Who is online comes
// from the engine, the source of truth; profiles come from the database.
// An avatar uploaded here is given as an absolute URL on this server, as
// the original app's serializer did. Invisible users are left out, and
// users who show their presence to friends only or to nobody unless the
// requester may see them.
func handleAPIOnlineUsers(s Store, engine *presence.Engine, idp idPolicy, base *baseURL, friends FriendChecker) echo.HandlerFunc {
	return func(c echo.Context) error {
		out, err := onlineList(c, s, idp, base, friends, engine.OnlineAll())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// onlineList is the JSON of the users of all (online, hidden ones
// included) whom the requester may see, the requester left out, in the
// order given: the online list, and a room's members
// (handleAPIRoomsOnline).
func onlineList(c echo.Context, s Store, idp idPolicy, base *baseURL, friends FriendChecker, all []presence.Status) ([]onlineUserJSON, error) {
	me, _ := currentUser(c)
	ctx := c.Request().Context()
	online := all[:0]
	for _, st := range all {
		if st.UserID != me.ID && viewerCanSee(ctx, friends, me.ID, st) {
			online = append(online, st)
		}
	}
	ids := make([]int64, 0, len(online))
	for _, st := range online {
		ids = append(ids, st.UserID)
	}
	users, err := s.UsersByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]onlineUserJSON, 0, len(ids))
	for _, st := range online {
		u, ok := users[st.UserID]
		if !ok || st.UserID == me.ID {
			continue
		}
		item := onlineUserJSON{
			ID:           restID(idp.public(u)),
			Username:     u.Username,
			IsOnline:     true,
			LastSeen:     jsonTime(u.LastSeen),
			LastActivity: jsonTime(st.LastActivity),
			Mode:         string(st.Mode),
			StatusText:   st.StatusText,
			StatusEmoji:  st.StatusEmoji,
		}
		if u.ProfileImageURL != "" {
			img := absoluteAvatar(base.of(c.Request()), u.ProfileImageURL)
			item.ProfileImageURL = &img
		}
		out = append(out, item)
	}
	return out, nil
}

// timeFormat is RFC 3339 in UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// jsonTime formats t for JSON, or nil (null) for the zero time.
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeFormat)
	return &s
}
