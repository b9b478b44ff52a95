package realtime

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	useragent "github.com/medama-io/go-useragent"

	"github.com/presencehq/presence/presence"
)

// ConnMeta is what the handler that authenticated a WebSocket knows about
// it beyond its user: the credential that opened it, so that signing the
// device out can end that credential, and the tab the browser says it is.
type ConnMeta struct {
	// TokenID is the row id of the token (a browser session or an API
	// token) that authenticated the socket; 0 for a host JWT.
	TokenID int64
	// Session says TokenID is a browser session (the cookie).
	Session bool
	// Tab is the client's own id for its browser tab (presence.js sends
	// one), at most maxTabLen characters of [A-Za-z0-9_-]; anything else
	// is dropped. It only marks "this tab" in listings: it authorises
	// nothing.
	Tab string
	// Room is the room the socket is in ("" for none): in ConnMeta given
	// to AcceptConn, the room it asked for at connect (?room=, checked by
	// the caller with presence.CheckRoom); in a ConnInfo, the room it is
	// in now (it moves with {"type":"room"} messages).
	Room string
}

// maxTabLen bounds a client-chosen tab id.
const maxTabLen = 40

// CleanTab returns tab when it is a usable tab id, else "".
func CleanTab(tab string) string {
	if len(tab) == 0 || len(tab) > maxTabLen {
		return ""
	}
	for _, r := range tab {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return ""
		}
	}
	return tab
}

// Device is the browser and operating system a User-Agent names. Values
// are shared by every socket with the same User-Agent.
type Device struct {
	// Browser and OS are names such as "Chrome" and "Windows"; "" when
	// the User-Agent does not say (a non-browser client).
	Browser, OS string
	// Kind is "Desktop", "Mobile", "Tablet", "TV", "Bot" or "".
	Kind string
}

// Label is the device in a few words: "Chrome on Windows", "Go client".
func (d *Device) Label() string {
	switch {
	case d == nil || d.Browser == "" && d.OS == "":
		return "Unknown device"
	case d.OS == "":
		return d.Browser
	case d.Browser == "":
		return "App on " + d.OS
	}
	return d.Browser + " on " + d.OS
}

// deviceCacheMax bounds the User-Agents remembered; beyond it each new
// one is parsed for its socket alone.
const deviceCacheMax = 512

// maxUALen is how much of a User-Agent is parsed and used as a cache key.
const maxUALen = 512

// devices interns User-Agents: a socket holds one pointer to an agent
// shared by every socket of the same browser build, so the per-socket cost
// is 8 bytes. An agent is parsed when a listing first needs it, not when
// the socket is accepted: the parser's data (~5.5 MiB of heap, loaded once)
// is only paid for on a server where someone looks at devices or /admin.
type devices struct {
	mu sync.Mutex
	m  map[string]*agent
}

// agent is one User-Agent, parsed on first use; its device kind, for
// history, is classified cheaply when it is interned.
type agent struct {
	ua   string
	kind string
	once sync.Once
	d    Device
}

// device returns the parsed agent.
func (a *agent) device() Device {
	a.once.Do(func() { a.d = parseDevice(a.ua) })
	return a.d
}

var (
	uaParserOnce sync.Once
	uaParser     *useragent.Parser
)

// of returns the interned agent of a User-Agent; beyond deviceCacheMax
// distinct ones, a new agent for this socket alone.
func (ds *devices) of(ua string) *agent {
	if len(ua) > maxUALen {
		ua = ua[:maxUALen]
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if a, ok := ds.m[ua]; ok {
		return a
	}
	a := &agent{ua: strings.Clone(ua), kind: DeviceKind(ua)} // not a view into the request's headers
	if ds.m == nil {
		ds.m = map[string]*agent{}
	}
	if len(ds.m) < deviceCacheMax {
		ds.m[a.ua] = a
	}
	return a
}

// DeviceKind classifies a User-Agent for history as presence.DeviceMobile,
// DeviceTablet, DeviceDesktop or DeviceUnknown by a few substring checks,
// without the full parser (~5.5 MiB once loaded): tablets say iPad,
// Tablet, or Android without Mobile; phones Mobi, iPhone or Android;
// desktops name their OS (Windows, Macintosh, X11, Linux, CrOS). An iPad
// asking for desktop sites (the default since iPadOS 13) says Macintosh and
// counts as a desktop. Non-browser clients are unknown.
func DeviceKind(ua string) string {
	switch {
	case ua == "":
		return presence.DeviceUnknown
	case strings.Contains(ua, "iPad") || strings.Contains(ua, "Tablet") ||
		strings.Contains(ua, "Android") && !strings.Contains(ua, "Mobile"):
		return presence.DeviceTablet
	case strings.Contains(ua, "Mobi") || strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPod"):
		return presence.DeviceMobile
	case strings.Contains(ua, "Windows") || strings.Contains(ua, "Macintosh") || strings.Contains(ua, "X11") ||
		strings.Contains(ua, "Linux") || strings.Contains(ua, "CrOS"):
		return presence.DeviceDesktop
	}
	return presence.DeviceUnknown
}

// parseDevice names the browser and OS of a User-Agent. The parser (a
// trie of known agents, built from data embedded in the library) is
// loaded on the first call.
func parseDevice(ua string) Device {
	if strings.TrimSpace(ua) == "" {
		return Device{}
	}
	uaParserOnce.Do(func() { uaParser = useragent.NewParser() })
	a := uaParser.Parse(ua)
	d := Device{Browser: string(a.Browser()), OS: string(a.OS()), Kind: string(a.Device())}
	if d.Browser == "" && d.OS == "" {
		// Not a browser: name the client by its product token
		// ("Go-http-client/1.1" → "Go-http-client").
		name, _, _ := strings.Cut(ua, "/")
		name, _, _ = strings.Cut(name, " ")
		if len(name) > 40 {
			name = name[:40]
		}
		d.Browser = name
	}
	return d
}

// connIDLen is the number of random bytes in a connection id.
const connIDLen = 16

// connID is a socket's opaque, unguessable id.
type connID [connIDLen]byte

func newConnID() connID {
	var id connID
	rand.Read(id[:]) // never fails (crypto/rand, Go 1.24+)
	return id
}

func (id connID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// parseConnID decodes an id as String gives it.
func parseConnID(s string) (connID, bool) {
	var id connID
	if base64.RawURLEncoding.DecodedLen(len(s)) != connIDLen {
		return id, false
	}
	n, err := base64.RawURLEncoding.Decode(id[:], []byte(s))
	return id, err == nil && n == connIDLen
}

// ConnInfo describes one open WebSocket, for the devices list and the
// admin page.
type ConnInfo struct {
	// ID is the socket's opaque id: CloseConnection takes it. It is
	// random, so one user cannot name another's socket.
	ID       string
	UserID   int64
	Username string
	// PublicID is the user's id as clients see it when it is not UserID
	// (a host site's id).
	PublicID string
	// Device is the browser and OS its User-Agent names.
	Device Device
	// Since is when the socket was accepted; LastActivity its last
	// application ping (user activity), or Since.
	Since, LastActivity time.Time
	ConnMeta
	// Events says the socket receives status events (not ?events=0).
	Events bool
}

func (cl *wsClient) info() ConnInfo {
	ci := ConnInfo{
		ID: cl.id.String(), UserID: cl.user.ID, Username: cl.user.Username, PublicID: cl.user.PublicID,
		Since:        time.Unix(0, cl.since).UTC(),
		LastActivity: time.Unix(0, cl.lastActive.Load()).UTC(),
		ConnMeta:     cl.meta, Events: cl.events,
	}
	ci.Room = ""
	if r := cl.room.Load(); r != nil {
		ci.Room = *r
	}
	if cl.device != nil {
		ci.Device = cl.device.device()
	}
	return ci
}

// describe fills in what the registry keeps of a new socket. It is called
// once, before the socket is registered.
func (h *Hub) describe(cl *wsClient, r *http.Request, meta ConnMeta) {
	now := h.engine.Clock().Now().UnixNano()
	cl.id = newConnID()
	cl.since = now
	cl.lastActive.Store(now)
	meta.Tab = CleanTab(meta.Tab)
	cl.meta = meta
	cl.device = h.devices.of(r.UserAgent())
}

// activity records an application ping on the socket, for its listing.
func (cl *wsClient) activity() {
	cl.lastActive.Store(cl.hub.engine.Clock().Now().UnixNano())
}

// Connections lists every open WebSocket, by username, then oldest first.
func (h *Hub) Connections() []ConnInfo { return h.list(func(*wsClient) bool { return true }) }

// ConnectionsOf lists the open WebSockets of one user, oldest first.
func (h *Hub) ConnectionsOf(userID int64) []ConnInfo {
	return h.list(func(cl *wsClient) bool { return cl.user.ID == userID })
}

func (h *Hub) list(keep func(*wsClient) bool) []ConnInfo {
	h.mu.Lock()
	var kept []*wsClient
	for cl := range h.clients {
		if keep(cl) {
			kept = append(kept, cl)
		}
	}
	h.mu.Unlock()
	// Described outside the hub's lock: the first description may load
	// the User-Agent parser, which must not hold up the fan-out. What
	// info reads is fixed at accept, or atomic.
	out := make([]ConnInfo, len(kept))
	for i, cl := range kept {
		out[i] = cl.info()
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i].Username), strings.ToLower(out[j].Username)
		if a != b {
			return a < b
		}
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// CloseConnection closes the socket with the given id with 1008 and
// reason, when it belongs to userID (0: any user). It returns what the
// socket was, and false when there is no such socket (or not that
// user's: the caller cannot tell the two apart).
func (h *Hub) CloseConnection(id string, userID int64, reason string) (ConnInfo, bool) {
	want, ok := parseConnID(id)
	if !ok {
		return ConnInfo{}, false
	}
	h.mu.Lock()
	var found *wsClient
	for cl := range h.clients {
		if subtle.ConstantTimeCompare(cl.id[:], want[:]) == 1 && (userID == 0 || cl.user.ID == userID) {
			found = cl
			break
		}
	}
	h.mu.Unlock()
	if found == nil {
		return ConnInfo{}, false
	}
	h.closedByRequest.Add(1)
	found.cut(closePolicy, reason)
	return found.info(), true
}

// CloseUser closes every socket of a user with 1008 and reason and
// returns how many there were. The user may connect again: to keep them
// out, revoke their tokens too.
func (h *Hub) CloseUser(userID int64, reason string) int {
	h.mu.Lock()
	var victims []*wsClient
	for cl := range h.clients {
		if cl.user.ID == userID {
			victims = append(victims, cl)
		}
	}
	h.mu.Unlock()
	for _, cl := range victims {
		cl.cut(closePolicy, reason)
	}
	h.closedByRequest.Add(int64(len(victims)))
	return len(victims)
}

// EventsPublished counts the status events the hub has fanned out.
func (h *Hub) EventsPublished() int64 { return h.events.Load() }

// AcceptConn is Accept with what the handler knows of the socket's
// credential and tab (see ConnMeta), for the devices list.
func (h *Hub) AcceptConn(ctx context.Context, w http.ResponseWriter, r *http.Request, u presence.User, events bool, meta ConnMeta) error {
	return h.accept(ctx, w, r, u, events, meta)
}

// EndOwner ends every event stream of owner (such as "user:42") and
// returns how many there were.
func (b *Broker) EndOwner(owner string) int {
	b.mu.Lock()
	n := 0
	for s := range b.subs {
		if s.owner == owner {
			s.cancel()
			n++
		}
	}
	b.mu.Unlock()
	return n
}
