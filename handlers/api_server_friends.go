package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
)

// maxFriendIDs is how many friends one PUT may set.
const maxFriendIDs = 1000

// handleServerPutFriends replaces the host user {id}'s friends with the
// host users in {"friend_ids": [...]} (host ids, numbers or strings, up to
// 1,000; [] removes them all): PUT /api/server/users/{id}/friends/.
//
// The host's social graph is the truth, so the call never fails on an id
// Presence has not seen yet: {id} and any unknown friend are created as
// host users named after their id (as PUT /api/server/users/{id}/ does
// without a username); their names and avatars arrive with their first
// JWT or a PUT of the user. Friendships are symmetric: adding B to A's set
// makes A B's friend, and dropping B from it drops A from B's. Friendships
// of the host user with local accounts (made by requests on Presence) are
// left alone: the server API speaks only of host users. Pending requests
// between new friends are dropped.
//
// 200 {"id", "friend_ids": [...], "added": [...], "removed": [...]}, all
// host ids in the REST shape; 400 for a bad id, an id listed as its own
// friend, or too many ids.
func handleServerPutFriends(s Store, idp idPolicy, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := hostIDParam(c)
		if err != nil {
			return err
		}
		var body struct {
			FriendIDs []json.RawMessage `json:"friend_ids"`
		}
		if err := readJSON(c, &body); err != nil {
			return err
		}
		if body.FriendIDs == nil {
			return httpError(http.StatusBadRequest, `want {"friend_ids": [...]}`)
		}
		if len(body.FriendIDs) > maxFriendIDs {
			return httpError(http.StatusBadRequest, "at most "+strconv.Itoa(maxFriendIDs)+" friend_ids")
		}
		ids := make([]string, 0, len(body.FriendIDs))
		seen := map[string]bool{}
		for _, raw := range body.FriendIDs {
			fid, err := jsonID(raw)
			if err != nil {
				return httpError(http.StatusBadRequest, "friend_ids must be whole numbers or strings of 1 to 255 bytes")
			}
			if fid == id {
				return httpError(http.StatusBadRequest, "a user cannot be their own friend")
			}
			if !seen[fid] {
				seen[fid] = true
				ids = append(ids, fid)
			}
		}
		ctx := c.Request().Context()
		me, _, err := s.UpsertHostUser(ctx, store.HostProfile{ExternalID: id})
		if err != nil {
			return err
		}
		known, err := s.HostUsers(ctx, ids)
		if err != nil {
			return err
		}
		byID := map[int64]store.User{}
		internal := make([]int64, 0, len(ids))
		for _, fid := range ids {
			u, ok := known[fid]
			if !ok {
				if u, _, err = s.UpsertHostUser(ctx, store.HostProfile{ExternalID: fid}); err != nil {
					return err
				}
			}
			byID[u.ID] = u
			internal = append(internal, u.ID)
		}
		added, removed, err := s.SetFriends(ctx, me.ID, internal, store.User.IsHost)
		if errors.Is(err, store.ErrSelfFriend) {
			return httpError(http.StatusBadRequest, "a user cannot be their own friend")
		}
		if err != nil {
			return err
		}
		for _, f := range added {
			feed.Befriended(me.ID, f)
		}
		for _, f := range removed {
			feed.Unfriended(me.ID, f)
		}
		gone, err := s.UsersByIDs(ctx, removed)
		if err != nil {
			return err
		}
		publicIDs := func(us []int64, from map[int64]store.User) []json.RawMessage {
			out := make([]json.RawMessage, 0, len(us))
			for _, u := range us {
				out = append(out, restID(idp.public(from[u])))
			}
			return out
		}
		sorted := append([]int64(nil), internal...)
		sort.Slice(sorted, func(i, j int) bool { return byID[sorted[i]].ExternalID < byID[sorted[j]].ExternalID })
		return c.JSON(http.StatusOK, map[string]any{
			"id":         restID(idp.public(me)),
			"friend_ids": publicIDs(sorted, byID),
			"added":      publicIDs(added, byID),
			"removed":    publicIDs(removed, gone),
		})
	}
}
