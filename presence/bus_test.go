package presence_test

import (
	"testing"

	"github.com/presencehq/presence/presence"
)

func TestLocalBus(t *testing.T) {
	t.Run("Sent", func(t *testing.T) {
		// Sent counts what was put on C, taken or not; not what the bus
		// could not deliver to a subscriber that fell behind.
		b := presence.NewLocalBus()
		s := b.Subscribe(2)
		defer s.Close()
		b.Publish(presence.Event{UserID: 1})
		<-s.C
		b.Publish(presence.Event{UserID: 2})
		b.Publish(presence.Event{UserID: 3})
		if got := s.Sent(); got != 3 {
			t.Fatalf("Sent() = %d after 3 events, one taken; want 3", got)
		}
		b.Publish(presence.Event{UserID: 4}) // the buffer is full: dropped
		if got := s.Sent(); got != 3 || !s.Dropped() {
			t.Fatalf("Sent() = %d, Dropped() = %v after an overflow; want 3, true", got, s.Dropped())
		}
	})
	t.Run("OK", func(t *testing.T) {
		b := presence.NewLocalBus()
		s1, s2 := b.Subscribe(1), b.Subscribe(1)
		defer s1.Close()
		defer s2.Close()
		b.Publish(presence.Event{UserID: 7})
		for _, s := range []*presence.Subscription{s1, s2} {
			if e := <-s.C; e.UserID != 7 {
				t.Fatalf("got %+v", e)
			}
		}
	})

	t.Run("SlowSubscriberDropped", func(t *testing.T) {
		b := presence.NewLocalBus()
		slow, fast := b.Subscribe(2), b.Subscribe(16)
		defer fast.Close()
		for i := range 10 {
			b.Publish(presence.Event{UserID: int64(i)}) // must never block
		}
		n := 0
		for range slow.C {
			n++
		}
		if n != 2 || !slow.Dropped() {
			t.Fatalf("slow got %d events, dropped=%v; want 2, true", n, slow.Dropped())
		}
		if len(fast.C) != 10 {
			t.Fatalf("fast got %d events, want 10", len(fast.C))
		}
		if b.Len() != 1 {
			t.Fatalf("Len = %d, want 1", b.Len())
		}
		slow.Close() // after a drop, Close is a harmless no-op
	})

	t.Run("CloseTwice", func(t *testing.T) {
		b := presence.NewLocalBus()
		s := b.Subscribe(1)
		s.Close()
		s.Close()
		if _, ok := <-s.C; ok || s.Dropped() {
			t.Fatal("closed subscription still open or reported dropped")
		}
		b.Publish(presence.Event{}) // no panic on a closed subscriber
	})
}
