package presence

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultGrace    = 5 * time.Second
	DefaultDeadline = 30 * time.Second
)

// ErrClosed is returned by Connect after the engine has been closed.
var ErrClosed = errors.New("presence: engine closed")

// ErrTooManyConnections is returned by Connect when a user already holds the
// configured maximum number of connections.
var ErrTooManyConnections = errors.New("presence: too many connections for user")

// User identifies the person behind a connection.
type User struct {
	ID       int64
	Username string
	// PublicID is the id clients see, when it is not ID in decimal: a
	// host site's id for its users ("42", a UUID). The engine only carries
	// it into events and snapshots.
	PublicID string
}

// Status is one online user in a snapshot.
type Status struct {
	UserID       int64
	Username     string
	PublicID     string    // the user's User.PublicID (empty: UserID is shown)
	Since        time.Time // when the user came online
	LastActivity time.Time // last activity signal (a ping), or Since
	// Mode is the user's mode now: online, away (chosen or idle), dnd, or
	// invisible (only in OnlineAll).
	Mode Mode
	// StatusText and StatusEmoji are the custom status (empty: none).
	StatusText, StatusEmoji string
	// Visibility says who may see the user (see CanSee).
	Visibility Visibility
}

// Hidden reports whether the user is shown offline to viewers in general
// (invisible, or visible only to some).
func (s Status) Hidden() bool {
	return s.Mode == ModeInvisible || s.Visibility != VisibleEveryone && s.Visibility != ""
}

// Recorder receives every state change that must be persisted. Calls happen
// on hot paths and must not block on I/O; Batcher is the implementation.
type Recorder interface {
	// RecordStatus records that the user went online or offline.
	RecordStatus(userID int64, online bool, lastSeen time.Time)
	// RecordActivity records the user's latest activity signal.
	RecordActivity(userID int64, at time.Time)
}

// Peer is the transport side of a connection: the engine asks it to prove
// it is alive, or to go. Both calls come from the engine's sweep and must
// not block.
type Peer interface {
	// Ping asks the peer for a sign of life (a WebSocket ping frame).
	Ping()
	// Kick closes the transport; the transport then calls Conn.Close.
	Kick()
}

// Config configures an Engine. Zero fields take the defaults.
type Config struct {
	Clock    Clock    // default SystemClock
	Bus      Bus      // default a new LocalBus
	Recorder Recorder // default: nothing is persisted
	// Grace is how long a user stays online after their last connection
	// ends. Negative means no grace at all.
	Grace time.Duration
	// Deadline is how long a connection may stay silent (no ping, no pong)
	// before it is dropped. Negative disables the heartbeat check.
	Deadline time.Duration
	// PingAfter is how long a connection may be silent before the engine
	// asks its peer to Ping. 0 means the engine sends no pings.
	PingAfter time.Duration
	// MaxConnsPerUser caps a user's simultaneous connections; 0 means no cap.
	MaxConnsPerUser int
	// Sessions records each user's online sessions (their history); nil
	// means no history is kept.
	Sessions SessionRecorder
	// AwayAfter is how long a user may go without activity (Conn.Activity)
	// on all their connections before they are shown away; the next
	// activity ends it. 0 means never automatically away.
	AwayAfter time.Duration
	// Directory, when set, holds who is online across every node that
	// shares presence: State, IsOnline, Online, OnlineAll and the user
	// count of Counts answer from it, and the engine keeps only this
	// node's connections (LocalState). nil: this engine is the truth.
	Directory Directory
	// Rooms, when set, holds room membership across nodes (see
	// RoomDirectory).
	Rooms RoomDirectory
}

// Directory is who is online across several nodes (package cluster keeps
// one on Redis). Its methods must not call back into the engine and must
// be safe for concurrent use.
type Directory interface {
	// Lookup returns the user's state, whoever may see it, and whether
	// they are online on any node (invisible included).
	Lookup(userID int64) (Status, bool)
	// All returns every user online on any node, hidden ones included, in
	// any order.
	All() []Status
	// Count returns how many users are online on any node.
	Count() int
}

// RoomDirectory is who is in which room across several nodes (package
// cluster keeps one on Redis). When Config.Rooms is set, the engine tells
// it of its own connections' room entries and exits instead of its
// watches (AnnounceRoom), the directory feeds the cluster's to the watches
// (EmitRoom), and the room queries answer from it.
type RoomDirectory interface {
	// AnnounceRoom is told that this engine's own membership of a user in
	// a room changed. The engine calls it with its lock held: it must not
	// block or call back into the engine.
	AnnounceRoom(ev RoomEvent)
	// RoomMemberIDs returns the ids of the users in room on any node.
	RoomMemberIDs(room string) []int64
	// RoomsOf returns the rooms the user is in on any node, sorted.
	RoomsOf(userID int64) []string
	// InRoom reports whether the user is in room on any node.
	InRoom(room string, userID int64) bool
	// RoomCounts returns how many rooms have members and how many
	// memberships there are, on all nodes.
	RoomCounts() (rooms, members int)
}

// Engine tracks live connections and derives per-user presence from them.
// Create it with New; it is safe for concurrent use. Caller must call Close.
type Engine struct {
	clock     Clock
	bus       Bus
	rec       Recorder
	sessions  SessionRecorder
	grace     time.Duration
	deadline  time.Duration
	pingAfter time.Duration
	maxConns  int
	awayAfter time.Duration
	dir       Directory
	roomDir   RoomDirectory

	mu       sync.Mutex
	users    map[int64]*userState
	settings map[int64]*settingsState // users whose settings are not the defaults
	conns    int
	closed   bool
	sweep    Timer

	rooms       map[string]map[int64]*roomMember // room → its members (rooms.go)
	userRooms   map[int64]map[string]struct{}    // user → the rooms they are in
	roomWatches map[*RoomWatch]struct{}
}

type userState struct {
	user         User
	key          string // user.Username in lower case: the order of Online
	conns        map[*Conn]struct{}
	since        time.Time
	lastActivity atomic.Int64 // unix nanoseconds
	endedAt      time.Time    // when the last connection ended (during grace)
	grace        Timer        // non-nil while waiting to go offline
	gen          uint64       // invalidates a grace timer that fired late

	away      atomic.Bool // idle for AwayAfter (automatic away)
	invisible atomic.Bool // chose invisible: activity and last seen are not recorded
	pub, self view        // as last announced to others and to the user
	hiddenAt  time.Time   // when the user last went offline in others' (or their own) eyes

	// History (Config.Sessions): the kind of the first connection, and
	// whether a session is open and since when.
	device       string
	session      bool
	sessionStart time.Time
}

// Conn is one live connection (a browser tab, a device) of a user. The
// transport calls Alive or Activity whenever the peer proves it is there,
// and Close exactly when the connection ends.
type Conn struct {
	e         *Engine
	us        *userState
	peer      Peer
	lastAlive atomic.Int64 // unix nanoseconds
	closed    atomic.Bool
	room      string // the room the connection is in, "" for none (guarded by e.mu; rooms.go)
}

// New returns a running Engine.
func New(cfg Config) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Bus == nil {
		cfg.Bus = NewLocalBus()
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	switch {
	case cfg.Grace == 0:
		cfg.Grace = DefaultGrace
	case cfg.Grace < 0:
		cfg.Grace = 0
	}
	switch {
	case cfg.Deadline == 0:
		cfg.Deadline = DefaultDeadline
	case cfg.Deadline < 0:
		cfg.Deadline = 0
	}
	e := &Engine{
		clock:     cfg.Clock,
		bus:       cfg.Bus,
		rec:       cfg.Recorder,
		sessions:  cfg.Sessions,
		grace:     cfg.Grace,
		deadline:  cfg.Deadline,
		pingAfter: cfg.PingAfter,
		maxConns:  cfg.MaxConnsPerUser,
		awayAfter: max(cfg.AwayAfter, 0),
		dir:       cfg.Directory,
		roomDir:   cfg.Rooms,
		users:     make(map[int64]*userState),
		settings:  make(map[int64]*settingsState),
		rooms:     make(map[string]map[int64]*roomMember),
		userRooms: make(map[int64]map[string]struct{}),
	}
	if e.deadline > 0 || e.pingAfter > 0 || e.awayAfter > 0 {
		e.mu.Lock()
		e.scheduleSweep()
		e.mu.Unlock()
	}
	return e
}

// Clock returns the clock the engine runs on, so that what works beside
// it (rate limits, feeds) keeps the same time, real or fake.
func (e *Engine) Clock() Clock { return e.clock }

// Bus returns the bus the engine publishes on.
func (e *Engine) Bus() Bus { return e.bus }

// Connect registers a new live connection for u. The engine calls p.Ping
// when the connection has been silent for PingAfter, and p.Kick (once) if
// it misses its heartbeat deadline; p may be nil. The first
// connection of a user who is not online publishes an online event; one that
// arrives during the grace period cancels the pending offline silently.
func (e *Engine) Connect(u User, p Peer) (*Conn, error) {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	us := e.users[u.ID]
	if us != nil && e.maxConns > 0 && len(us.conns) >= e.maxConns {
		return nil, ErrTooManyConnections
	}
	c := &Conn{e: e, peer: p}
	c.lastAlive.Store(now.UnixNano())
	if us == nil {
		us = &userState{user: u, key: strings.ToLower(u.Username), conns: make(map[*Conn]struct{}), since: now, pub: offlineView, self: offlineView, device: deviceOf(p)}
		us.lastActivity.Store(now.UnixNano())
		e.users[u.ID] = us
		if e.settingsFor(u.ID).Mode == ModeInvisible {
			us.invisible.Store(true) // last seen and activity stay as they were
		} else {
			e.rec.RecordStatus(u.ID, true, time.Time{})
			e.rec.RecordActivity(u.ID, now)
		}
		e.publishViews(us)
		e.syncSession(us, now)
	} else if us.grace != nil {
		us.grace.Stop()
		us.grace = nil
		us.gen++
	}
	c.us = us
	us.conns[c] = struct{}{}
	e.conns++
	return c, nil
}

// Alive records that the peer answered (for example with a WebSocket pong),
// pushing the heartbeat deadline forward. It does not count as user activity.
func (c *Conn) Alive() {
	c.lastAlive.Store(c.e.clock.Now().UnixNano())
}

// Activity records a user activity signal (an application ping): it counts
// as Alive, updates the user's last activity, persisted in batches (not
// while the user is invisible), and ends an automatic away.
func (c *Conn) Activity() {
	now := c.e.clock.Now()
	us := c.us
	c.lastAlive.Store(now.UnixNano())
	us.lastActivity.Store(now.UnixNano())
	if !us.invisible.Load() {
		c.e.rec.RecordActivity(us.user.ID, now)
	}
	if us.away.Load() {
		c.e.back(us)
	}
}

// User returns the user the connection belongs to.
func (c *Conn) User() User { return c.us.user }

// Close unregisters the connection. When it was the user's last one, the user
// goes offline after the grace period unless a new connection arrives first.
// Close is idempotent.
func (c *Conn) Close() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	e := c.e
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	us := c.us
	if _, ok := us.conns[c]; !ok {
		return // removed by Engine.Close
	}
	delete(us.conns, c)
	e.conns--
	e.leaveRoom(c, us.user.ID)
	if len(us.conns) > 0 || e.closed {
		return
	}
	us.endedAt = now
	if e.grace <= 0 {
		e.goOffline(us, now)
		return
	}
	us.gen++
	gen := us.gen
	us.grace = e.clock.AfterFunc(e.grace, func() { e.graceExpired(us, gen) })
}

func (e *Engine) graceExpired(us *userState, gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || us.gen != gen || len(us.conns) > 0 || e.users[us.user.ID] != us {
		return
	}
	us.grace = nil
	e.goOffline(us, us.endedAt)
}

// goOffline removes us and announces it to whoever saw them online. An
// invisible user's last seen is left as it was. Caller must hold e.mu.
func (e *Engine) goOffline(us *userState, lastSeen time.Time) {
	delete(e.users, us.user.ID)
	e.endSession(us, lastSeen)
	if us.invisible.Load() {
		e.rec.RecordStatus(us.user.ID, false, time.Time{})
	} else {
		e.rec.RecordStatus(us.user.ID, false, lastSeen)
	}
	if us.pub.online {
		e.bus.Publish(Event{UserID: us.user.ID, Username: us.user.Username, PublicID: us.user.PublicID, Online: false, LastSeen: lastSeen, Mode: ModeOffline})
	}
}

// sweepInterval is how often the engine checks deadlines and sends pings:
// often enough that a silent connection is pinged within 1.5 × PingAfter
// and dropped within 1.25 × Deadline.
func (e *Engine) sweepInterval() time.Duration {
	interval := time.Duration(1<<63 - 1)
	if e.deadline > 0 {
		interval = e.deadline / 4
	}
	if e.pingAfter > 0 {
		interval = min(interval, e.pingAfter/2)
	}
	if e.awayAfter > 0 {
		interval = min(interval, e.awayAfter/4)
	}
	return max(interval, 10*time.Millisecond)
}

// scheduleSweep arms the next check. Caller must hold e.mu.
func (e *Engine) scheduleSweep() {
	e.sweep = e.clock.AfterFunc(e.sweepInterval(), e.runSweep)
}

// runSweep pings every connection silent for PingAfter and drops every one
// silent for longer than the deadline, then re-arms itself. One sweep
// serves every connection, so an idle socket needs no timer of its own.
func (e *Engine) runSweep() {
	now := e.clock.Now()
	cutoff, pingCutoff := int64(-1<<63), int64(-1<<63)
	if e.deadline > 0 {
		cutoff = now.Add(-e.deadline).UnixNano()
	}
	if e.pingAfter > 0 {
		pingCutoff = now.Add(-e.pingAfter).UnixNano()
	}
	var expired, ping []*Conn
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	for _, us := range e.users {
		for c := range us.conns {
			switch alive := c.lastAlive.Load(); {
			case alive < cutoff:
				expired = append(expired, c)
			case alive < pingCutoff:
				ping = append(ping, c)
			}
		}
	}
	e.checkAway(now)
	e.scheduleSweep()
	e.mu.Unlock()
	for _, c := range ping {
		if c.peer != nil {
			c.peer.Ping()
		}
	}
	for _, c := range expired {
		if c.peer != nil {
			c.peer.Kick()
		}
		c.Close()
	}
}

// IsOnline reports whether the user is online as everyone sees them
// (including during the grace period after their last connection ended):
// false for a hidden user (see Status.Hidden).
func (e *Engine) IsOnline(userID int64) bool {
	st, ok := e.State(userID)
	return ok && !st.Hidden()
}

// State returns the user's state, whoever may see it, and whether they are
// online at all (invisible included), on any node when a Directory is set.
func (e *Engine) State(userID int64) (Status, bool) {
	if e.dir != nil {
		return e.dir.Lookup(userID)
	}
	return e.LocalState(userID)
}

// LocalState is State from this engine's own connections only, whatever
// the Directory says.
func (e *Engine) LocalState(userID int64) (Status, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	us, ok := e.users[userID]
	if !ok {
		return Status{}, false
	}
	return e.status(us), true
}

// status is us as a snapshot. Caller must hold e.mu.
func (e *Engine) status(us *userState) Status {
	s := e.settingsFor(us.user.ID)
	return Status{
		UserID:       us.user.ID,
		Username:     us.user.Username,
		PublicID:     us.user.PublicID,
		Since:        us.since,
		LastActivity: time.Unix(0, us.lastActivity.Load()).UTC(),
		Mode:         e.effectiveMode(us, s),
		StatusText:   s.Text,
		StatusEmoji:  s.Emoji,
		Visibility:   s.Visibility,
	}
}

// Online returns every user online as everyone sees them (hidden users
// left out), ordered by username (case-insensitive).
func (e *Engine) Online() []Status { return e.snapshot(false) }

// OnlineAll is Online with hidden users too, for callers that decide per
// viewer who may see whom (CanSee).
func (e *Engine) OnlineAll() []Status { return e.snapshot(true) }

func (e *Engine) snapshot(hidden bool) []Status {
	var out []Status
	if e.dir != nil {
		out = e.dir.All()
		if !hidden {
			out = slices.DeleteFunc(out, Status.Hidden)
		}
	} else {
		e.mu.Lock()
		out = make([]Status, 0, len(e.users))
		for _, us := range e.users {
			if st := e.status(us); hidden || !st.Hidden() {
				out = append(out, st)
			}
		}
		e.mu.Unlock()
	}
	sortStatuses(out)
	return out
}

// byName is the order of Online: by lower-case name (key), then by id.
func byName(keyA string, idA int64, keyB string, idB int64) int {
	if c := strings.Compare(keyA, keyB); c != 0 {
		return c
	}
	return cmp.Compare(idA, idB)
}

// OnlineFirst returns the first n users of Online, and how many Online
// would return, without building a Status for the others: the widget's
// feed shows a page of the list and the count after every change, and
// with thousands online the whole snapshot was most of what a change
// allocated (docs/PERFORMANCE.md, issue 16).
func (e *Engine) OnlineFirst(n int) ([]Status, int) {
	n = max(n, 0)
	if e.dir != nil {
		all := e.Online()
		return all[:min(n, len(all))], len(all)
	}
	first, total := e.firstVisible(n)
	sortStatuses(first)
	return first, total
}

// firstVisible returns, in no order, the statuses of the n users first in
// Online's order among those not hidden, and how many are not hidden. It
// keeps the n in a max-heap by that order, so that one pass over the
// users suffices.
func (e *Engine) firstVisible(n int) ([]Status, int) {
	after := func(a, b *userState) bool { return byName(a.key, a.user.ID, b.key, b.user.ID) > 0 }
	heap := make([]*userState, 0, n)
	down := func(i int) {
		for {
			l, big := 2*i+1, i
			if l < len(heap) && after(heap[l], heap[big]) {
				big = l
			}
			if r := l + 1; r < len(heap) && after(heap[r], heap[big]) {
				big = r
			}
			if big == i {
				return
			}
			heap[i], heap[big] = heap[big], heap[i]
			i = big
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	total := 0
	for _, us := range e.users {
		s := e.settingsFor(us.user.ID)
		if (Status{Mode: e.effectiveMode(us, s), Visibility: s.Visibility}).Hidden() {
			continue
		}
		total++
		switch {
		case len(heap) < n:
			heap = append(heap, us)
			for i := len(heap) - 1; i > 0 && after(heap[i], heap[(i-1)/2]); i = (i - 1) / 2 {
				heap[i], heap[(i-1)/2] = heap[(i-1)/2], heap[i]
			}
		case n > 0 && after(heap[0], us):
			heap[0] = us
			down(0)
		}
	}
	out := make([]Status, len(heap))
	for i, us := range heap {
		out[i] = e.status(us)
	}
	return out, total
}

// Counts returns the number of online users (on any node when a Directory
// is set) and of this engine's live connections.
func (e *Engine) Counts() (users, conns int) {
	e.mu.Lock()
	users, conns = len(e.users), e.conns
	e.mu.Unlock()
	if e.dir != nil {
		users = e.dir.Count()
	}
	return users, conns
}

// LocalUsers returns the ids of the users with a connection to this engine
// or in their grace period here, in any order.
func (e *Engine) LocalUsers() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]int64, 0, len(e.users))
	for id := range e.users {
		out = append(out, id)
	}
	return out
}

// Close stops the engine: no new connections are accepted, pending grace
// periods end now and every online user is recorded offline, with last seen
// set to when their last connection ended (or now, if it is still open);
// their open history session (Config.Sessions) ends at that same time.
// Close does not publish offline events: subscribers are going away too. It
// does not close transports; callers close those first.
func (e *Engine) Close() {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	if e.sweep != nil {
		e.sweep.Stop()
	}
	for _, st := range e.settings {
		if st.expiry != nil {
			st.expiry.Stop()
		}
	}
	e.closeRooms()
	for id, us := range e.users {
		lastSeen := now
		if us.grace != nil {
			us.grace.Stop()
			lastSeen = us.endedAt
		}
		e.conns -= len(us.conns)
		clear(us.conns)
		delete(e.users, id)
		e.endSession(us, lastSeen)
		if us.invisible.Load() {
			lastSeen = time.Time{}
		}
		e.rec.RecordStatus(id, false, lastSeen)
	}
}

type nopRecorder struct{}

func (nopRecorder) RecordStatus(int64, bool, time.Time) {}
func (nopRecorder) RecordActivity(int64, time.Time)     {}
