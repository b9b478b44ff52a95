package handlers

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(60, 3) // one a second, three at once
	l.Now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("attempt %d refused inside the burst", i)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != time.Second {
		t.Fatalf("4th attempt: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(time.Second)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("not refilled after a second")
	}
	if ok, _ := l.allow("a"); ok {
		t.Fatal("refilled more than the rate")
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(60, 3)
	l.Now = func() time.Time { return now }
	for i := range maxLimiterKeys + 10 {
		l.allow(string(rune(i)) + "k")
	}
	if n := len(l.buckets); n > maxLimiterKeys {
		t.Fatalf("%d buckets kept, limit %d", n, maxLimiterKeys)
	}
}
