package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/presencehq/presence/presence"
)

// Event types.
const (
	TypeOnline  = "user.online"
	TypeOffline = "user.offline"
)

// Payload is the JSON body of a webhook.
type Payload struct {
	// ID identifies the event; every attempt, and every receiver URL, gets
	// the same one: receivers dedupe on it.
	ID   string `json:"id"`
	Type string `json:"type"`
	// UserID is the user's id as the host knows it, in the JSON API's
	// shape: a number for an integer id, a string otherwise.
	UserID   json.RawMessage `json:"user_id"`
	Username string          `json:"username"`
	// At is when the change happened: for user.offline, when the grace
	// period ended.
	At string `json:"at"`
	// LastSeen is when the user's last connection ended (user.offline),
	// or when they came online (user.online), as in user.status.changed.
	LastSeen *string `json:"last_seen"`
}

// timeFormat is RFC 3339 with milliseconds, as everywhere in the API.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// userKey is the user's public id as a string: the host's id, or the
// local account's ("local:3" beside host users, else its row id).
func userKey(ev presence.Event) string {
	if ev.PublicID != "" {
		return ev.PublicID
	}
	return strconv.FormatInt(ev.UserID, 10)
}

// jsonID is a public id in the JSON API's shape: a JSON number when it is
// a whole number, else a string.
func jsonID(id string) json.RawMessage {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && strconv.FormatInt(n, 10) == id {
		return json.RawMessage(id)
	}
	b, _ := json.Marshal(id)
	return b
}

// newEventID returns a fresh random event id.
func newEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// newPayload describes ev, which happened at at.
func newPayload(ev presence.Event, at time.Time) Payload {
	p := Payload{
		ID:       newEventID(),
		Type:     TypeOffline,
		UserID:   jsonID(userKey(ev)),
		Username: ev.Username,
		At:       at.UTC().Format(timeFormat),
	}
	if ev.Online {
		p.Type = TypeOnline
	}
	if !ev.LastSeen.IsZero() {
		s := ev.LastSeen.UTC().Format(timeFormat)
		p.LastSeen = &s
	}
	return p
}
