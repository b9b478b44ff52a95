package cluster_test

// Review tests: each one demonstrates a problem found while reviewing the
// cluster package. They fail on the code as reviewed; the fix proposed for
// each is in the review report.

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/presencehq/presence/cluster"
	"github.com/presencehq/presence/cluster/clustertest"
	"github.com/presencehq/presence/presence"
)

// startNodeWith is MustStartNode with the node's liveness timing chosen by
// the test.
func startNodeWith(tb testing.TB, r *clustertest.Redis, id string, clock *presence.FakeClock, every, dead time.Duration) *node {
	tb.Helper()
	rec := &recorder{}
	n, err := cluster.New(cluster.Config{Redis: r.Client(), NodeID: id, Prefix: "t:", Recorder: rec, Sessions: rec, Clock: clock,
		HeartbeatEvery: every, DeadAfter: dead})
	if err != nil {
		tb.Fatal(err)
	}
	e := presence.New(presence.Config{Clock: clock, Bus: n, Directory: n, Recorder: n, Sessions: n, Grace: 5 * time.Second, Deadline: -1})
	events := n.Subscribe(1024)
	if _, err := n.Start(context.Background(), e); err != nil {
		tb.Fatal(err)
	}
	nd := &node{Node: n, engine: e, events: events, rec: rec}
	tb.Cleanup(func() { nd.Close(context.Background()); e.Close() })
	return nd
}

// A hidden user (visible to friends only, or invisible) who leaves stays
// online in Redis for ever: the engine publishes nothing when a user whose
// public view is already offline goes (goOffline publishes only when
// us.pub.online), so Node.Publish never marks them dirty and their edge is
// never removed. Friends keep seeing them online on every node, the
// database keeps them online and their history session never ends.
func TestReview_HiddenUserWhoLeavesIsAGhost(t *testing.T) {
	for _, s := range []presence.Settings{
		{Mode: presence.ModeOnline, Visibility: presence.VisibleFriends},
		{Mode: presence.ModeInvisible},
	} {
		t.Run(string(s.Mode)+"/"+string(s.Visibility), func(t *testing.T) {
			r := clustertest.MustStart(t)
			clock := presence.NewFakeClock(testStart)
			a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
			a.engine.SetSettings(1, s)
			eventually(t, "b has alice's settings", func() bool { return b.engine.Settings(1).Normalized() == s.Normalized() })
			c, err := a.engine.Connect(alice, nil)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "b knows alice is connected", func() bool { _, ok := b.engine.State(1); return ok })
			c.Close()
			clock.Advance(6 * time.Second) // past the grace period
			time.Sleep(500 * time.Millisecond)
			if _, ok := a.engine.LocalState(1); ok {
				t.Fatal("a's engine still holds alice")
			}
			n, _ := r.Client().SCard(context.Background(), "t:online").Result()
			_, onA := a.engine.State(1)
			_, onB := b.engine.State(1)
			if n != 0 || onA || onB {
				t.Fatalf("alice left a (the only node she was on) 500 ms ago; Redis online set has %d users, State on a: %v, on b: %v (want 0, false, false)", n, onA, onB)
			}
		})
	}
}

// A node that is alive but late with its heartbeats (a long GC or VM pause,
// a liveness goroutine busy reaping a big node, CPU starvation) is reaped
// by the others: its users go offline everywhere, itself included. When
// its heartbeat comes back it merely re-adds itself to the sorted set:
// nothing tells it that it was reaped (it was never "degraded"), so it
// never re-asserts its edges, and users connected to it stay offline
// until they reconnect.
func TestReview_SlowNodeReapedNeverReasserts(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	// a beats every 1.5 s (a stand-in for a 1.5 s pause); b takes 600 ms
	// of silence for death.
	a := startNodeWith(t, r, "a", clock, 1500*time.Millisecond, 600*time.Millisecond)
	b := startNodeWith(t, r, "b", clock, 100*time.Millisecond, 600*time.Millisecond)
	if _, err := a.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b sees alice", func() bool { return b.engine.IsOnline(1) })
	eventually(t, "b reaped a", func() bool { return b.Stats().Reaped > 0 })
	// a is alive and heartbeats again; give it a few beats to notice.
	time.Sleep(4 * time.Second)
	if a.Err() != nil {
		t.Fatalf("a degraded: %v", a.Err())
	}
	if !a.engine.IsOnline(1) || !b.engine.IsOnline(1) {
		t.Fatalf("alice is connected to a, which is alive, yet online on a: %v, on b: %v (a re-asserted %d times)",
			a.engine.IsOnline(1), b.engine.IsOnline(1), a.Stats().Reasserts)
	}
}

// Redis restarted from a snapshot (RDB persistence, an AOF that lost its
// last second, a replica promoted by Sentinel) keeps its epoch key but
// hands out sequence numbers the replicas have already seen: every node
// ignores the user's next changes as stale, and a resync does not help
// (applyRead skips what is older than the replica). Here alice leaves
// and stays online on b: a ghost.
func TestReview_RedisRestoredFromSnapshotSequenceGoesBack(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
	c, err := a.engine.Connect(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "b sees alice", func() bool { return b.engine.IsOnline(1) })
	ctx := context.Background()
	if err := r.Client().Save(ctx).Err(); err != nil { // the snapshot: alice online, seq 1
		t.Fatal(err)
	}
	for _, m := range []presence.Mode{presence.ModeDND, presence.ModeOnline, presence.ModeDND, presence.ModeOnline} {
		a.engine.SetSettings(1, presence.Settings{Mode: m})
		eventually(t, "b sees alice "+string(m), func() bool { st, _ := b.engine.State(1); return st.Mode == m })
	}
	r.Restart() // loads the snapshot from its directory
	eventually(t, "both healthy again", func() bool { return a.Err() == nil && b.Err() == nil })
	time.Sleep(500 * time.Millisecond) // re-assertions and full reads
	c.Close()
	clock.Advance(6 * time.Second)
	deadline := time.Now().Add(3 * time.Second)
	for b.engine.IsOnline(1) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	n, _ := r.Client().SCard(ctx, "t:online").Result()
	if b.engine.IsOnline(1) {
		t.Fatalf("alice left; Redis has %d users online, yet b shows her online (b ignored %d aggregates as stale)", n, b.Stats().Stale)
	}
}

// Settings travel as fire-and-forget pub/sub messages and nothing re-reads
// them: a node whose subscription is being renewed when a user goes
// invisible elsewhere keeps its old view of the user's settings for good,
// and since the aggregate shows the node that shows the user most
// present, everyone sees an invisible user online.
func TestReview_SettingsMissedDuringResubscribeShowInvisibleUserOnline(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
	// alice has a tab on each node.
	if _, err := a.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both see alice", func() bool { return a.engine.IsOnline(1) && b.engine.IsOnline(1) })
	ctx := context.Background()
	// A blip on the subscribers' connections only (CLIENT KILL stands
	// for a network hiccup, a proxy restart, a client-output-buffer
	// limit): alice goes invisible through a meanwhile.
	if err := r.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	a.engine.SetSettings(1, presence.Settings{Mode: presence.ModeInvisible})
	time.Sleep(time.Second) // resubscribed, re-asserted, read again
	if a.Err() != nil || b.Err() != nil {
		t.Fatalf("degraded: a %v, b %v", a.Err(), b.Err())
	}
	if b.engine.Settings(1).Mode != presence.ModeInvisible || a.engine.IsOnline(1) || b.engine.IsOnline(1) {
		t.Fatalf("alice chose invisible on a; b's settings for her: %q; shown online on a: %v, on b: %v",
			b.engine.Settings(1).Mode, a.engine.IsOnline(1), b.engine.IsOnline(1))
	}
}

// A change this node decided, published while its own subscription was
// being renewed, comes back to it only through the full read, which
// applies it as Remote (origin ""): no node sees it with Remote false, so
// no node sends its webhook (webhook.Dispatcher.changed skips Remote).
func TestReview_OwnChangeMissedBySubscriberLosesItsWebhook(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a, b := MustStartNode(t, r, "a", clock), MustStartNode(t, r, "b", clock)
	if err := r.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a and b see alice", func() bool { return a.engine.IsOnline(1) && b.engine.IsOnline(1) })
	var local int
	for _, nd := range []*node{a, b} {
		for len(nd.events.C) > 0 {
			if e := <-nd.events.C; e.UserID == 1 && e.Online && !e.Remote {
				local++
			}
		}
	}
	if local != 1 {
		t.Fatalf("alice came online through a; %d nodes published it as their own (want 1: the one that sends the webhook)", local)
	}
}

// Close after Start leaves no goroutine behind.
func TestReview_NoGoroutineLeak(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	warm := MustStartNode(t, r, "warm", clock) // the client pools' own goroutines
	_ = warm
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := range 5 {
		rec := &recorder{}
		n, err := cluster.New(cluster.Config{Redis: r.Client(), NodeID: "x", Prefix: "t:", Recorder: rec, Sessions: rec, Clock: clock,
			HeartbeatEvery: 50 * time.Millisecond, DeadAfter: 600 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e := presence.New(presence.Config{Clock: clock, Bus: n, Directory: n, Recorder: n, Sessions: n, Grace: 5 * time.Second, Deadline: -1})
		if _, err := n.Start(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		c, _ := e.Connect(presence.User{ID: int64(100 + i), Username: "x"}, nil)
		time.Sleep(100 * time.Millisecond)
		c.Close()
		if _, err := n.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.Close()
	}
	time.Sleep(300 * time.Millisecond)
	// Each r.Client() has its own pool (its connections' goroutines are
	// the client's, closed at cleanup), so allow a few per client.
	if after := runtime.NumGoroutine(); after > before+5*2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after five Start/Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// A blip on the subscriber's connection alone (Redis itself is fine)
// marks the whole node degraded until its next heartbeat; meanwhile flush
// does not even try Redis and applies the node's own view: a user who
// closes their tab here while still connected to another node is shown
// offline here, as this node's own decision (Remote false), so its
// dispatcher sends a user.offline webhook for a user who never left. The
// full read after the blip shows her online again as a Remote change,
// so no user.online follows: receivers keep her offline.
func TestReview_SubscriberBlipShowsMultiNodeUserOffline(t *testing.T) {
	r := clustertest.MustStart(t)
	clock := presence.NewFakeClock(testStart)
	a := startNodeWith(t, r, "a", clock, time.Second, 5*time.Second) // a heartbeat takes up to 1 s to clear degraded
	b := MustStartNode(t, r, "b", clock)
	ca, err := a.engine.Connect(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.engine.Connect(alice, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both edges in Redis", func() bool { return a.Stats().Announces >= 1 && b.Stats().Announces >= 1 && b.engine.IsOnline(1) })
	for len(a.events.C) > 0 {
		<-a.events.C
	}
	if err := r.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a's subscriber hears of it (and marks a degraded until its next heartbeat)
	ca.Close()
	clock.Advance(6 * time.Second)
	time.Sleep(300 * time.Millisecond)
	for len(a.events.C) > 0 {
		if e := <-a.events.C; e.UserID == 1 && !e.Online && !e.Remote {
			t.Fatalf("a published alice offline as its own decision (%+v) while she is connected to b and Redis was reachable", e)
		}
	}
}

// Alone is asked before a node's first heartbeat: nodes that start
// together (a whole cluster deployed or restarted at once) all find
// themselves alone and each resets the database's online users, wiping
// those the first one up has already recorded online.
func TestReview_NodesStartingTogetherAreAllAlone(t *testing.T) {
	r := clustertest.MustStart(t)
	ctx := context.Background()
	rdb := r.Client()
	aloneA, err := cluster.Alone(ctx, rdb, "t:", "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	aloneB, err := cluster.Alone(ctx, rdb, "t:", "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if aloneA && aloneB {
		t.Fatal("a and b, starting together, are both alone: both reset the database's online users")
	}
}
