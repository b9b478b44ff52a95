package realtime

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/presencehq/presence/presence"
)

// frames returns what since gives a socket of user from cursor, as text.
func frames(l *eventLog, cursor uint64, user int64, limit, maxFrames int) ([]string, uint64) {
	bufs, to, _ := l.since(cursor, nil, user, nil, limit, maxFrames)
	var out []string
	for _, b := range bufs {
		out = append(out, string(b))
	}
	return out, to
}

func TestEventLog(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		l := newEventLog()
		l.add(1, presence.ScopeAll, []byte("a1"))
		l.add(2, presence.ScopeAll, []byte("b1"))
		got, to := frames(l, 0, 9, 1<<20, 100)
		if !slices.Equal(got, []string{"a1", "b1"}) || to != 2 {
			t.Fatalf("from 0: %v up to %d, want [a1 b1] up to 2", got, to)
		}
		if got, to := frames(l, 2, 9, 1<<20, 100); got != nil || to != 2 {
			t.Fatalf("caught up: %v up to %d, want nothing", got, to)
		}
	})
	t.Run("Merged", func(t *testing.T) {
		// A socket behind gets each user's latest event once, in the
		// order of those latest events; one that keeps up got each step.
		l := newEventLog()
		l.add(1, presence.ScopeAll, []byte("a-on"))
		l.add(2, presence.ScopeAll, []byte("b-on"))
		l.add(1, presence.ScopeAll, []byte("a-off"))
		l.add(3, presence.ScopeAll, []byte("c-on"))
		l.add(2, presence.ScopeAll, []byte("b-off"))
		got, to := frames(l, 0, 9, 1<<20, 100)
		if want := []string{"a-off", "c-on", "b-off"}; !slices.Equal(got, want) || to != 5 {
			t.Fatalf("from 0: %v up to %d, want %v up to 5", got, to, want)
		}
		got, _ = frames(l, 3, 9, 1<<20, 100)
		if want := []string{"c-on", "b-off"}; !slices.Equal(got, want) {
			t.Fatalf("from 3: %v, want %v", got, want)
		}
		if l.len() != 3 {
			t.Fatalf("log holds %d entries, want 3 (one per user)", l.len())
		}
	})
	t.Run("Views", func(t *testing.T) {
		// A hidden user: their own sockets see the truth, others what
		// they are shown; an event for all replaces both.
		l := newEventLog()
		l.add(1, presence.ScopeSelf, []byte("self-on"))
		l.add(1, presence.ScopeOthers, []byte("others-off"))
		if got, _ := frames(l, 0, 1, 1<<20, 100); !slices.Equal(got, []string{"self-on"}) {
			t.Fatalf("own socket: %v, want [self-on]", got)
		}
		if got, to := frames(l, 0, 2, 1<<20, 100); !slices.Equal(got, []string{"others-off"}) || to != 2 {
			t.Fatalf("other socket: %v up to %d, want [others-off] up to 2", got, to)
		}
		l.add(1, presence.ScopeAll, []byte("all-on"))
		for _, u := range []int64{1, 2} {
			if got, _ := frames(l, 0, u, 1<<20, 100); !slices.Equal(got, []string{"all-on"}) {
				t.Fatalf("socket of %d: %v, want [all-on]", u, got)
			}
		}
		// An event for one view leaves the other view of an entry for all.
		l.add(1, presence.ScopeOthers, []byte("others-away"))
		if got, _ := frames(l, 0, 1, 1<<20, 100); !slices.Equal(got, []string{"all-on"}) {
			t.Fatalf("own socket after others-only: %v, want [all-on]", got)
		}
		if got, _ := frames(l, 0, 2, 1<<20, 100); !slices.Equal(got, []string{"others-away"}) {
			t.Fatalf("other socket after others-only: %v, want [others-away]", got)
		}
	})
	t.Run("Limits", func(t *testing.T) {
		l := newEventLog()
		for i := range 10 {
			l.add(int64(i), presence.ScopeAll, []byte(fmt.Sprintf("e%d", i)))
		}
		got, to := frames(l, 0, 99, 5, 100) // two frames of two bytes fit in 5
		if !slices.Equal(got, []string{"e0", "e1"}) || to != 2 {
			t.Fatalf("by size: %v up to %d, want [e0 e1] up to 2", got, to)
		}
		got, to = frames(l, to, 99, 1<<20, 3)
		if !slices.Equal(got, []string{"e2", "e3", "e4"}) || to != 5 {
			t.Fatalf("by count: %v up to %d, want [e2 e3 e4] up to 5", got, to)
		}
		got, _ = frames(l, 0, 99, 1, 100) // a frame larger than the limit still goes
		if !slices.Equal(got, []string{"e0"}) {
			t.Fatalf("oversized: %v, want [e0]", got)
		}
	})
	t.Run("Trim", func(t *testing.T) {
		l := newEventLog()
		for i := range 10 {
			l.add(int64(i%4), presence.ScopeAll, []byte(fmt.Sprintf("e%d", i)))
		}
		l.trim(8)
		if got, _ := frames(l, 8, 99, 1<<20, 100); !slices.Equal(got, []string{"e8", "e9"}) {
			t.Fatalf("after trim: %v, want [e8 e9]", got)
		}
		if l.len() != 2 || len(l.users) != 2 {
			t.Fatalf("after trim: %d entries of %d users, want 2 of 2", l.len(), len(l.users))
		}
		l.trim(10)
		if l.len() != 0 || len(l.users) != 0 || l.first != nil || l.last != nil {
			t.Fatalf("trimmed to the end: %d entries, %d users", l.len(), len(l.users))
		}
		l.add(5, presence.ScopeAll, []byte("e10"))
		if got, to := frames(l, 10, 99, 1<<20, 100); !slices.Equal(got, []string{"e10"}) || to != 11 {
			t.Fatalf("after emptying: %v up to %d", got, to)
		}
	})
}

// TestEventLog_Hints: a socket that walks on from where it stopped (its
// hint) is sent exactly what a walk from the end of the log finds, through
// merges, trims and a log trimmed empty.
func TestEventLog_Hints(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	l := newEventLog()
	type socket struct {
		user   int64
		cursor uint64
		hint   *logEntry
	}
	var socks []*socket
	for i := range 8 {
		socks = append(socks, &socket{user: int64(i % 4)})
	}
	scopes := []presence.Scope{presence.ScopeAll, presence.ScopeAll, presence.ScopeSelf, presence.ScopeOthers}
	for step := range 20000 {
		switch r := rng.IntN(10); {
		case r < 5:
			l.add(int64(rng.IntN(6)), scopes[rng.IntN(len(scopes))], []byte(fmt.Sprintf("f%d", step)))
		case r < 9:
			s := socks[rng.IntN(len(socks))]
			limit, maxFrames := 1+rng.IntN(30), 1+rng.IntN(8)
			want, wantTo, _ := l.since(s.cursor, nil, s.user, nil, limit, maxFrames)
			got, to, hint := l.since(s.cursor, s.hint, s.user, nil, limit, maxFrames)
			if to != wantTo || !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
				t.Fatalf("step %d: with hint %q up to %d, from the end %q up to %d", step, got, to, want, wantTo)
			}
			s.cursor, s.hint = to, hint
		default:
			if step%7 == 0 { // everyone catches up: the trim empties the log
				for _, s := range socks {
					for s.cursor < l.head.Load() {
						_, s.cursor, s.hint = l.since(s.cursor, s.hint, s.user, nil, 1<<20, 1<<20)
					}
				}
			}
			upTo := l.head.Load()
			for _, s := range socks {
				upTo = min(upTo, s.cursor)
			}
			l.trim(upTo)
		}
	}
}

func TestConsumed(t *testing.T) {
	bufs := [][]byte{[]byte("abc"), []byte("de"), []byte("f")}
	for _, tc := range []struct {
		n    int
		want []string
	}{{0, []string{"abc", "de", "f"}}, {2, []string{"c", "de", "f"}}, {3, []string{"de", "f"}}, {4, []string{"e", "f"}}, {5, []string{"f"}}, {6, nil}} {
		var got []string
		for _, b := range consumed(bufs, tc.n) {
			got = append(got, string(b))
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("consumed(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
