package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
)

// The server API (/api/server/) is for the host site's backend. It takes a
// server key (`presence apikey create`), never a user's token, and speaks
// of users by the host's ids only: local accounts are out of its reach.

// maxServerBody bounds a server API request body (1,000 ids fit easily).
const maxServerBody = 256 << 10

// maxQueryIDs is how many users one presence query may ask about.
const maxQueryIDs = 1000

const serverKeyKey = "presence.serverkey"

// requireServerKey is middleware that admits only a live server key in
// Authorization: Bearer. A user's token (ours or a host JWT) is refused
// with 403, so a leaked user token cannot drive the server API.
func requireServerKey(s Store) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			scheme, tok, ok := strings.Cut(h, " ")
			tok = strings.TrimSpace(tok)
			switch {
			case h == "":
				return httpError(http.StatusUnauthorized, "a server key is required: Authorization: Bearer <key>")
			case !ok || !strings.EqualFold(scheme, "Bearer"):
				return httpError(http.StatusUnauthorized, "invalid or revoked server key")
			case !store.IsServerKey(tok):
				return httpError(http.StatusForbidden, "user tokens are not accepted here: the server API takes a server key")
			}
			k, err := s.ResolveServerKey(c.Request().Context(), tok)
			if errors.Is(err, store.ErrInvalidServerKey) {
				return httpError(http.StatusUnauthorized, "invalid or revoked server key")
			}
			if err != nil {
				return err
			}
			c.Set(serverKeyKey, k)
			return next(c)
		}
	}
}

// hostIDParam is the host's user id in the path, checked.
func hostIDParam(c echo.Context) (string, error) {
	id, err := url.PathUnescape(c.Param("id"))
	if err == nil {
		err = store.ValidateExternalID(id)
	}
	if err != nil {
		return "", httpError(http.StatusBadRequest, "the user id in the path must be 1 to 255 bytes, without spaces, not starting with \"local:\"")
	}
	return id, nil
}

// serverUserJSON is a host user as the server API returns it.
type serverUserJSON struct {
	ID              json.RawMessage `json:"id"`
	Username        string          `json:"username"`
	ProfileImageURL *string         `json:"profile_image_url"`
	IsOnline        bool            `json:"is_online"`
	LastSeen        *string         `json:"last_seen"`
	LastActivity    *string         `json:"last_activity"`
}

// handleServerPutUser creates the host user {id} or updates their
// username and avatar: {"username", "profile_image_url"}, both optional
// (a new user without a name is named after their id). 201 when created,
// 200 when updated, with the user.
func handleServerPutUser(s Store, idp idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := hostIDParam(c)
		if err != nil {
			return err
		}
		var body struct {
			Username        *string `json:"username"`
			ProfileImageURL *string `json:"profile_image_url"`
		}
		if err := readJSON(c, &body); err != nil {
			return err
		}
		p := store.HostProfile{ExternalID: id}
		if body.Username != nil {
			p.Username = *body.Username
		}
		if body.ProfileImageURL != nil {
			p.ProfileImageURL = *body.ProfileImageURL
		}
		u, created, err := s.UpsertHostUser(c.Request().Context(), p)
		if errors.Is(err, store.ErrInvalidHostUser) {
			return httpError(http.StatusBadRequest, err.Error())
		}
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		out := serverUserJSON{ID: restID(idp.public(u)), Username: u.Username, IsOnline: u.IsOnline,
			LastSeen: jsonTime(u.LastSeen), LastActivity: jsonTime(u.LastActivity)}
		if u.ProfileImageURL != "" {
			out.ProfileImageURL = &u.ProfileImageURL
		}
		return c.JSON(status, out)
	}
}

// handleServerDeleteUser removes the host user {id} and ends their
// WebSockets and widget streams: 204, or 404 for an unknown user.
func handleServerDeleteUser(s Store, ends *realtime.UserEnds) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := hostIDParam(c)
		if err != nil {
			return err
		}
		u, err := s.DeleteHostUser(c.Request().Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such user")
		}
		if err != nil {
			return err
		}
		ends.End(u.ID)
		return c.NoContent(http.StatusNoContent)
	}
}

// handleServerDisconnect ends the host user {id}'s WebSockets (close
// 1008) and widget streams: 204, or 404 for an unknown user. The user may
// connect again with a token; to keep them out, stop issuing them tokens.
func handleServerDisconnect(s Store, ends *realtime.UserEnds) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := hostIDParam(c)
		if err != nil {
			return err
		}
		u, err := s.HostUser(c.Request().Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such user")
		}
		if err != nil {
			return err
		}
		ends.End(u.ID)
		return c.NoContent(http.StatusNoContent)
	}
}

// queryUserJSON is one answer of a presence query.
type queryUserJSON struct {
	ID           json.RawMessage `json:"id"`
	IsOnline     bool            `json:"is_online"`
	LastSeen     *string         `json:"last_seen"`
	LastActivity *string         `json:"last_activity"`
}

// handleServerPresenceQuery answers {"user_ids": [...]} (host ids,
// numbers or strings, up to 1,000) with {"users": [...]}, one per distinct
// id in the order asked. An id Presence has never seen is offline with
// null times. Online state comes from the engine; last_seen from the
// database (written within --flush-interval).
func handleServerPresenceQuery(s Store, engine *presence.Engine, idp idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		var body struct {
			UserIDs []json.RawMessage `json:"user_ids"`
		}
		if err := readJSON(c, &body); err != nil {
			return err
		}
		if body.UserIDs == nil {
			return httpError(http.StatusBadRequest, `want {"user_ids": [...]}`)
		}
		if len(body.UserIDs) > maxQueryIDs {
			return httpError(http.StatusBadRequest, "at most "+strconv.Itoa(maxQueryIDs)+" user_ids per query")
		}
		ids := make([]string, 0, len(body.UserIDs))
		seen := make(map[string]bool, len(body.UserIDs))
		for _, raw := range body.UserIDs {
			id, err := jsonID(raw)
			if err != nil {
				return httpError(http.StatusBadRequest, "user_ids must be whole numbers or strings of 1 to 255 bytes")
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		users, err := s.HostUsers(c.Request().Context(), ids)
		if err != nil {
			return err
		}
		online := map[int64]presence.Status{}
		for _, st := range engine.Online() {
			online[st.UserID] = st
		}
		out := make([]queryUserJSON, 0, len(ids))
		for _, id := range ids {
			q := queryUserJSON{ID: restID(id)}
			if u, ok := users[id]; ok {
				q.ID = restID(idp.public(u))
				if engine.Settings(u.ID).Visibility == presence.VisibleEveryone {
					q.LastSeen, q.LastActivity = jsonTime(u.LastSeen), jsonTime(u.LastActivity)
				}
				if st, ok := online[u.ID]; ok {
					q.IsOnline, q.LastActivity = true, jsonTime(st.LastActivity)
				}
			}
			out = append(out, q)
		}
		return c.JSON(http.StatusOK, map[string]any{"users": out})
	}
}

// jsonID reads one id of a request: a whole JSON number or a string.
func jsonID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	var id string
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", err
		}
	} else {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", err
		}
		id = strconv.FormatInt(n, 10)
	}
	return id, store.ValidateExternalID(id)
}

// readJSON decodes a JSON object body of at most maxServerBody bytes.
func readJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxServerBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return httpError(http.StatusRequestEntityTooLarge, "request body too large")
	}
	if err != nil {
		return httpError(http.StatusBadRequest, "cannot read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return httpError(http.StatusBadRequest, "request body must be a JSON object")
	}
	return nil
}
