package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// historySessionJSON is one session of GET /api/users/{id}/history/.
type historySessionJSON struct {
	Start  string  `json:"start"`
	End    *string `json:"end"` // null: the session is still open
	Device string  `json:"device"`
}

// userHistoryJSON is the answer of GET /api/users/{id}/history/.
type userHistoryJSON struct {
	UserID   json.RawMessage      `json:"user_id"`
	Days     int                  `json:"days"`
	Sessions []historySessionJSON `json:"sessions"`
}

// historyDays is how many days of history the server keeps: Config.
// HistoryDays, where 0 means history is off.
type historyDays int

// since is the start of the period kept, seen from now.
func (d historyDays) since(now time.Time) time.Time {
	return now.Add(-time.Duration(d) * 24 * time.Hour)
}

// mayShowHistory reports whether viewer may see owner's online history:
// the owner always; their friends unless the owner shows their presence to
// nobody (history tells when they were last seen); nobody else, whatever
// their visibility (history is for friends, not the public).
func mayShowHistory(ctx context.Context, friends FriendChecker, viewer, owner int64, s presence.Settings) bool {
	if viewer == owner {
		return true
	}
	if s.Normalized().Visibility == presence.VisibleNobody {
		return false
	}
	return areFriends(ctx, friends, viewer, owner)
}

// handleAPIUserHistory answers GET /api/users/{id}/history/: the online
// sessions of the user with that public id (as in the JSON lists: a
// number for a local account, "local:N" for one in host mode, the host's
// id for a host user) over the last --history-days, oldest first, each
// {"start", "end" (null while open), "device"}. 200 for the user and
// their friends; 403 for anyone else (the user's existence is no secret:
// their profile is open to every signed-in user); 404 for an unknown id
// or when history is off (--history-days 0). Sessions are written within
// --flush-interval of their start and end.
func handleAPIUserHistory(s Store, engine *presence.Engine, idp idPolicy, friends FriendChecker, days historyDays) echo.HandlerFunc {
	return func(c echo.Context) error {
		if days <= 0 {
			return httpError(http.StatusNotFound, "history is turned off on this server (--history-days 0)")
		}
		raw, err := url.PathUnescape(c.Param("id"))
		if err != nil || raw == "" {
			return httpError(http.StatusBadRequest, "the user's id is missing from the path")
		}
		ctx := c.Request().Context()
		u, err := resolvePublicID(ctx, s, idp, raw)
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such user")
		}
		if err != nil {
			return err
		}
		me, _ := currentUser(c)
		if !mayShowHistory(ctx, friends, me.ID, u.ID, engine.Settings(u.ID)) {
			return httpError(http.StatusForbidden, "only the user and their friends may see their history")
		}
		sessions, err := s.History(ctx, u.ID, days.since(engine.Clock().Now()))
		if err != nil {
			return err
		}
		out := userHistoryJSON{UserID: restID(idp.public(u)), Days: int(days), Sessions: make([]historySessionJSON, 0, len(sessions))}
		for _, ss := range sessions {
			out.Sessions = append(out.Sessions, historySessionJSON{Start: *jsonTime(ss.Start), End: jsonTime(ss.End), Device: ss.Device})
		}
		return c.JSON(http.StatusOK, out)
	}
}
