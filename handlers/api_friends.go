package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
)

// friendJSON is one friend in the JSON API: the online list's shape plus
// when the friendship began.
type friendJSON struct {
	onlineUserJSON
	FriendsSince *string `json:"friends_since"`
}

// friendRequestJSON is one pending request: its id (for accept/decline)
// and the other person.
type friendRequestJSON struct {
	ID              int64           `json:"id"`
	UserID          json.RawMessage `json:"user_id"`
	Username        string          `json:"username"`
	ProfileImageURL *string         `json:"profile_image_url"`
	CreatedAt       *string         `json:"created_at"`
}

// presenceJSON is u in the online list's shape, as a friend sees it: its
// state from the engine (online, last activity) when it is online to
// friends (online, from onlineMap), and no times when u shows nobody.
func presenceJSON(u store.User, online map[int64]presence.Status, idp idPolicy, e *presence.Engine) onlineUserJSON {
	out := onlineUserJSON{ID: restID(idp.public(u)), Username: u.Username,
		LastSeen: jsonTime(u.LastSeen), LastActivity: jsonTime(u.LastActivity)}
	if st, ok := online[u.ID]; ok {
		out.IsOnline, out.LastActivity = true, jsonTime(st.LastActivity)
		out.Mode, out.StatusText, out.StatusEmoji = string(st.Mode), st.StatusText, st.StatusEmoji
	} else if e.Settings(u.ID).LastSeenHidden() {
		out.LastSeen, out.LastActivity = nil, nil
	}
	if u.ProfileImageURL != "" {
		out.ProfileImageURL = &u.ProfileImageURL
	}
	return out
}

// onlineMap returns the online users as their friends see them, by id:
// invisible users and those who show nobody are left out, those who show
// friends only are in.
func onlineMap(e *presence.Engine) map[int64]presence.Status {
	m := map[int64]presence.Status{}
	for _, st := range e.OnlineAll() {
		if st.SeenByFriends() {
			m[st.UserID] = st
		}
	}
	return m
}

// friendsByPresence returns me's friends, online ones first, each part by
// username.
func friendsByPresence(ctx context.Context, s Store, e *presence.Engine, me int64) ([]store.Friend, map[int64]presence.Status, error) {
	fs, err := s.Friends(ctx, me)
	if err != nil {
		return nil, nil, err
	}
	online := onlineMap(e)
	sort.SliceStable(fs, func(i, j int) bool {
		_, a := online[fs[i].ID]
		_, b := online[fs[j].ID]
		return a && !b
	})
	return fs, online, nil
}

// handleAPIFriends lists the requester's friends with their presence
// (GET /api/friends/): a JSON array, online friends first, then by
// username.
func handleAPIFriends(s Store, e *presence.Engine, idp idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		fs, online, err := friendsByPresence(c.Request().Context(), s, e, me.ID)
		if err != nil {
			return err
		}
		out := make([]friendJSON, 0, len(fs))
		for _, f := range fs {
			out = append(out, friendJSON{onlineUserJSON: presenceJSON(f.User, online, idp, e), FriendsSince: jsonTime(f.Since)})
		}
		return c.JSON(http.StatusOK, out)
	}
}

func requestJSON(r store.FriendRequest, idp idPolicy) friendRequestJSON {
	out := friendRequestJSON{ID: r.ID, UserID: restID(idp.public(r.Other)), Username: r.Other.Username, CreatedAt: jsonTime(r.CreatedAt)}
	if r.Other.ProfileImageURL != "" {
		out.ProfileImageURL = &r.Other.ProfileImageURL
	}
	return out
}

// handleAPIFriendRequests lists the requests pending for the requester
// (GET /api/friends/requests/): {"incoming": [...], "outgoing": [...]},
// oldest first.
func handleAPIFriendRequests(s Store, idp idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		in, out, err := s.FriendRequests(c.Request().Context(), me.ID)
		if err != nil {
			return err
		}
		res := struct {
			Incoming []friendRequestJSON `json:"incoming"`
			Outgoing []friendRequestJSON `json:"outgoing"`
		}{Incoming: []friendRequestJSON{}, Outgoing: []friendRequestJSON{}}
		for _, r := range in {
			res.Incoming = append(res.Incoming, requestJSON(r, idp))
		}
		for _, r := range out {
			res.Outgoing = append(res.Outgoing, requestJSON(r, idp))
		}
		return c.JSON(http.StatusOK, res)
	}
}

// friendError maps the friends model's errors to responses.
func friendError(err error) error {
	switch {
	case errors.Is(err, store.ErrSelfFriend):
		return httpError(http.StatusBadRequest, store.ErrSelfFriend.Error())
	case errors.Is(err, store.ErrAlreadyFriends):
		return httpError(http.StatusConflict, store.ErrAlreadyFriends.Error())
	case errors.Is(err, store.ErrRequestPending):
		return httpError(http.StatusConflict, store.ErrRequestPending.Error())
	case errors.Is(err, store.ErrNotFound):
		return httpError(http.StatusNotFound, "no such user")
	case errors.Is(err, store.ErrTooManyRequests):
		return httpError(http.StatusTooManyRequests, "you have "+strconv.Itoa(store.MaxPendingRequests)+" friend requests waiting for an answer: withdraw some first")
	}
	return err
}

// resolvePublicID finds the user a client names by their public id (see
// idPolicy.public): a host id, or a local account's id ("local:N" in host
// mode). ErrNotFound when nobody has it.
func resolvePublicID(ctx context.Context, s Store, idp idPolicy, id string) (store.User, error) {
	var candidates []store.User
	local := strings.TrimPrefix(id, localIDPrefix)
	if n, err := strconv.ParseInt(local, 10, 64); err == nil && n > 0 {
		us, err := s.UsersByIDs(ctx, []int64{n})
		if err != nil {
			return store.User{}, err
		}
		if u, ok := us[n]; ok {
			candidates = append(candidates, u)
		}
	}
	if store.ValidateExternalID(id) == nil {
		u, err := s.HostUser(ctx, id)
		if err == nil {
			candidates = append(candidates, u)
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.User{}, err
		}
	}
	for _, u := range candidates {
		if idp.public(u) == id {
			return u, nil
		}
	}
	return store.User{}, store.ErrNotFound
}

// handleAPIRequestFriend sends a friend request (POST
// /api/friends/requests/) to {"username": "..."} (or {"user_id": <public
// id>}, for host users, whose names are not unique): 201 with the
// request; 200 {"status": "accepted", "friend"} when that person had
// already asked the requester (both asked: friends now); 400 for a
// request to oneself or a missing name, 404 for an unknown user, 409 when
// already friends or already asked.
func handleAPIRequestFriend(s Store, e *presence.Engine, idp idPolicy, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		var body struct {
			Username string          `json:"username"`
			UserID   json.RawMessage `json:"user_id"`
		}
		if err := readJSON(c, &body); err != nil {
			return err
		}
		ctx := c.Request().Context()
		var to store.User
		var err error
		switch {
		case len(body.UserID) > 0 && string(body.UserID) != "null":
			id, jerr := jsonID(body.UserID)
			if jerr != nil {
				var sid string
				if json.Unmarshal(body.UserID, &sid) != nil || sid == "" {
					return httpError(http.StatusBadRequest, "user_id must be a user's id (a number or a string)")
				}
				id = sid
			}
			to, err = resolvePublicID(ctx, s, idp, id)
		case strings.TrimSpace(body.Username) != "":
			to, err = s.UserByName(ctx, strings.TrimSpace(body.Username))
		default:
			return httpError(http.StatusBadRequest, `want {"username": "..."}`)
		}
		if err != nil {
			return friendError(err)
		}
		res, err := s.RequestFriend(ctx, me.ID, to.ID)
		if err != nil {
			return friendError(err)
		}
		if res.Accepted {
			feed.Befriended(me.ID, to.ID)
			f := friendJSON{onlineUserJSON: presenceJSON(to, onlineMap(e), idp, e), FriendsSince: jsonTime(time.Now())}
			return c.JSON(http.StatusOK, map[string]any{"status": "accepted", "friend": f})
		}
		res.Request.Other = to
		out := struct {
			friendRequestJSON
			Status string `json:"status"`
		}{requestJSON(res.Request, idp), "pending"}
		return c.JSON(http.StatusCreated, out)
	}
}

// requestIDParam is the request id in the path.
func requestIDParam(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, httpError(http.StatusBadRequest, "the request id in the path must be a whole number")
	}
	return id, nil
}

// handleAPIAcceptFriend accepts a request addressed to the requester
// (POST /api/friends/requests/{id}/accept/): 200 with the new friend, 404
// for a request that does not exist or is not theirs to accept.
func handleAPIAcceptFriend(s Store, e *presence.Engine, idp idPolicy, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		id, err := requestIDParam(c)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		r, err := s.AcceptFriendRequest(ctx, me.ID, id)
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such friend request")
		}
		if err != nil {
			return err
		}
		feed.Befriended(r.FromID, r.ToID)
		us, err := s.UsersByIDs(ctx, []int64{r.FromID})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, friendJSON{onlineUserJSON: presenceJSON(us[r.FromID], onlineMap(e), idp, e), FriendsSince: jsonTime(time.Now())})
	}
}

// handleAPIDeclineFriend declines a request addressed to the requester,
// or withdraws one they sent (POST /api/friends/requests/{id}/decline/):
// 204, or 404.
func handleAPIDeclineFriend(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		id, err := requestIDParam(c)
		if err != nil {
			return err
		}
		if _, err := s.DeclineFriendRequest(c.Request().Context(), me.ID, id); errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such friend request")
		} else if err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// handleAPIRemoveFriend ends a friendship, for both sides (DELETE
// /api/friends/{id}/, the friend's public id): 204, or 404 when they are
// not friends.
func handleAPIRemoveFriend(s Store, idp idPolicy, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		raw, err := url.PathUnescape(c.Param("id"))
		if err != nil || raw == "" {
			return httpError(http.StatusBadRequest, "the friend's id is missing from the path")
		}
		ctx := c.Request().Context()
		u, err := resolvePublicID(ctx, s, idp, raw)
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such friend")
		}
		if err != nil {
			return err
		}
		if err := s.RemoveFriend(ctx, me.ID, u.ID); errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such friend")
		} else if err != nil {
			return err
		}
		feed.Unfriended(me.ID, u.ID)
		return c.NoContent(http.StatusNoContent)
	}
}

// handleAPIFriendSettings reads (GET) or changes (PUT {"notify_online":
// true|false}) the requester's "a friend came online" notices, at
// /api/friends/settings/: 200 {"notify_online"}.
func handleAPIFriendSettings(s Store, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		ctx := c.Request().Context()
		if c.Request().Method == http.MethodPut {
			var body struct {
				NotifyOnline *bool `json:"notify_online"`
			}
			if err := readJSON(c, &body); err != nil {
				return err
			}
			if body.NotifyOnline == nil {
				return httpError(http.StatusBadRequest, `want {"notify_online": true|false}`)
			}
			if err := s.SetFriendNotify(ctx, me.ID, *body.NotifyOnline); err != nil {
				return err
			}
			feed.SetNotify(me.ID, *body.NotifyOnline)
		}
		on, err := s.FriendNotify(ctx, me.ID)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]bool{"notify_online": on})
	}
}
