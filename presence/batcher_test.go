package presence_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// memPersister keeps what it is given and counts its transactions.
type memPersister struct {
	mu    sync.Mutex
	fail  error
	txs   int
	saved map[int64]presence.Record
}

func (p *memPersister) SavePresence(_ context.Context, recs []presence.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.txs++
	if p.saved == nil {
		p.saved = map[int64]presence.Record{}
	}
	for _, r := range recs { // zero fields leave the stored value, as in SQL
		old := p.saved[r.UserID]
		if !r.HasStatus {
			r.HasStatus, r.Online = old.HasStatus, old.Online
		}
		if r.LastSeen.IsZero() {
			r.LastSeen = old.LastSeen
		}
		if r.LastActivity.IsZero() {
			r.LastActivity = old.LastActivity
		}
		p.saved[r.UserID] = r
	}
	return nil
}

func TestBatcher(t *testing.T) {
	t.Run("Coalesces", func(t *testing.T) {
		clock := presence.NewFakeClock(t0)
		p := &memPersister{}
		b := presence.NewBatcher(p, clock, time.Second, nil)
		b.RecordStatus(1, true, time.Time{})
		for i := range 1000 {
			b.RecordActivity(1, t0.Add(time.Duration(i)*time.Millisecond))
			b.RecordActivity(2, t0)
		}
		if p.txs != 0 {
			t.Fatal("wrote before the interval")
		}
		clock.Advance(time.Second)
		if p.txs != 1 {
			t.Fatalf("txs = %d, want 1", p.txs)
		}
		if r := p.saved[1]; !r.HasStatus || !r.Online || !r.LastActivity.Equal(t0.Add(999*time.Millisecond)) {
			t.Fatalf("saved[1] = %+v", r)
		}
		if r := p.saved[2]; r.HasStatus {
			t.Fatalf("saved[2] = %+v: activity must not set status", r)
		}
		clock.Advance(time.Hour)
		if p.txs != 1 || clock.Pending() != 0 {
			t.Fatalf("idle batcher wrote (%d txs) or kept a timer (%d)", p.txs, clock.Pending())
		}
	})

	t.Run("RetriesAfterError", func(t *testing.T) {
		clock := presence.NewFakeClock(t0)
		p := &memPersister{fail: errors.New("disk full")}
		b := presence.NewBatcher(p, clock, time.Second, nil)
		b.RecordStatus(1, false, t0)
		clock.Advance(time.Second)
		if b.LastError() == nil || b.Pending() != 1 {
			t.Fatalf("after failure: err=%v pending=%d", b.LastError(), b.Pending())
		}
		b.RecordStatus(1, true, time.Time{}) // newer change while failing
		p.mu.Lock()
		p.fail = nil
		p.mu.Unlock()
		clock.Advance(time.Second)
		if b.LastError() != nil || b.Pending() != 0 {
			t.Fatalf("after recovery: err=%v pending=%d", b.LastError(), b.Pending())
		}
		if r := p.saved[1]; !r.Online || !r.LastSeen.Equal(t0) {
			t.Fatalf("saved = %+v, want online with last seen kept", r)
		}
	})

	t.Run("LogsFailureRunsNotEveryRetry", func(t *testing.T) {
		clock := presence.NewFakeClock(t0)
		p := &memPersister{fail: errors.New("database or disk is full")}
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		b := presence.NewBatcher(p, clock, time.Second, log)
		b.RecordStatus(1, true, t0)
		for range 90 { // 90 failed attempts, one a second
			clock.Advance(time.Second)
		}
		if n := strings.Count(logs.String(), "level=ERROR"); n != 2 {
			t.Fatalf("%d error lines for 90 s of failures, want 2 (start + one reminder):\n%s", n, logs.String())
		}
		if !strings.Contains(logs.String(), "disk is full") || !strings.Contains(logs.String(), "failed_attempts=61") {
			t.Fatalf("log lacks the cause or the count:\n%s", logs.String())
		}
		p.mu.Lock()
		p.fail = nil
		p.mu.Unlock()
		clock.Advance(time.Second)
		if !strings.Contains(logs.String(), `msg="presence: writes resumed" failed_attempts=90 down_for=1m30s`) {
			t.Fatalf("no resume line:\n%s", logs.String())
		}
		logs.Reset()
		b.RecordStatus(1, false, t0)
		clock.Advance(time.Second)
		if logs.Len() != 0 {
			t.Fatalf("a healthy write logged: %s", logs.String())
		}
	})
	t.Run("CloseFlushes", func(t *testing.T) {
		p := &memPersister{}
		b := presence.NewBatcher(p, presence.NewFakeClock(t0), time.Hour, nil)
		b.RecordStatus(3, false, t0)
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if p.txs != 1 || !p.saved[3].HasStatus {
			t.Fatalf("Close wrote %d txs: %+v", p.txs, p.saved)
		}
	})
}

// TestEngineWithBatcher checks the engine's records reach the persister.
func TestEngineWithBatcher(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	p := &memPersister{}
	b := presence.NewBatcher(p, clock, time.Second, nil)
	e := presence.New(presence.Config{Clock: clock, Recorder: b, Grace: time.Second, Deadline: -1})
	c := mustConnect(t, e, alice)
	for range 500 {
		clock.Advance(time.Millisecond)
		c.Activity()
	}
	c.Close()
	clock.Advance(3 * time.Second)
	e.Close()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := p.saved[1]
	if !r.HasStatus || r.Online || r.LastSeen.IsZero() || r.LastActivity.IsZero() {
		t.Fatalf("saved = %+v", r)
	}
	if p.txs > 3 {
		t.Fatalf("txs = %d for 500 pings, want a handful", p.txs)
	}
}
