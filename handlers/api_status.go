package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
)

// maxStatusBody bounds a PUT /api/users/me/status/ body.
const maxStatusBody = 4 << 10

// statusJSON is the answer of GET and PUT /api/users/me/status/: what the
// user chose, and how they appear now.
type statusJSON struct {
	// Mode is the chosen mode: online (automatic away), away, dnd or
	// invisible.
	Mode string `json:"mode"`
	// CurrentMode is the mode now: online, away (chosen or idle), dnd,
	// invisible, or offline when no connection of the user is open.
	CurrentMode string  `json:"current_mode"`
	IsOnline    bool    `json:"is_online"`
	Text        string  `json:"text"`
	Emoji       string  `json:"emoji"`
	ExpiresAt   *string `json:"expires_at"`
	Visibility  string  `json:"visibility"`
}

func statusAnswer(engine *presence.Engine, userID int64, s presence.Settings) statusJSON {
	s = s.Normalized()
	out := statusJSON{Mode: string(s.Mode), CurrentMode: string(presence.ModeOffline), Text: s.Text, Emoji: s.Emoji,
		ExpiresAt: jsonTime(s.Expires), Visibility: string(s.Visibility)}
	if st, ok := engine.State(userID); ok {
		out.CurrentMode, out.IsOnline = string(st.Mode), st.Mode != presence.ModeInvisible
	}
	return out
}

// handleAPIGetStatus answers GET /api/users/me/status/.
func handleAPIGetStatus(engine *presence.Engine) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		return c.JSON(http.StatusOK, statusAnswer(engine, me.ID, engine.Settings(me.ID)))
	}
}

// handleAPIPutStatus answers PUT /api/users/me/status/: any of mode, text,
// emoji, expires_in or expires_at, visibility; fields left out stay as
// they are. It answers with the stored status, or 400 with a detail.
func handleAPIPutStatus(engine *presence.Engine, friends settingsListener) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		ch, err := decodeStatusChange(c, engine.Clock().Now())
		if err != nil {
			return err
		}
		s := engine.SetSettings(me.ID, ch.apply(engine.Settings(me.ID)))
		friends.SettingsChanged(me.ID)
		return c.JSON(http.StatusOK, statusAnswer(engine, me.ID, s))
	}
}

// decodeStatusChange reads and validates a PUT body.
func decodeStatusChange(c echo.Context, now time.Time) (statusChange, error) {
	var ch statusChange
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxStatusBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return ch, httpError(http.StatusRequestEntityTooLarge, "request body too large")
	}
	if err != nil {
		return ch, httpError(http.StatusBadRequest, "cannot read the request body")
	}
	var req struct {
		Mode       *string         `json:"mode"`
		Text       *string         `json:"text"`
		Emoji      *string         `json:"emoji"`
		ExpiresIn  json.RawMessage `json:"expires_in"`
		ExpiresAt  json.RawMessage `json:"expires_at"`
		Visibility *string         `json:"visibility"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		detail := "request body must be a JSON object with any of mode, text, emoji, expires_in, expires_at, visibility"
		if strings.Contains(err.Error(), "unknown field") {
			detail = "unknown field: " + strings.TrimPrefix(err.Error(), "json: unknown field ") + "; known: mode, text, emoji, expires_in, expires_at, visibility"
		} else if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Field != "" {
			detail = te.Field + " must be a string"
		}
		return ch, httpError(http.StatusBadRequest, detail)
	}
	bad := func(err error) (statusChange, error) {
		return statusChange{}, httpError(http.StatusBadRequest, err.Error())
	}
	if req.Mode != nil {
		m, err := parseMode(*req.Mode)
		if err != nil {
			return bad(err)
		}
		ch.mode = &m
	}
	if req.Visibility != nil {
		v, err := parseVisibility(*req.Visibility)
		if err != nil {
			return bad(err)
		}
		ch.visibility = &v
	}
	if req.Text != nil {
		t, err := cleanStatusText(*req.Text)
		if err != nil {
			return bad(err)
		}
		ch.text = &t
	}
	if req.Emoji != nil {
		e, err := cleanEmoji(*req.Emoji)
		if err != nil {
			return bad(err)
		}
		ch.emoji = &e
	}
	in, at := req.ExpiresIn != nil, req.ExpiresAt != nil
	switch {
	case in && at:
		return bad(errors.New("give expires_in or expires_at, not both"))
	case in:
		ch.expiresSet = true
		if !isNull(req.ExpiresIn) {
			var secs int64
			if err := json.Unmarshal(req.ExpiresIn, &secs); err != nil || secs < 1 || time.Duration(secs)*time.Second > maxStatusExpiry {
				return bad(errors.New("expires_in must be a whole number of seconds from 1 to 31622400 (366 days), or null for never"))
			}
			ch.expires = now.Add(time.Duration(secs) * time.Second)
		}
	case at:
		ch.expiresSet = true
		if !isNull(req.ExpiresAt) {
			var s string
			if err := json.Unmarshal(req.ExpiresAt, &s); err != nil {
				return bad(errors.New("expires_at must be an RFC 3339 time string, or null for never"))
			}
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return bad(errors.New("expires_at must be an RFC 3339 time such as 2026-01-02T15:04:05Z, or null for never"))
			}
			if !t.After(now) {
				return bad(errors.New("expires_at is not in the future"))
			}
			if t.Sub(now) > maxStatusExpiry {
				return bad(errors.New("expires_at must be within 366 days"))
			}
			ch.expires = t
		}
	}
	return ch, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// settingsListener hears that a user changed their settings: the friends
// feed (realtime.FriendsFeed), whose widgets show a user to friends by
// rules of their own.
type settingsListener interface {
	SettingsChanged(userID int64)
}
