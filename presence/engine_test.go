package presence_test

import (
	"errors"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is an engine on a fake clock with a subscriber watching its bus.
type fixture struct {
	clock  *presence.FakeClock
	engine *presence.Engine
	sub    *presence.Subscription
}

func newFixture(tb testing.TB, cfg presence.Config) *fixture {
	tb.Helper()
	f := &fixture{clock: presence.NewFakeClock(t0)}
	cfg.Clock = f.clock
	f.engine = presence.New(cfg)
	f.sub = f.engine.Bus().Subscribe(64)
	tb.Cleanup(func() { f.sub.Close(); f.engine.Close() })
	return f
}

// events drains and returns the events published so far.
func (f *fixture) events() []presence.Event {
	var out []presence.Event
	for {
		select {
		case e := <-f.sub.C:
			out = append(out, e)
		default:
			return out
		}
	}
}

// peer records what the engine asks of a connection's transport.
type peer struct{ pings, kicks int }

func (p *peer) Ping() { p.pings++ }
func (p *peer) Kick() { p.kicks++ }

func (f *fixture) mustConnect(tb testing.TB, u presence.User, p presence.Peer) *presence.Conn {
	tb.Helper()
	c, err := f.engine.Connect(u, p)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	return c
}

func expectEvents(tb testing.TB, got []presence.Event, want ...presence.Event) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d events %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			tb.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

var alice = presence.User{ID: 1, Username: "alice"}
var bob = presence.User{ID: 2, Username: "bob"}

func TestEngine_Connections(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFixture(t, presence.Config{Grace: 5 * time.Second, Deadline: -1})
		c1 := f.mustConnect(t, alice, nil)
		expectEvents(t, f.events(), presence.Event{UserID: 1, Username: "alice", Online: true, LastSeen: t0, Mode: presence.ModeOnline})

		f.clock.Advance(time.Second)
		c2 := f.mustConnect(t, alice, nil)
		expectEvents(t, f.events()) // second tab: no event

		c1.Close()
		f.clock.Advance(time.Minute)
		expectEvents(t, f.events()) // one tab left: still online
		if !f.engine.IsOnline(1) {
			t.Fatal("alice offline with one connection open")
		}

		c2.Close()
		closedAt := f.clock.Now()
		f.clock.Advance(5*time.Second - time.Millisecond)
		expectEvents(t, f.events()) // inside grace
		if !f.engine.IsOnline(1) {
			t.Fatal("alice offline inside grace period")
		}
		f.clock.Advance(time.Millisecond)
		expectEvents(t, f.events(), presence.Event{UserID: 1, Username: "alice", Online: false, LastSeen: closedAt, Mode: presence.ModeOffline})
		if f.engine.IsOnline(1) {
			t.Fatal("alice still online after grace")
		}
		if u, c := f.engine.Counts(); u != 0 || c != 0 {
			t.Fatalf("counts = %d users %d conns, want 0 0", u, c)
		}
	})

	t.Run("ReconnectInsideGrace", func(t *testing.T) {
		f := newFixture(t, presence.Config{Grace: 5 * time.Second, Deadline: -1})
		c := f.mustConnect(t, alice, nil)
		f.events()
		c.Close()
		f.clock.Advance(4 * time.Second)
		c = f.mustConnect(t, alice, nil) // a page reload
		f.clock.Advance(time.Hour)
		expectEvents(t, f.events())
		if !f.engine.IsOnline(1) {
			t.Fatal("alice offline after reconnecting inside grace")
		}
		c.Close()
		f.clock.Advance(5 * time.Second)
		if got := f.events(); len(got) != 1 || got[0].Online {
			t.Fatalf("events = %+v, want one offline", got)
		}
	})

	t.Run("CloseTwice", func(t *testing.T) {
		f := newFixture(t, presence.Config{Grace: -1, Deadline: -1})
		c1 := f.mustConnect(t, alice, nil)
		c2 := f.mustConnect(t, alice, nil)
		c1.Close()
		c1.Close() // must not count as c2 closing
		if !f.engine.IsOnline(1) {
			t.Fatal("double Close took alice offline")
		}
		c2.Close()
		if f.engine.IsOnline(1) {
			t.Fatal("alice online with no connections and no grace")
		}
	})

	t.Run("Independent users", func(t *testing.T) {
		f := newFixture(t, presence.Config{Grace: time.Second, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		f.mustConnect(t, bob, nil)
		a.Close()
		f.clock.Advance(time.Second)
		online := f.engine.Online()
		if len(online) != 1 || online[0].Username != "bob" {
			t.Fatalf("online = %+v, want only bob", online)
		}
	})

	t.Run("ErrTooManyConnections", func(t *testing.T) {
		f := newFixture(t, presence.Config{Deadline: -1, MaxConnsPerUser: 2})
		f.mustConnect(t, alice, nil)
		f.mustConnect(t, alice, nil)
		if _, err := f.engine.Connect(alice, nil); !errors.Is(err, presence.ErrTooManyConnections) {
			t.Fatalf("third connect err = %v, want ErrTooManyConnections", err)
		}
		f.mustConnect(t, bob, nil)
	})

	t.Run("ErrClosed", func(t *testing.T) {
		f := newFixture(t, presence.Config{Deadline: -1})
		f.engine.Close()
		if _, err := f.engine.Connect(alice, nil); !errors.Is(err, presence.ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	})
}

func TestEngine_Deadline(t *testing.T) {
	f := newFixture(t, presence.Config{Grace: 5 * time.Second, Deadline: 30 * time.Second, PingAfter: 10 * time.Second})
	silentPeer, chattyPeer := &peer{}, &peer{}
	silent := f.mustConnect(t, alice, silentPeer)
	chatty := f.mustConnect(t, bob, chattyPeer)
	f.events()

	// bob answers every 10 s, alice never does.
	for range 3 {
		f.clock.Advance(10 * time.Second)
		chatty.Alive()
	}
	f.clock.Advance(10 * time.Second) // 40 s: alice is past her deadline
	chatty.Activity()
	if silentPeer.kicks != 1 || chattyPeer.kicks != 0 {
		t.Fatalf("kicks: alice %d, bob %d; want 1, 0", silentPeer.kicks, chattyPeer.kicks)
	}
	// The silent one was pinged (a chance to answer) before being dropped;
	// the one answering every 10 s was pinged at most once per silence.
	if silentPeer.pings < 2 || chattyPeer.pings > 4 {
		t.Fatalf("pings: alice %d, bob %d", silentPeer.pings, chattyPeer.pings)
	}
	silent.Close() // what the transport does when kicked: a no-op now
	f.clock.Advance(5 * time.Second)
	got := f.events()
	if len(got) != 1 || got[0].UserID != 1 || got[0].Online {
		t.Fatalf("events = %+v, want alice offline", got)
	}
	// She went offline within deadline + sweep interval + grace.
	if !f.engine.IsOnline(2) || f.engine.IsOnline(1) {
		t.Fatalf("online = %+v", f.engine.Online())
	}
}

func TestEngine_Close(t *testing.T) {
	f := newFixture(t, presence.Config{Grace: 5 * time.Second, Deadline: -1})
	rec := &memRecorder{}
	f.engine.Close()
	e := presence.New(presence.Config{Clock: f.clock, Recorder: rec, Grace: 5 * time.Second, Deadline: -1})
	a := mustConnect(t, e, alice)
	mustConnect(t, e, bob)
	f.clock.Advance(time.Second)
	a.Close() // alice is in grace
	endedA := f.clock.Now()
	f.clock.Advance(time.Second)
	e.Close()
	f.clock.Advance(time.Minute) // stale grace timers must do nothing
	want := map[int64]time.Time{1: endedA, 2: f.clock.Now().Add(-time.Minute)}
	for id, ls := range want {
		st := rec.status[id]
		if st.online || !st.lastSeen.Equal(ls) {
			t.Errorf("user %d recorded %+v, want offline last seen %v", id, st, ls)
		}
	}
	if u, c := e.Counts(); u != 0 || c != 0 {
		t.Fatalf("counts after Close = %d, %d", u, c)
	}
}

func mustConnect(tb testing.TB, e *presence.Engine, u presence.User) *presence.Conn {
	tb.Helper()
	c, err := e.Connect(u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

type recStatus struct {
	online   bool
	lastSeen time.Time
}

type memRecorder struct {
	status   map[int64]recStatus
	activity map[int64]time.Time
}

func (r *memRecorder) RecordStatus(id int64, online bool, lastSeen time.Time) {
	if r.status == nil {
		r.status = map[int64]recStatus{}
	}
	r.status[id] = recStatus{online, lastSeen}
}

func (r *memRecorder) RecordActivity(id int64, at time.Time) {
	if r.activity == nil {
		r.activity = map[int64]time.Time{}
	}
	r.activity[id] = at
}

// TestEngine_OnlineFirst checks that OnlineFirst is the head of Online and
// its length, for every n, whatever the order users came in, with hidden
// users left out of both.
func TestEngine_OnlineFirst(t *testing.T) {
	f := newFixture(t, presence.Config{})
	names := []string{"mallory", "Bob", "alice", "bob", "Zed", "carol", "dave", "Alice", "erin", "frank", "ghost", "hidden"}
	for i, name := range names {
		f.mustConnect(t, presence.User{ID: int64(100 - i), Username: name}, &peer{})
	}
	f.engine.SetSettings(100-10, presence.Settings{Mode: presence.ModeInvisible})
	f.engine.SetSettings(100-11, presence.Settings{Mode: presence.ModeOnline, Visibility: presence.VisibleFriends})
	all := f.engine.Online()
	if len(all) != len(names)-2 {
		t.Fatalf("Online() has %d users, want %d", len(all), len(names)-2)
	}
	if first, total := f.engine.OnlineFirst(-1); len(first) != 0 || total != len(all) {
		t.Fatalf("OnlineFirst(-1) = %d users, total %d; want none, %d", len(first), total, len(all))
	}
	for n := 0; n <= len(names)+1; n++ {
		first, total := f.engine.OnlineFirst(n)
		if total != len(all) {
			t.Fatalf("OnlineFirst(%d) total = %d, want %d", n, total, len(all))
		}
		want := all[:min(n, len(all))]
		if len(first) != len(want) {
			t.Fatalf("OnlineFirst(%d) returned %d users, want %d", n, len(first), len(want))
		}
		for i := range want {
			if first[i] != want[i] {
				t.Fatalf("OnlineFirst(%d)[%d] = %+v, want %+v", n, i, first[i], want[i])
			}
		}
	}
	// Case-insensitive by name, then by id: Alice (93) before alice (98).
	if got := all[0]; got.Username != "Alice" || all[1].Username != "alice" {
		t.Fatalf("Online() starts %q, %q; want Alice, alice", all[0].Username, all[1].Username)
	}
}
