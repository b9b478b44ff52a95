package presence_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// lateClock is a FakeClock whose timers cannot be stopped once scheduled:
// Stop reports false and the call still runs when its time comes. That is
// what a time.Timer does when its function has already started (fired but
// waiting for the engine's lock) as Stop is called: the callback arrives
// late, after the state it was scheduled for has changed.
type lateClock struct{ *presence.FakeClock }

type lateTimer struct{}

func (lateTimer) Stop() bool { return false }

func (c lateClock) AfterFunc(d time.Duration, f func()) presence.Timer {
	c.FakeClock.AfterFunc(d, f)
	return lateTimer{}
}

// TestEngine_LateGraceTimerIgnored: alice closes her last tab (grace timer
// A due at +5 s), reopens at +3 s (A cannot be stopped: it has fired late)
// and closes again at +4 s (timer B due at +9 s). When A runs at +5 s it
// must be ignored — it belongs to an earlier disconnection — so alice stays
// online until B, at +9 s, with last seen +4 s. Without the generation
// guard A would take her offline 4 s early.
func TestEngine_LateGraceTimerIgnored(t *testing.T) {
	clock := lateClock{presence.NewFakeClock(t0)}
	rec := &syncRecorder{}
	e := presence.New(presence.Config{Clock: clock, Recorder: rec, Grace: 5 * time.Second, Deadline: -1})
	defer e.Close()
	sub := e.Bus().Subscribe(16)
	defer sub.Close()
	alice := presence.User{ID: 1, Username: "alice"}

	c1 := mustConnect(t, e, alice)
	c1.Close() // timer A, due +5 s
	clock.Advance(3 * time.Second)
	c2 := mustConnect(t, e, alice) // A "fails to stop"
	clock.Advance(time.Second)
	c2.Close() // timer B, due +9 s

	clock.Advance(time.Second) // +5 s: A runs, late
	if !e.IsOnline(1) {
		t.Fatal("a grace timer from an earlier disconnection took alice offline")
	}
	if s, ok := rec.get(1); !ok || !s.online {
		t.Fatalf("recorded %+v after the late timer, want still online", s)
	}
	clock.Advance(3*time.Second + 999*time.Millisecond)
	if !e.IsOnline(1) {
		t.Fatal("offline before her own grace period ended")
	}
	clock.Advance(time.Millisecond) // +9 s: B
	if e.IsOnline(1) {
		t.Fatal("still online after the grace period of her last disconnection")
	}
	if s, _ := rec.get(1); s.online || !s.lastSeen.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("recorded %+v, want offline with last seen +4 s", s)
	}
	var got []bool
	for len(sub.C) > 0 {
		got = append(got, (<-sub.C).Online)
	}
	if fmt.Sprint(got) != "[true false]" {
		t.Fatalf("events online=%v, want one online and one offline", got)
	}
}

// syncRecorder is a Recorder safe for concurrent use that also checks the
// status it is given alternates per user (never online twice in a row).
type syncRecorder struct {
	mu       sync.Mutex
	status   map[int64]recStatus
	activity map[int64]time.Time
	repeats  []string
}

func (r *syncRecorder) RecordStatus(id int64, online bool, lastSeen time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == nil {
		r.status = map[int64]recStatus{}
	}
	if prev, ok := r.status[id]; ok && prev.online == online {
		r.repeats = append(r.repeats, fmt.Sprintf("user %d online=%v twice", id, online))
	}
	r.status[id] = recStatus{online, lastSeen}
}

func (r *syncRecorder) RecordActivity(id int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.activity == nil {
		r.activity = map[int64]time.Time{}
	}
	if at.After(r.activity[id]) {
		r.activity[id] = at
	}
}

func (r *syncRecorder) get(id int64) (recStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.status[id]
	return s, ok
}

// countingPeer is a Peer safe for concurrent use: the sweep calls it from
// the goroutine advancing the clock while its connection's owner closes it.
type countingPeer struct{ pings, kicks atomic.Int64 }

func (p *countingPeer) Ping() { p.pings.Add(1) }
func (p *countingPeer) Kick() { p.kicks.Add(1) }

// TestEngine_Concurrent hammers one engine from many goroutines at once —
// tabs connecting, pinging and closing (some twice), silent tabs left to
// the heartbeat sweep, readers asking who is online — while another
// goroutine moves the fake clock through grace periods and sweeps. Run
// with -race. Afterwards nobody is online, the counts are zero, every
// user's events and recorded statuses alternate online/offline and end
// offline, and every silent tab was kicked exactly once. (Whether it was
// pinged first is not checked: the clock here races ahead of the workers,
// so a tab can register with a timestamp already past its deadline.)
func TestEngine_Concurrent(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	rec := &syncRecorder{}
	bus := presence.NewLocalBus()
	e := presence.New(presence.Config{Clock: clock, Bus: bus, Recorder: rec,
		Grace: 2 * time.Second, Deadline: 10 * time.Second, PingAfter: 3 * time.Second})
	defer e.Close()
	sub := bus.Subscribe(1 << 20)
	defer sub.Close()

	const users, workers, rounds = 20, 16, 300
	var (
		wg       sync.WaitGroup
		silentMu sync.Mutex
		silent   []*countingPeer
		stop     = make(chan struct{})
	)
	// The clock: 100 ms steps, so grace periods and sweeps run amid it all.
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		for {
			select {
			case <-stop:
				return
			default:
				clock.Advance(100 * time.Millisecond)
			}
		}
	}()
	// Readers.
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				for _, s := range e.Online() {
					if s.Username == "" {
						t.Error("online status without a username")
					}
				}
				e.Counts()
				e.IsOnline(1)
			}
		}()
	}
	// Tabs.
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				id := int64(rng.IntN(users) + 1)
				u := presence.User{ID: id, Username: fmt.Sprintf("user%d", id)}
				p := &countingPeer{}
				c, err := e.Connect(u, p)
				if err != nil {
					t.Errorf("connect: %v", err)
					return
				}
				switch rng.IntN(10) {
				case 0: // goes silent: left to the sweep
					silentMu.Lock()
					silent = append(silent, p)
					silentMu.Unlock()
					continue
				case 1:
					c.Alive()
				default:
					c.Activity()
				}
				c.Close()
				if rng.IntN(4) == 0 {
					c.Close() // idempotent, even racing the sweep
				}
			}
		}()
	}
	wg.Wait()
	// Let every silent tab reach its deadline and every grace period end.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if u, c := e.Counts(); u == 0 && c == 0 {
			break
		}
		if time.Now().After(deadline) {
			u, c := e.Counts()
			close(stop)
			<-clockDone
			t.Fatalf("still %d users and %d connections after every tab closed or went silent", u, c)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-clockDone

	for _, p := range silent {
		if p.kicks.Load() != 1 {
			t.Fatalf("a silent tab was kicked %d times, want once", p.kicks.Load())
		}
	}
	last := map[int64]bool{}
	for len(sub.C) > 0 {
		ev := <-sub.C
		if prev, ok := last[ev.UserID]; ok && prev == ev.Online {
			t.Fatalf("user %d: two events in a row with online=%v", ev.UserID, ev.Online)
		}
		last[ev.UserID] = ev.Online
	}
	if sub.Dropped() {
		t.Fatal("the test's subscriber was dropped: buffer too small")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.repeats) > 0 {
		t.Fatalf("recorded status repeated: %v", rec.repeats[:min(5, len(rec.repeats))])
	}
	for id, online := range last {
		if online || rec.status[id].online {
			t.Fatalf("user %d ends online (event %v, recorded %+v)", id, online, rec.status[id])
		}
	}
	if len(last) != users {
		t.Fatalf("%d users had events, want %d", len(last), users)
	}
}

// TestEngine_ConcurrentClose: Close racing connects, closes and the sweep
// leaves nothing behind and records everyone offline.
func TestEngine_ConcurrentClose(t *testing.T) {
	for i := range 20 {
		clock := presence.NewFakeClock(t0)
		rec := &syncRecorder{}
		e := presence.New(presence.Config{Clock: clock, Recorder: rec, Grace: time.Second, Deadline: 5 * time.Second, PingAfter: time.Second})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 50 {
					c, err := e.Connect(presence.User{ID: int64(w*50 + j%5 + 1), Username: "u"}, &countingPeer{})
					if errors.Is(err, presence.ErrClosed) {
						return
					}
					if j%2 == 0 {
						c.Close()
					}
				}
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); clock.Advance(3 * time.Second) }()
		if i%2 == 0 {
			time.Sleep(time.Duration(i) * 10 * time.Microsecond)
		}
		e.Close()
		wg.Wait()
		if u, c := e.Counts(); u != 0 || c != 0 {
			t.Fatalf("run %d: counts after Close = %d, %d", i, u, c)
		}
		if _, err := e.Connect(presence.User{ID: 1}, nil); !errors.Is(err, presence.ErrClosed) {
			t.Fatalf("run %d: connect after Close: %v", i, err)
		}
		rec.mu.Lock()
		for id, s := range rec.status {
			if s.online {
				t.Fatalf("run %d: user %d recorded online after Close", i, id)
			}
		}
		rec.mu.Unlock()
	}
}

// blockingPersister fails its first write, but only after the test has
// had the chance to record newer changes while the write was in flight.
type blockingPersister struct {
	memPersister
	entered, proceed chan struct{}
	calls            atomic.Int64
}

func (p *blockingPersister) SavePresence(ctx context.Context, recs []presence.Record) error {
	if p.calls.Add(1) == 1 {
		p.entered <- struct{}{}
		<-p.proceed
		return errors.New("database is locked")
	}
	return p.memPersister.SavePresence(ctx, recs)
}

// TestBatcher_MergesFailedBatchWithNewer: a batch fails while newer changes
// for the same users arrive; the failed records are merged back into the
// newer ones (mergeOlder) and the retry writes the newest state: the newer
// status wins, the latest times win, and a status only the failed batch
// had is kept.
func TestBatcher_MergesFailedBatchWithNewer(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	p := &blockingPersister{entered: make(chan struct{}), proceed: make(chan struct{})}
	b := presence.NewBatcher(p, clock, time.Second, nil)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	// In the batch that will fail: alice goes offline (last seen +1 s,
	// active +1 s); bob goes offline (last seen +1 s); carol is active +3 s.
	b.RecordStatus(1, false, at(1))
	b.RecordActivity(1, at(1))
	b.RecordStatus(2, false, at(1))
	b.RecordActivity(3, at(3))
	flushed := make(chan error, 1)
	go func() { flushed <- b.Flush(context.Background()) }()
	<-p.entered
	// While it is in flight: alice comes back online and is active +2 s;
	// bob is only active +2 s (no new status); carol's older activity +2 s.
	b.RecordStatus(1, true, time.Time{})
	b.RecordActivity(1, at(2))
	b.RecordActivity(2, at(2))
	b.RecordActivity(3, at(2))
	close(p.proceed)
	if err := <-flushed; err == nil {
		t.Fatal("the first flush did not fail")
	}
	if b.Pending() != 3 {
		t.Fatalf("%d users pending after the failure, want 3", b.Pending())
	}
	clock.Advance(time.Second) // the retry
	if err := b.LastError(); err != nil || b.Pending() != 0 {
		t.Fatalf("after the retry: err=%v pending=%d", err, b.Pending())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, want := range map[int64]presence.Record{
		1: {UserID: 1, HasStatus: true, Online: true, LastSeen: at(1), LastActivity: at(2)},  // newer status, latest times
		2: {UserID: 2, HasStatus: true, Online: false, LastSeen: at(1), LastActivity: at(2)}, // status only the failed batch had
		3: {UserID: 3, LastActivity: at(3)},                                                  // the failed batch's later time
	} {
		if got := p.saved[id]; !reflect.DeepEqual(got, want) {
			t.Errorf("user %d saved as %+v, want %+v", id, got, want)
		}
	}
}
