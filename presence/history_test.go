package presence_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// sessionPersister applies the history changes of every batch it is given
// as the database does (a start adds a row, an end closes the open one),
// and counts its transactions.
type sessionPersister struct {
	txs      int
	sessions map[int64][]presence.SessionChange
}

func (p *sessionPersister) SavePresence(_ context.Context, recs []presence.Record) error {
	p.txs++
	if p.sessions == nil {
		p.sessions = map[int64][]presence.SessionChange{}
	}
	for _, r := range recs {
		for _, sc := range r.Sessions {
			rows := p.sessions[r.UserID]
			if sc.Start.IsZero() {
				if n := len(rows); n > 0 && rows[n-1].End.IsZero() {
					rows[n-1].End = sc.End
				}
				continue
			}
			p.sessions[r.UserID] = append(rows, sc)
		}
	}
	return nil
}

// kindPeer is a peer on a device of a known kind.
type kindPeer struct {
	peer
	kind string
}

func (p *kindPeer) DeviceKind() string { return p.kind }

// historyFixture is an engine keeping history through a Batcher.
func historyFixture(t *testing.T) (*fixture, *presence.Batcher, *sessionPersister) {
	t.Helper()
	p := &sessionPersister{}
	clock := presence.NewFakeClock(t0)
	b := presence.NewBatcher(p, clock, time.Second, nil)
	f := &fixture{clock: clock}
	f.engine = presence.New(presence.Config{Clock: clock, Recorder: b, Sessions: b, Grace: 5 * time.Second, Deadline: -1})
	f.sub = f.engine.Bus().Subscribe(64)
	t.Cleanup(func() { f.sub.Close(); f.engine.Close() })
	return f, b, p
}

func TestHistoryReloadWithinGraceIsOneSession(t *testing.T) {
	f, _, p := historyFixture(t)
	alice := presence.User{ID: 1, Username: "alice"}
	c := f.mustConnect(t, alice, &kindPeer{kind: presence.DeviceMobile})
	f.clock.Advance(time.Minute)
	c.Close() // a reload: the next page connects within the grace period
	f.clock.Advance(2 * time.Second)
	c = f.mustConnect(t, alice, &kindPeer{kind: presence.DeviceDesktop})
	f.clock.Advance(time.Minute)
	c.Close()
	endedAt := f.clock.Now()
	f.clock.Advance(10 * time.Second) // grace over: offline, flushed
	want := []presence.SessionChange{{Start: t0, End: endedAt, Device: presence.DeviceMobile}}
	if got := p.sessions[1]; !reflect.DeepEqual(got, want) {
		t.Fatalf("sessions = %+v, want one from the first connect to the last close %+v", got, want)
	}
}

func TestHistoryLeavesOutInvisibleTime(t *testing.T) {
	f, b, p := historyFixture(t)
	alice := presence.User{ID: 1, Username: "alice"}
	bob := presence.User{ID: 2, Username: "bob"}

	// Bob is invisible from the start: nothing is recorded.
	f.engine.SetSettings(bob.ID, presence.Settings{Mode: presence.ModeInvisible})
	cb := f.mustConnect(t, bob, nil)

	// Alice is online a minute, invisible a minute, then online again.
	f.mustConnect(t, alice, nil)
	f.clock.Advance(time.Minute)
	f.engine.SetSettings(alice.ID, presence.Settings{Mode: presence.ModeInvisible})
	hidden := f.clock.Now()
	f.clock.Advance(time.Minute)
	f.engine.SetSettings(alice.ID, presence.Settings{Mode: presence.ModeDND}) // dnd is online
	back := f.clock.Now()
	f.clock.Advance(time.Minute)
	cb.Close()
	f.clock.Advance(time.Minute)
	f.engine.Close() // shutdown: the open session ends now
	stop := f.clock.Now()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []presence.SessionChange{
		{Start: t0, End: hidden, Device: presence.DeviceUnknown},
		{Start: back, End: stop, Device: presence.DeviceUnknown},
	}
	if got := p.sessions[alice.ID]; !reflect.DeepEqual(got, want) {
		t.Fatalf("alice's sessions = %+v\nwant %+v", got, want)
	}
	if got := p.sessions[bob.ID]; len(got) != 0 {
		t.Fatalf("invisible bob has sessions %+v", got)
	}
}

func TestHistoryLeavesOutVisibleToNobody(t *testing.T) {
	f, b, p := historyFixture(t)
	f.engine.SetSettings(1, presence.Settings{Visibility: presence.VisibleNobody})
	c := f.mustConnect(t, presence.User{ID: 1, Username: "alice"}, nil)
	f.clock.Advance(time.Minute)
	c.Close()
	f.clock.Advance(time.Minute)
	b.Flush(context.Background())
	if got := p.sessions[1]; len(got) != 0 {
		t.Fatalf("sessions of a user visible to nobody: %+v", got)
	}
}

func TestHistoryOffWithoutSessionRecorder(t *testing.T) {
	p := &sessionPersister{}
	clock := presence.NewFakeClock(t0)
	b := presence.NewBatcher(p, clock, time.Second, nil)
	e := presence.New(presence.Config{Clock: clock, Recorder: b, Deadline: -1})
	c, _ := e.Connect(presence.User{ID: 1}, nil)
	c.Close()
	clock.Advance(time.Minute)
	e.Close()
	b.Close(context.Background())
	if got := p.sessions[1]; len(got) != 0 {
		t.Fatalf("history recorded with Config.Sessions nil: %+v", got)
	}
}

func TestBatcherSessionsSurviveAFailedWrite(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	p := &memPersister{fail: context.DeadlineExceeded}
	b := presence.NewBatcher(p, clock, time.Second, nil)
	b.RecordSessionStart(1, t0, presence.DeviceTablet)
	if err := b.Flush(context.Background()); err == nil {
		t.Fatal("flush did not fail")
	}
	b.RecordSessionEnd(1, t0.Add(time.Minute))
	b.RecordSessionStart(1, t0.Add(2*time.Minute), presence.DeviceTablet)
	p.mu.Lock()
	p.fail = nil
	p.mu.Unlock()
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The session kept from the failed write took its end; the next one
	// follows it.
	want := []presence.SessionChange{{Start: t0, End: t0.Add(time.Minute), Device: presence.DeviceTablet}, {Start: t0.Add(2 * time.Minute), Device: presence.DeviceTablet}}
	if got := p.saved[1].Sessions; !reflect.DeepEqual(got, want) {
		t.Fatalf("retried sessions = %+v\nwant %+v", got, want)
	}
}
