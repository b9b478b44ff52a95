package ratelimit_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/ratelimit"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucket(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	b := ratelimit.NewBucket(ratelimit.PerSecond(1), 3, clock)
	for i := range 3 {
		if ok, _ := b.Allow(); !ok {
			t.Fatalf("event %d refused inside the burst", i)
		}
	}
	if ok, wait := b.Allow(); ok || wait != time.Second {
		t.Fatalf("4th event: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	clock.Advance(500 * time.Millisecond)
	if ok, wait := b.Allow(); ok || wait != 500*time.Millisecond {
		t.Fatalf("half refilled: ok=%v wait=%v, want refused for 500ms", ok, wait)
	}
	clock.Advance(500 * time.Millisecond)
	if ok, _ := b.Allow(); !ok {
		t.Fatal("not refilled after a second")
	}
	if ok, _ := b.Allow(); ok {
		t.Fatal("refilled faster than the rate")
	}
	clock.Advance(time.Hour)
	for i := range 3 {
		if ok, _ := b.Allow(); !ok {
			t.Fatalf("after an hour, event %d refused: the burst caps the refill at 3", i)
		}
	}
	if ok, _ := b.Allow(); ok {
		t.Fatal("refilled beyond the burst")
	}
	b.Return()
	if ok, _ := b.Allow(); !ok {
		t.Fatal("a returned token is not usable")
	}
}

func TestBucket_ReturnCappedAtBurst(t *testing.T) {
	b := ratelimit.NewBucket(ratelimit.PerMinute(1), 2, presence.NewFakeClock(t0))
	b.Return()
	b.Return()
	for range 2 {
		if ok, _ := b.Allow(); !ok {
			t.Fatal("refused inside the burst")
		}
	}
	if ok, _ := b.Allow(); ok {
		t.Fatal("Return raised the bucket above its burst")
	}
}

func TestBucket_NoRefill(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	b := ratelimit.NewBucket(0, 1, clock)
	b.Allow()
	clock.Advance(24 * time.Hour)
	if ok, wait := b.Allow(); ok || wait < 24*time.Hour {
		t.Fatalf("a bucket with rate 0 refilled: ok=%v wait=%v", ok, wait)
	}
}

func TestRates(t *testing.T) {
	if ratelimit.PerMinute(60) != ratelimit.PerSecond(1) || ratelimit.PerHour(3600) != ratelimit.PerSecond(1) {
		t.Fatal("rates do not agree")
	}
}

func TestLimiter(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	l := ratelimit.New(ratelimit.PerMinute(60), 3, clock) // one a second, three at once
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("attempt %d refused inside the burst", i)
		}
	}
	if ok, wait := l.Allow("a"); ok || wait != time.Second {
		t.Fatalf("4th attempt: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key shares the bucket")
	}
	clock.Advance(time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("not refilled after a second")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("refilled more than the rate")
	}
	l.Return("a")
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("a returned token is not usable")
	}
	l.Return("never-seen") // harmless
}

func TestLimiter_MemoryBounded(t *testing.T) {
	clock := presence.NewFakeClock(t0)
	l := ratelimit.New(ratelimit.PerMinute(60), 3, clock)
	for i := range ratelimit.MaxKeys + 10 {
		l.Allow(strconv.Itoa(i))
	}
	if n := l.Len(); n > ratelimit.MaxKeys {
		t.Fatalf("%d buckets kept, limit %d", n, ratelimit.MaxKeys)
	}
}

// TestLimiter_Concurrent: many goroutines on a few keys never let more
// than the burst through (run with -race).
func TestLimiter_Concurrent(t *testing.T) {
	l := ratelimit.New(0, 50, presence.NewFakeClock(t0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := map[string]int{}
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := strconv.Itoa(g % 4)
			for range 100 {
				if ok, _ := l.Allow(key); ok {
					mu.Lock()
					allowed[key]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for k, n := range allowed {
		if n != 50 {
			t.Fatalf("key %s: %d allowed, want exactly the burst of 50", k, n)
		}
	}
}
