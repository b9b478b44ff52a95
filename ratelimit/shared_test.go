package ratelimit_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/ratelimit"
)

// memBuckets is a BucketStore in memory: what several nodes share.
type memBuckets struct {
	mu   sync.Mutex
	rows map[string]struct {
		tokens float64
		at     time.Time
	}
	fail bool
}

func (m *memBuckets) UpdateBucket(_ context.Context, key string, update func(float64, time.Time, bool) (float64, time.Time)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("database down")
	}
	r, ok := m.rows[key]
	r.tokens, r.at = update(r.tokens, r.at, ok)
	m.rows[key] = r
	return nil
}

func (m *memBuckets) PruneBuckets(_ context.Context, prefix string, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(0)
	for k, r := range m.rows {
		if strings.HasPrefix(k, prefix) && r.at.Before(before) {
			delete(m.rows, k)
			n++
		}
	}
	return n, nil
}

func (m *memBuckets) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

// TestShared: two nodes' limiters on one store take from one bucket per
// key, refill as one, give back tokens, and fall back to this node's
// memory while the store fails.
func TestShared(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	db := &memBuckets{rows: map[string]struct {
		tokens float64
		at     time.Time
	}{}}
	a := ratelimit.NewShared("login", ratelimit.PerMinute(1), 4, clock, db, nil)
	b := ratelimit.NewShared("login", ratelimit.PerMinute(1), 4, clock, db, nil)
	other := ratelimit.NewShared("uploads", ratelimit.PerMinute(1), 4, clock, db, nil)
	for i, l := range []*ratelimit.Shared{a, b, a, b} {
		if ok, _ := l.Allow("alice"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if ok, wait := b.Allow("alice"); ok || wait != time.Minute {
		t.Fatalf("5th attempt, on node b = %v %v; want refused for a minute", ok, wait)
	}
	if ok, _ := a.Allow("bob"); !ok {
		t.Fatal("bob limited by alice's attempts")
	}
	if ok, _ := other.Allow("alice"); !ok {
		t.Fatal("another limit of the same key shares its bucket")
	}
	a.Return("alice")
	if ok, _ := b.Allow("alice"); !ok {
		t.Fatal("a token given back on node a is not there on node b")
	}
	clock.Advance(time.Minute)
	if ok, _ := b.Allow("alice"); !ok {
		t.Fatal("no refill after a minute")
	}
	if ok, _ := a.Allow("alice"); ok {
		t.Fatal("refilled more than a minute's worth")
	}

	db.fail = true
	if ok, _ := a.Allow("alice"); !ok {
		t.Fatal("with the store down, node a's own bucket (full) refused")
	}
	db.fail = false

	// Refilled buckets are pruned, every ten minutes, each limit its own.
	clock.Advance(10 * time.Minute)
	if ok, _ := a.Allow("carol"); !ok || db.len() != 2 {
		t.Fatalf("after pruning %d buckets remain, want 2 (login:carol, uploads:alice)", db.len())
	}
}
