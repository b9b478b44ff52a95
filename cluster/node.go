package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencehq/presence/presence"
)

// Timing of node liveness.
const (
	// HeartbeatEvery is how often a node refreshes its liveness entry and
	// looks for dead nodes.
	HeartbeatEvery = 2 * time.Second
	// DeadAfter is how long a node may stay silent before a survivor
	// removes its edges.
	DeadAfter = 10 * time.Second
	// reapLock is how long one survivor holds the right to reap a node.
	reapLock = time.Minute
	// batchSize bounds the announcements sent in one pipeline.
	batchSize = 512
)

// Config configures a Node.
type Config struct {
	// Redis is the client shared by every node. Required.
	Redis *redis.Client
	// NodeID names this node; it must be unique among live nodes and
	// should stay the same across restarts, so that a restarted node
	// clears what it left behind at once. Required.
	NodeID string
	// Prefix starts every Redis key and channel (default "presence:"), so
	// that several deployments, or tests, can share one Redis.
	Prefix string
	// Recorder persists presence: what this node decides (a user's first
	// node, last node or going invisible) is recorded here once for the
	// whole cluster; activity and settings pass straight through. nil:
	// nothing is persisted.
	Recorder presence.Recorder
	// Sessions records users' online sessions (history), once for the
	// whole cluster, by the node that decides each start and end; the
	// engine's own session records are dropped. nil: no history.
	Sessions presence.SessionRecorder
	// Clock is the clock of last-seen times (default presence.SystemClock).
	Clock presence.Clock
	// Log receives warnings (default slog.Default()).
	Log *slog.Logger
	// HeartbeatEvery and DeadAfter override the liveness timing (tests).
	HeartbeatEvery, DeadAfter time.Duration
}

// Node is one presence node's share of the cluster. It is the engine's Bus
// (engine events in, cluster-wide events out), its Directory and its
// Recorder. Create it with New, give it to presence.New through those
// three Config fields, then call Start with the engine. Caller must call
// Close.
type Node struct {
	rdb          *redis.Client
	id           string
	prefix       string
	rec          presence.Recorder
	sessions     presence.SessionRecorder
	clock        presence.Clock
	log          *slog.Logger
	out          *presence.LocalBus
	channel      string // aggregates
	settings     string // settings changes
	roomsChannel string // room entries and exits

	engine *presence.Engine
	epoch  string // Redis's data epoch at the last full read (announcer only)

	heartbeatEvery, deadAfter time.Duration

	mu      sync.Mutex
	dirty   map[int64]time.Time // users whose view here changed → last seen of their latest offline event
	devices map[int64]string    // the device kind of each user's latest session start here
	// dirtyRooms are memberships whose state here changed → public id.
	dirtyRooms map[roomKey]string
	// dirtySettings are settings changed here, not yet in Redis.
	dirtySettings map[int64][]byte
	wake          chan struct{}

	rmu   sync.RWMutex
	users map[int64]*entry // the replica: every user seen online since start
	count int              // users online in the replica
	// settingsVer is the version of each user's settings applied here
	// (settings.go).
	settingsVer map[int64]int64
	// rooms and userRooms are the replica of room membership (rooms.go).
	rooms     map[string]map[int64]string // room → user → public id
	userRooms map[int64]map[string]struct{}

	degraded atomic.Bool
	clash    atomic.Bool // another process uses this node id
	reaping  atomic.Bool // a reap is running
	token    string      // this process's claim on the node id
	lastErr  atomic.Pointer[string]
	reassert chan struct{}

	stats struct {
		announces, roundTrips, published, received, stale, gaps, resyncs, reaped, reasserts atomic.Int64
	}

	ps     *redis.PubSub // closed to end the subscriber, whose reads ignore ctx
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// entry is one user in the replica.
type entry struct {
	seq       int64
	offAt     time.Time // when the user went offline (replica sweep)
	online    bool
	st        presence.Status
	lastSeen  time.Time
	pub, self view
}

// view is how a user appears to others or to themselves; equal views need
// no event between them (as in the engine).
type view struct {
	online      bool
	mode        presence.Mode
	text, emoji string
}

var offlineView = view{mode: presence.ModeOffline}

// New returns a Node that is not yet running; see Start.
func New(cfg Config) (*Node, error) {
	if cfg.Redis == nil || cfg.NodeID == "" {
		return nil, errors.New("cluster: Redis and NodeID are required")
	}
	if strings.ContainsAny(cfg.NodeID, "\n") {
		return nil, errors.New("cluster: a node id may not contain a newline")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "presence:"
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	if cfg.Clock == nil {
		cfg.Clock = presence.SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = HeartbeatEvery
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DeadAfter
	}
	n := &Node{
		rdb: cfg.Redis, id: cfg.NodeID, prefix: cfg.Prefix, rec: cfg.Recorder, clock: cfg.Clock, log: cfg.Log,
		out:           presence.NewLocalBus(),
		channel:       cfg.Prefix + "events",
		settings:      cfg.Prefix + "settings",
		roomsChannel:  cfg.Prefix + "rooms",
		dirtyRooms:    make(map[roomKey]string),
		dirtySettings: make(map[int64][]byte),
		settingsVer:   make(map[int64]int64),
		rooms:         make(map[string]map[int64]string),
		userRooms:     make(map[int64]map[string]struct{}),
		dirty:         make(map[int64]time.Time),
		devices:       make(map[int64]string),
		sessions:      cfg.Sessions,
		wake:          make(chan struct{}, 1),
		users:         make(map[int64]*entry),
		reassert:      make(chan struct{}, 1),

		heartbeatEvery: cfg.HeartbeatEvery,
		deadAfter:      cfg.DeadAfter,
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	b := make([]byte, 12)
	rand.Read(b)
	n.token = hex.EncodeToString(b)
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// Start joins the cluster: it clears the edges a previous run of this node
// left behind, subscribes to the other nodes' changes, reads who is online
// everywhere, and starts announcing engine's changes and the node's
// heartbeat. engine must have been created with this Node as its Bus,
// Directory and Recorder. It returns the users that went offline because a
// previous run of this node left them behind (a crash), for whatever must
// tell the world once. When Redis cannot be reached Start returns an
// error: a node starts in a known state or not at all.
func (n *Node) Start(ctx context.Context, engine *presence.Engine) ([]presence.Status, error) {
	n.engine = engine
	if err := n.loadScripts(ctx); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// This process now owns the node id (a previous run's claim is
	// replaced; a second live process would notice, see heartbeatScript).
	if err := n.rdb.Set(ctx, n.key("owner", n.id), n.token, 0).Err(); err != nil {
		return nil, fmt.Errorf("cluster: claim the node id: %w", err)
	}
	// What a previous run of this node left (it crashed, or lost Redis
	// before it could leave): nobody is connected here yet.
	left, err := n.removeEdges(ctx, n.id, n.clock.Now(), true)
	if err != nil {
		return nil, fmt.Errorf("cluster: clear this node's old edges: %w", err)
	}
	if err := n.removeRoomEdges(ctx, n.id); err != nil {
		return nil, fmt.Errorf("cluster: clear this node's old room edges: %w", err)
	}
	ps := n.rdb.Subscribe(ctx, n.channel, n.settings, n.roomsChannel)
	if _, err := ps.Receive(ctx); err != nil { // the first subscription
		ps.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	if err := n.resync(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("cluster: read who is online: %w", err)
	}
	if _, _, _, err := n.heartbeat(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("cluster: heartbeat: %w", err)
	}
	n.ps = ps
	n.wg.Add(3)
	go n.subscriber(ps)
	go n.announcer()
	go n.liveness()
	return left, nil
}

// Close leaves the cluster: it sends what is still pending, removes this
// node's edges (users held by no other node go offline, recorded by this
// node) and stops. It returns the users who went offline because this node
// left, for whatever must tell the world once (webhooks). Call it after the
// engine's transports are closed.
func (n *Node) Close(ctx context.Context) ([]presence.Status, error) {
	var offline []presence.Status
	var err error
	n.once.Do(func() {
		n.stop()
		n.flush(ctx) // the last changes the engine published
		err = n.removeRoomEdges(ctx, n.id)
		var rerr error
		now := n.clock.Now()
		offline, rerr = n.removeEdges(ctx, n.id, now, true)
		if rerr != nil {
			// Redis cannot say who else holds them: record this node's
			// users offline rather than leave them online in the
			// database for good. (One still connected to another node
			// is shown online there all the same; the database's flag
			// is right again at their next change.)
			for _, id := range n.engine.LocalUsers() {
				n.rec.RecordStatus(id, false, now)
				if n.sessions != nil {
					n.sessions.RecordSessionEnd(id, now)
				}
			}
		}
		err = errors.Join(err, rerr)
		if zerr := n.rdb.ZRem(ctx, n.key("nodes"), n.id).Err(); err == nil && zerr != nil {
			err = fmt.Errorf("cluster: leave: %w", zerr)
		}
	})
	return offline, err
}

// loadScripts loads every Lua script into Redis, so that EVALSHA finds
// them.
func (n *Node) loadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{announceScript, heartbeatScript, roomScript, settingsScript} {
		if err := sc.Load(ctx, n.rdb).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
	}
	return nil
}

// runScripts sends the script calls queue adds to a pipeline in one round
// trip and returns their commands. When Redis does not know a script (it
// restarted, or its scripts were flushed) it loads them all and sends the
// calls again, once.
func (n *Node) runScripts(ctx context.Context, queue func(redis.Pipeliner) []*redis.Cmd) ([]*redis.Cmd, error) {
	for attempt := 0; ; attempt++ {
		pipe := n.rdb.Pipeline()
		cmds := queue(pipe)
		_, err := pipe.Exec(ctx)
		n.stats.roundTrips.Add(1)
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
			if err := n.loadScripts(ctx); err != nil {
				return cmds, err
			}
			continue
		}
		return cmds, err
	}
}

// signal wakes the goroutine waiting on ch, unless it is already due to
// wake; it never blocks.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// stop ends the node's goroutines.
func (n *Node) stop() {
	n.cancel()
	if n.ps != nil {
		n.ps.Close()
	}
	n.wg.Wait()
}

// Err returns why the node is degraded (Redis unreachable: it serves its
// own connections only), or nil.
func (n *Node) Err() error {
	if n.clash.Load() {
		return errors.New("another process uses this --node-id")
	}
	if !n.degraded.Load() {
		return nil
	}
	msg := "unreachable"
	if p := n.lastErr.Load(); p != nil {
		msg = *p
	}
	return errors.New(msg)
}

// Stats are counters of a node's traffic with Redis.
type Stats struct {
	Announces  int64 // edge changes sent (Lua calls)
	RoundTrips int64 // Redis round trips that carried them
	Published  int64 // aggregate changes this node's calls published
	Received   int64 // aggregates received from the channel
	Stale      int64 // received aggregates older than the replica's (ignored)
	Gaps       int64 // received aggregates that skipped a sequence number
	Resyncs    int64 // full reads of who is online
	Reaped     int64 // edges of dead nodes this node removed
	Reasserts  int64 // times this node re-sent all its edges (Redis came back)
	Users      int   // users online in the replica
	Degraded   bool
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	n.rmu.RLock()
	users := n.count
	n.rmu.RUnlock()
	return Stats{
		Announces: n.stats.announces.Load(), RoundTrips: n.stats.roundTrips.Load(), Published: n.stats.published.Load(),
		Received: n.stats.received.Load(), Stale: n.stats.stale.Load(), Gaps: n.stats.gaps.Load(),
		Resyncs: n.stats.resyncs.Load(), Reaped: n.stats.reaped.Load(), Reasserts: n.stats.reasserts.Load(),
		Users: users, Degraded: n.degraded.Load(),
	}
}

// --- presence.Bus ---

// Publish implements presence.Bus for the engine: it notes that the user's
// view on this node changed. It never blocks (the engine calls it under its
// lock); the announcer reads the engine's current state and sends it.
func (n *Node) Publish(e presence.Event) {
	n.mu.Lock()
	if !e.Online && e.Scope != presence.ScopeSelf {
		n.dirty[e.UserID] = e.LastSeen
	} else if _, ok := n.dirty[e.UserID]; !ok {
		n.dirty[e.UserID] = time.Time{}
	}
	n.mu.Unlock()
	signal(n.wake)
}

// Subscribe implements presence.Bus: the events are the cluster's, derived
// from every node's changes.
func (n *Node) Subscribe(buffer int) *presence.Subscription { return n.out.Subscribe(buffer) }

// --- presence.Directory ---

// Lookup implements presence.Directory.
func (n *Node) Lookup(userID int64) (presence.Status, bool) {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	if en := n.users[userID]; en != nil && en.online {
		return en.st, true
	}
	return presence.Status{}, false
}

// All implements presence.Directory.
func (n *Node) All() []presence.Status {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	out := make([]presence.Status, 0, n.count)
	for _, en := range n.users {
		if en.online {
			out = append(out, en.st)
		}
	}
	return out
}

// Count implements presence.Directory.
func (n *Node) Count() int {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	return n.count
}

// --- presence.Recorder ---

// RecordStatus implements presence.Recorder. The engine's own online and
// offline records are dropped: a user's first and last node record them,
// once, from the aggregate (see announce).
//
// Going offline here still marks the user's edge for the announcer: the
// engine publishes nothing when a hidden user (invisible, or visible to
// some) leaves, since others already see them offline, yet their edge
// must go.
func (n *Node) RecordStatus(userID int64, online bool, lastSeen time.Time) {
	if online {
		return
	}
	n.mu.Lock()
	if _, ok := n.dirty[userID]; !ok || !lastSeen.IsZero() {
		n.dirty[userID] = lastSeen
	}
	n.mu.Unlock()
	signal(n.wake)
}

// RecordActivity implements presence.Recorder.
func (n *Node) RecordActivity(userID int64, at time.Time) { n.rec.RecordActivity(userID, at) }

// RecordSessionStart implements presence.SessionRecorder: the engine's
// session starts are not recorded as such (the cluster records one per
// user), but their device kind is kept for the cluster's record.
func (n *Node) RecordSessionStart(userID int64, _ time.Time, device string) {
	n.mu.Lock()
	n.devices[userID] = device
	n.mu.Unlock()
}

// RecordSessionEnd implements presence.SessionRecorder: dropped, like
// RecordSessionStart.
func (n *Node) RecordSessionEnd(userID int64, _ time.Time) {
	n.mu.Lock()
	delete(n.devices, userID)
	n.mu.Unlock()
}

func (n *Node) key(parts ...string) string { return n.prefix + strings.Join(parts, ":") }

func (n *Node) userKey(id int64) string { return n.prefix + "u:" + strconv.FormatInt(id, 10) }

func (n *Node) setDegraded(err error) {
	msg := "redis: " + err.Error()
	n.lastErr.Store(&msg)
	if !n.degraded.Swap(true) {
		n.log.Warn("cluster: lost Redis; serving this node's connections only", "err", err)
	}
}

type nopRecorder struct{}

func (nopRecorder) RecordStatus(int64, bool, time.Time) {}
func (nopRecorder) RecordActivity(int64, time.Time)     {}

// joinScript registers a node in the sorted set of nodes and reports
// whether no other node sent a heartbeat within the given time; a node
// alone also takes the reset lock (see Alone), which nodes that are not
// alone wait on.
//
// KEYS: 1 the nodes' sorted set, 2 the reset lock. ARGV: 1 this node, 2
// silence in milliseconds after which a node is dead, 3 how long the lock
// lasts at most, in milliseconds.
var joinScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
redis.call('ZADD', KEYS[1], now, ARGV[1])
for _, id in ipairs(live) do
  if id ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
`)

// resetLockFor bounds how long others wait for the first node's reset.
const resetLockFor = 60 * time.Second

// Alone registers nodeID among the live nodes and reports whether no other
// node has sent a heartbeat within DeadAfter: the cluster is starting (or
// restarting) with this node. Of nodes that start together, exactly one is
// alone. Call it before Start. The node alone should reset what the shared
// database says is online, as a single node does at start-up, then call
// ResetDone; the others call WaitReset before they serve, so that the
// reset cannot erase their users.
func Alone(ctx context.Context, rdb *redis.Client, prefix, nodeID string, deadAfter time.Duration) (bool, error) {
	if prefix == "" {
		prefix = "presence:"
	}
	if deadAfter <= 0 {
		deadAfter = DeadAfter
	}
	alone, err := joinScript.Run(ctx, rdb, []string{prefix + "nodes", prefix + "resetting"}, nodeID, deadAfter.Milliseconds(), resetLockFor.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("cluster: join: %w", err)
	}
	return alone == 1, nil
}

// ResetDone releases the reset lock Alone took.
func ResetDone(ctx context.Context, rdb *redis.Client, prefix string) error {
	if prefix == "" {
		prefix = "presence:"
	}
	if err := rdb.Del(ctx, prefix+"resetting").Err(); err != nil {
		return fmt.Errorf("cluster: reset done: %w", err)
	}
	return nil
}

// WaitReset waits until no node holds the reset lock (at most
// resetLockFor, the lock's own life), or ctx is done.
func WaitReset(ctx context.Context, rdb *redis.Client, prefix string) error {
	if prefix == "" {
		prefix = "presence:"
	}
	for {
		n, err := rdb.Exists(ctx, prefix+"resetting").Result()
		if err != nil {
			return fmt.Errorf("cluster: wait for the first node's reset: %w", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait for the first node's reset: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
