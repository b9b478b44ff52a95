package handlers

import (
	"encoding/json"
	"strconv"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// localIDPrefix starts the public id of a local account on a server that
// also takes host users, so that local account 1 ("local:1") is never
// taken for the host's user 1 (1). See docs/INTEGRATION.md, "Two id
// spaces". store.ValidateExternalID refuses host ids with this prefix,
// so a host's "local:1" cannot pose as local account 1 either.
const localIDPrefix = store.ReservedIDPrefix

// idPolicy turns users into the ids clients see.
type idPolicy struct {
	// hostMode: host JWTs are accepted, so host ids are shown and local
	// accounts get the "local:" prefix.
	hostMode bool
}

// public is the user's id as clients know it: the host's id for a host
// user; for a local account its row id, prefixed "local:" in host mode.
func (p idPolicy) public(u store.User) string {
	if u.IsHost() {
		return u.ExternalID
	}
	if p.hostMode {
		return localIDPrefix + strconv.FormatInt(u.ID, 10)
	}
	return strconv.FormatInt(u.ID, 10)
}

// presenceUser is the engine's view of u, carrying its public id.
func (p idPolicy) presenceUser(u store.User) presence.User {
	pu := presence.User{ID: u.ID, Username: u.Username}
	if id := p.public(u); id != strconv.FormatInt(u.ID, 10) {
		pu.PublicID = id
	}
	return pu
}

// restID is a public id in the JSON API's shape: a JSON number when it is
// a whole number (as the original app's integer ids), else a string
// ("local:3", a UUID). WebSocket messages always carry it as a string.
func restID(id string) json.RawMessage {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && strconv.FormatInt(n, 10) == id {
		return json.RawMessage(id)
	}
	b, _ := json.Marshal(id)
	return b
}
