package realtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
)

// TestUserEnds: End cancels the user's shared context and nobody else's;
// a connection authenticated before the end but watched after it is
// refused; one authenticated after it is live.
func TestUserEnds(t *testing.T) {
	clock := presence.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ends := realtime.NewUserEnds(clock)
	at := ends.Now()
	a1, a2, b := ends.Watch(1, at), ends.Watch(1, at), ends.Watch(2, at)
	if a1 != a2 {
		t.Fatal("one user's connections do not share a context")
	}
	late := ends.Now() // authenticated, not yet watched
	clock.Advance(time.Millisecond)
	if n := ends.End(1); n != 1 {
		t.Fatalf("End = %d, want 1", n)
	}
	if !errors.Is(context.Cause(a1), realtime.ErrUserEnded) || b.Err() != nil {
		t.Fatalf("after End(1): user 1 %v, user 2 %v", context.Cause(a1), b.Err())
	}
	if ends.Watch(1, late).Err() == nil {
		t.Fatal("a connection authenticated before the end was let in")
	}
	clock.Advance(time.Millisecond)
	if ends.Watch(1, ends.Now()).Err() != nil {
		t.Fatal("a connection authenticated after the end was refused")
	}
	if ends.Watch(3, ends.Now().Add(-2*time.Minute)).Err() == nil {
		t.Fatal("an authentication older than the registry's memory was let in")
	}
	if ends.End(9) != 0 {
		t.Fatal("ending a user with no connections cancelled something")
	}
}
