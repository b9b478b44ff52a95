package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencehq/presence/cluster"
	"github.com/presencehq/presence/cluster/clustertest"
	"github.com/presencehq/presence/presence"
)

// node is one presence node of a test: an engine on a fake clock (for
// grace) and its cluster.Node.
type node struct {
	*cluster.Node
	engine *presence.Engine
	events *presence.Subscription
	rec    *recorder
}

var testStart = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func MustStartNode(tb testing.TB, r *clustertest.Redis, id string, clock *presence.FakeClock) *node {
	tb.Helper()
	rec := &recorder{}
	n, err := cluster.New(cluster.Config{Redis: r.Client(), NodeID: id, Prefix: "t:", Recorder: rec, Sessions: rec, Clock: clock,
		HeartbeatEvery: 100 * time.Millisecond, DeadAfter: 600 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	e := presence.New(presence.Config{Clock: clock, Bus: n, Directory: n, Rooms: n, Recorder: n, Sessions: n, Grace: 5 * time.Second, Deadline: -1})
	events := n.Subscribe(1024)
	if _, err := n.Start(context.Background(), e); err != nil {
		tb.Fatal(err)
	}
	nd := &node{Node: n, engine: e, events: events, rec: rec}
	tb.Cleanup(func() { nd.Close(context.Background()); e.Close() })
	return nd
}

// next waits for the node's next event.
func (nd *node) next(tb testing.TB) presence.Event {
	tb.Helper()
	select {
	case e := <-nd.events.C:
		return e
	case <-time.After(5 * time.Second):
		tb.Fatalf("node %s: no event within 5 s", nd.ID())
	}
	return presence.Event{}
}

// none checks that no event arrives for a while.
func (nd *node) none(tb testing.TB, wait time.Duration) {
	tb.Helper()
	select {
	case e := <-nd.events.C:
		tb.Fatalf("node %s: unexpected event %+v", nd.ID(), e)
	case <-time.After(wait):
	}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type recorder struct {
	mu     sync.Mutex
	status []string
}

func (r *recorder) RecordStatus(id int64, online bool, lastSeen time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = append(r.status, fmt.Sprintf("%d:%v", id, online))
}
func (r *recorder) RecordActivity(int64, time.Time) {}
func (r *recorder) RecordSessionStart(id int64, _ time.Time, device string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = append(r.status, fmt.Sprintf("%d:session", id))
}
func (r *recorder) RecordSessionEnd(id int64, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = append(r.status, fmt.Sprintf("%d:end", id))
}
func (r *recorder) records() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.status...)
}

var alice = presence.User{ID: 1, Username: "alice"}

func TestTwoNodes_OneUserIsOnePresence(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)

	ca, err := a.engine.Connect(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node{a, b} {
		e := nd.next(t)
		if !e.Online || e.UserID != 1 || e.Username != "alice" || e.Mode != presence.ModeOnline || e.Remote != (nd == b) {
			t.Fatalf("node %s: got %+v, want alice online (remote on b only)", nd.ID(), e)
		}
		if st, ok := nd.engine.State(1); !ok || st.Username != "alice" {
			t.Fatalf("node %s: State = %+v, %v", nd.ID(), st, ok)
		}
		if users, _ := nd.engine.Counts(); users != 1 {
			t.Fatalf("node %s: %d users online, want 1", nd.ID(), users)
		}
	}
	// A tab on b too: one user, nothing to say.
	cb, err := b.engine.Connect(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "b's edge in Redis", func() bool { return b.Stats().Announces == 1 })
	// Closing the tab on a (past its grace) says nothing either.
	ca.Close()
	clock.Advance(6 * time.Second)
	a.none(t, 300*time.Millisecond)
	b.none(t, 0)
	if !a.engine.IsOnline(1) {
		t.Fatal("a: alice offline while her tab on b is open")
	}
	// The last tab goes: offline everywhere after the grace period.
	cb.Close()
	clock.Advance(6 * time.Second)
	for _, nd := range []*node{a, b} {
		e := nd.next(t)
		if e.Online || e.UserID != 1 || !e.LastSeen.Equal(testStart.Add(6*time.Second)) {
			t.Fatalf("node %s: got %+v, want alice offline, last seen when her last tab closed", nd.ID(), e)
		}
		if nd.engine.IsOnline(1) {
			t.Fatalf("node %s: alice still online", nd.ID())
		}
	}
	// Recorded once each way, by the node that decided it, and one
	// history session, not one per node.
	// (The origin records after its call returns, maybe after the
	// event arrived.)
	records := func() string { return strings.Join(append(a.rec.records(), b.rec.records()...), " ") }
	eventually(t, "the offline record", func() bool { return len(records()) >= len("1:session 1:true 1:end 1:false") })
	if got := records(); got != "1:session 1:true 1:end 1:false" {
		t.Fatalf("recorded %v, want one online and one offline, one session", got)
	}
}

func TestNoRedisCommandsPerPing(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a := MustStartNode(t, r, "a", clock)
	c, err := a.engine.Connect(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.next(t)
	before := r.Commands(t)
	for range 1000 {
		c.Activity() // an application ping
		c.Alive()    // a protocol pong
	}
	time.Sleep(300 * time.Millisecond) // heartbeats run meanwhile (EVALSHA of the heartbeat script)
	after := r.Commands(t)
	st := a.Stats()
	if st.Announces != 1 {
		t.Fatalf("%d announcements after 1 connection and 1000 pings, want 1", st.Announces)
	}
	for cmd, calls := range after {
		if d := calls - before[cmd]; d > 0 && cmd != "evalsha" && cmd != "info" && cmd != "get" && cmd != "hello" && cmd != "client|setinfo" && cmd != "zadd" && cmd != "zrangebyscore" && cmd != "time" {
			t.Errorf("%s ran %d times during 1000 pings", cmd, d)
		}
	}
	// Each heartbeat is one EVALSHA that runs TIME, ZADD, GET (the node
	// id's owner) and ZRANGEBYSCORE; anything beyond those is a ping
	// reaching Redis.
	beats := after["zadd"] - before["zadd"]
	if d := after["get"] - before["get"]; d != beats {
		t.Fatalf("%d GET for %d heartbeats during 1000 pings", d, beats)
	}
	if d := after["evalsha"] - before["evalsha"]; d != beats {
		t.Fatalf("%d EVALSHA for %d heartbeats during 1000 pings: pings reach Redis", d, beats)
	}
}

func TestDeadNodeIsReaped(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a := MustStartNode(t, r, "a", clock)
	c := MustStartNode(t, r, "c", clock)
	bob := presence.User{ID: 2, Username: "bob"}
	if _, err := c.engine.Connect(alice, nil); err != nil { // alice only on c
		t.Fatal(err)
	}
	if _, err := c.engine.Connect(bob, nil); err != nil { // bob on c and a
		t.Fatal(err)
	}
	if _, err := a.engine.Connect(bob, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees both online", func() bool { return a.engine.IsOnline(1) && a.engine.IsOnline(2) })
	c.Crash()
	start := time.Now()
	eventually(t, "a sees alice offline", func() bool { return !a.engine.IsOnline(1) })
	t.Logf("alice offline on a %v after c died (dead after 600 ms)", time.Since(start).Round(time.Millisecond))
	if !a.engine.IsOnline(2) {
		t.Fatal("bob went offline with c although he is connected to a")
	}
	if got := a.Stats().Reaped; got != 2 {
		t.Fatalf("a reaped %d edges, want 2", got)
	}
}

func TestRestartedNodeClearsItsEdges(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a := MustStartNode(t, r, "a", clock)
	c := MustStartNode(t, r, "c", clock)
	if _, err := c.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees alice", func() bool { return a.engine.IsOnline(1) })
	c.Crash()
	// c comes back at once, before anyone could take it for dead.
	MustStartNode(t, r, "c", clock)
	eventually(t, "alice offline once c restarted", func() bool { return !a.engine.IsOnline(1) })
	if got := a.Stats().Reaped; got != 0 {
		t.Fatalf("a reaped %d edges: the restarted node should have cleared them", got)
	}
}

func TestRedisRestartedMidRun(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
	if _, err := a.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b sees alice", func() bool { return b.engine.IsOnline(1) })
	r.Restart() // keeps nothing: every edge is gone (the nodes may be degraded for a moment only)
	start := time.Now()
	eventually(t, "both healthy again", func() bool { return a.Err() == nil && b.Err() == nil })
	eventually(t, "b sees alice again", func() bool {
		n, _ := r.Client().SCard(context.Background(), "t:online").Result()
		return n == 1 && b.engine.IsOnline(1)
	})
	t.Logf("truth back %v after Redis returned", time.Since(start).Round(time.Millisecond))
	// And it keeps working: alice leaves, b hears it.
	bob := presence.User{ID: 2, Username: "bob"}
	if _, err := b.engine.Connect(bob, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees bob", func() bool { return a.engine.IsOnline(2) })
}

func TestSettingsReachOtherNodes(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
	if _, err := b.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	a.next(t)
	// Alice sets "do not disturb" through node a, where she has no socket.
	a.engine.SetSettings(1, presence.Settings{Mode: presence.ModeDND, Text: "in a meeting"})
	for _, nd := range []*node{a, b} {
		var e presence.Event
		for e = nd.next(t); e.Mode == presence.ModeOnline; e = nd.next(t) {
		}
		if e.Mode != presence.ModeDND || e.StatusText != "in a meeting" || !e.Online {
			t.Fatalf("node %s: got %+v, want alice dnd, in a meeting", nd.ID(), e)
		}
	}
	if s := b.engine.Settings(1); s.Mode != presence.ModeDND {
		t.Fatalf("b's settings for alice: %+v", s)
	}
	// Going invisible: others see her leave; she still sees herself.
	b.engine.SetSettings(1, presence.Settings{Mode: presence.ModeInvisible})
	e := a.next(t)
	if e.Online || e.Scope != presence.ScopeOthers {
		t.Fatalf("a: got %+v, want alice offline to others", e)
	}
	if e := a.next(t); e.Scope != presence.ScopeSelf || e.Mode != presence.ModeInvisible {
		t.Fatalf("a: got %+v, want alice's own invisible view", e)
	}
	if a.engine.IsOnline(1) {
		t.Fatal("a: an invisible user is online to everyone")
	}
}

func TestRedisDown_NodeServesItsOwn(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
	if _, err := b.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees alice", func() bool { return a.engine.IsOnline(1) })
	r.Stop()
	eventually(t, "a degraded", func() bool { return a.Err() != nil })
	// Bob comes to a while Redis is away: a's own viewers see him.
	bob := presence.User{ID: 2, Username: "bob"}
	if _, err := a.engine.Connect(bob, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees bob without Redis", func() bool { return a.engine.IsOnline(2) })
	if !a.engine.IsOnline(1) {
		t.Fatal("a forgot alice (on b) while Redis is away")
	}
	// Redis is back: b learns of bob within a heartbeat or two.
	r.Restart()
	eventually(t, "b sees bob once Redis is back", func() bool { return b.engine.IsOnline(2) && b.Err() == nil })
	eventually(t, "a sees alice after the full read", func() bool { return a.engine.IsOnline(1) && a.Err() == nil })
}

func TestRoomsAcrossNodes(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
	watch := b.engine.WatchRooms(16)
	defer watch.Close()
	bob := presence.User{ID: 2, Username: "bob"}
	ca, err := a.engine.Connect(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.engine.Connect(bob, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.SetRoom("doc"); err != nil {
		t.Fatal(err)
	}
	if err := cb.SetRoom("doc"); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node{a, b} {
		eventually(t, "alice (on a) and bob (on b) in doc on node "+nd.ID(), func() bool {
			m := nd.engine.RoomMembers("doc")
			return len(m) == 2 && m[0].Username == "alice" && m[1].Username == "bob" && nd.engine.InRoom("doc", 1)
		})
	}
	if got := b.engine.RoomsOf(1); len(got) != 1 || got[0] != "doc" {
		t.Fatalf("b: RoomsOf(alice) = %v", got)
	}
	// A second tab of alice's in the room, on b: nothing to announce.
	ca2, err := b.engine.Connect(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca2.SetRoom("doc"); err != nil {
		t.Fatal(err)
	}
	// Alice's tab on a leaves the room: she is still in it from b.
	if err := ca.SetRoom(""); err != nil {
		t.Fatal(err)
	}
	clock.Advance(6 * time.Second)
	time.Sleep(200 * time.Millisecond)
	if !a.engine.InRoom("doc", 1) {
		t.Fatal("alice left doc on a although her tab on b is in it")
	}
	ca2.Close()
	clock.Advance(6 * time.Second)
	eventually(t, "alice out of doc on a", func() bool { return !a.engine.InRoom("doc", 1) })
	var evs []string
	for len(evs) < 3 {
		select {
		case ev := <-watch.C:
			evs = append(evs, fmt.Sprintf("%d:%v", ev.UserID, ev.In))
		case <-time.After(5 * time.Second):
			t.Fatalf("b's room watch got %v, want entries of alice and bob, then alice's exit", evs)
		}
	}
	if evs[2] != "1:false" || !(evs[0] == "1:true" && evs[1] == "2:true" || evs[0] == "2:true" && evs[1] == "1:true") {
		t.Fatalf("b's room watch got %v, want entries of alice and bob, then alice's exit", evs)
	}
	if rooms, members := a.engine.RoomCounts(); rooms != 1 || members != 1 {
		t.Fatalf("a: %d rooms, %d members; want doc with bob", rooms, members)
	}
	// b dies: bob leaves doc for a once b is reaped.
	b.Crash()
	eventually(t, "bob out of doc after b died", func() bool {
		rooms, _ := a.engine.RoomCounts()
		return rooms == 0 && !a.engine.InRoom("doc", 2)
	})
}

func TestNodeIDClash(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	first := MustStartNode(t, r, "a", clock)
	MustStartNode(t, r, "a", clock) // a second process given the same --node-id
	eventually(t, "the first process reports the clash", func() bool {
		err := first.Err()
		return err != nil && strings.Contains(err.Error(), "--node-id")
	})
}

// BenchmarkEdgeChange: users coming online on one node until the other
// node's replica has them all: what one edge change costs end to end
// (Lua call, pipeline, pub/sub, replica), and Redis's own CPU per call
// (INFO commandstats).
func BenchmarkEdgeChange(b *testing.B) {
	r := clustertest.MustStart(b)
	clock := presence.NewFakeClock(testStart)
	a, other := MustStartNode(b, r, "a", clock), MustStartNode(b, r, "b", clock)
	before := r.Commands(b)
	b.ResetTimer()
	for i := range b.N {
		if _, err := a.engine.Connect(presence.User{ID: int64(i + 1), Username: fmt.Sprint("u", i)}, nil); err != nil {
			b.Fatal(err)
		}
	}
	for other.Count() < b.N {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	after := r.Commands(b)
	st := a.Stats()
	b.ReportMetric(float64(st.Announces)/float64(st.RoundTrips), "edges/round-trip")
	b.ReportMetric(float64(after["publish"]-before["publish"])/float64(b.N), "publish/edge")
	b.ReportMetric(r.MicrosPerCall(b, "evalsha"), "redis-µs/evalsha")
}

// BenchmarkPubSubDelivery: what Redis spends per pub/sub message delivered,
// the cost that grows as changes × nodes (docs/SCALING.md, capacity
// model): 100 subscriber connections (nodes) on one channel, ~200-byte
// messages.
func BenchmarkPubSubDelivery(b *testing.B) {
	r := clustertest.MustStart(b)
	ctx := context.Background()
	const nodes = 100
	var got atomic.Int64
	var wg sync.WaitGroup
	for range nodes {
		ps := r.Client().Subscribe(ctx, "bench")
		if _, err := ps.Receive(ctx); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ps.Channel(redis.WithChannelSize(1 << 16)) {
				got.Add(1)
			}
		}()
		b.Cleanup(func() { ps.Close() })
	}
	pub := r.Client()
	msg := strings.Repeat("x", 200)
	cpu0 := r.CPUSeconds(b)
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		p := pub.Pipeline()
		for j := i; j < min(i+100, b.N); j++ {
			p.Publish(ctx, "bench", msg)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N)*nodes {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(1e6*(r.CPUSeconds(b)-cpu0)/float64(int64(b.N)*nodes), "redis-µs/delivery")
}
