package presence_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/presencehq/presence/presence"
)

// roomFixture is a fixture that also watches room events.
type roomFixture struct {
	*fixture
	w *presence.RoomWatch
}

func newRoomFixture(t *testing.T, cfg presence.Config) *roomFixture {
	t.Helper()
	f := newFixture(t, cfg)
	w := f.engine.WatchRooms(64)
	t.Cleanup(w.Close)
	return &roomFixture{fixture: f, w: w}
}

func (f *roomFixture) roomEvents() []presence.RoomEvent {
	var out []presence.RoomEvent
	for {
		select {
		case e, ok := <-f.w.C:
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

func expectRoomEvents(t *testing.T, got []presence.RoomEvent, want ...presence.RoomEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got room events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("room event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func members(e *presence.Engine, room string) string {
	var names []string
	for _, st := range e.RoomMembers(room) {
		names = append(names, st.Username)
	}
	return strings.Join(names, ",")
}

func mustRoom(t *testing.T, c *presence.Conn, room string) {
	t.Helper()
	if err := c.SetRoom(room); err != nil {
		t.Fatalf("SetRoom(%q): %v", room, err)
	}
}

func TestRooms_Membership(t *testing.T) {
	const grace = 5 * time.Second
	in := func(room string, id int64) presence.RoomEvent {
		return presence.RoomEvent{Room: room, UserID: id, In: true}
	}
	out := func(room string, id int64) presence.RoomEvent { return presence.RoomEvent{Room: room, UserID: id} }

	t.Run("join", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		b := f.mustConnect(t, bob, nil)
		mustRoom(t, a, "/users/carol")
		mustRoom(t, b, "/users/carol")
		expectRoomEvents(t, f.roomEvents(), in("/users/carol", 1), in("/users/carol", 2))
		if got := members(f.engine, "/users/carol"); got != "alice,bob" {
			t.Fatalf("members = %q, want alice,bob", got)
		}
		if a.Room() != "/users/carol" || !f.engine.InRoom("/users/carol", 1) {
			t.Fatal("alice's connection does not say it is in the room")
		}
		if got := f.engine.RoomsOf(1); len(got) != 1 || got[0] != "/users/carol" {
			t.Fatalf("RoomsOf = %v", got)
		}
		if rooms, ms := f.engine.RoomCounts(); rooms != 1 || ms != 2 {
			t.Fatalf("RoomCounts = %d, %d; want 1, 2", rooms, ms)
		}
	})

	t.Run("move leaves the old room after the grace period", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		mustRoom(t, a, "r1")
		mustRoom(t, a, "r2")
		expectRoomEvents(t, f.roomEvents(), in("r1", 1), in("r2", 1))
		if got := members(f.engine, "r1"); got != "alice" {
			t.Fatalf("r1 right after the move = %q, want alice (grace)", got)
		}
		f.clock.Advance(grace - time.Millisecond)
		expectRoomEvents(t, f.roomEvents())
		f.clock.Advance(time.Millisecond)
		expectRoomEvents(t, f.roomEvents(), out("r1", 1))
		if got := members(f.engine, "r1"); got != "" {
			t.Fatalf("r1 = %q, want empty", got)
		}
		if got := members(f.engine, "r2"); got != "alice" {
			t.Fatalf("r2 = %q, want alice", got)
		}
	})

	t.Run("leave with empty name", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		mustRoom(t, a, "r1")
		mustRoom(t, a, "")
		f.clock.Advance(grace)
		expectRoomEvents(t, f.roomEvents(), in("r1", 1), out("r1", 1))
		if a.Room() != "" || len(f.engine.RoomsOf(1)) != 0 {
			t.Fatal("alice is still in a room")
		}
		if !f.engine.IsOnline(1) {
			t.Fatal("leaving a room took alice offline")
		}
	})

	t.Run("tab closed leaves after the grace period", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		other := f.mustConnect(t, alice, nil) // another tab, elsewhere
		mustRoom(t, a, "r1")
		a.Close()
		f.clock.Advance(grace - time.Millisecond)
		expectRoomEvents(t, f.roomEvents(), in("r1", 1))
		f.clock.Advance(time.Millisecond)
		expectRoomEvents(t, f.roomEvents(), out("r1", 1))
		_ = other
	})

	t.Run("reload within grace is no leave", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		mustRoom(t, a, "r1")
		a.Close()
		f.clock.Advance(grace / 2)
		a2 := f.mustConnect(t, alice, nil)
		mustRoom(t, a2, "r1")
		f.clock.Advance(10 * grace)
		expectRoomEvents(t, f.roomEvents(), in("r1", 1))
		if got := members(f.engine, "r1"); got != "alice" {
			t.Fatalf("r1 = %q, want alice", got)
		}
	})

	t.Run("heartbeat drop leaves", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: 20 * time.Second})
		p := &peer{}
		a := f.mustConnect(t, alice, p)
		mustRoom(t, a, "r1")
		f.clock.Advance(25*time.Second + grace) // silent past the deadline, then the grace
		if p.kicks != 1 {
			t.Fatalf("kicks = %d, want 1", p.kicks)
		}
		expectRoomEvents(t, f.roomEvents(), in("r1", 1), out("r1", 1))
		if got := members(f.engine, "r1"); got != "" {
			t.Fatalf("r1 = %q, want empty", got)
		}
		if rooms, ms := f.engine.RoomCounts(); rooms != 0 || ms != 0 {
			t.Fatalf("RoomCounts = %d, %d; want 0, 0", rooms, ms)
		}
	})

	t.Run("same user in two tabs is counted once", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a1 := f.mustConnect(t, alice, nil)
		a2 := f.mustConnect(t, alice, nil)
		a3 := f.mustConnect(t, alice, nil)
		mustRoom(t, a1, "r1")
		mustRoom(t, a2, "r1")
		mustRoom(t, a3, "r2")
		expectRoomEvents(t, f.roomEvents(), in("r1", 1), in("r2", 1))
		if got := members(f.engine, "r1"); got != "alice" {
			t.Fatalf("r1 = %q, want alice once", got)
		}
		a1.Close()
		f.clock.Advance(2 * grace)
		expectRoomEvents(t, f.roomEvents()) // a2 is still there
		a2.Close()
		f.clock.Advance(grace)
		expectRoomEvents(t, f.roomEvents(), out("r1", 1))
		if got := f.engine.RoomsOf(1); len(got) != 1 || got[0] != "r2" {
			t.Fatalf("RoomsOf = %v, want [r2]", got)
		}
	})

	t.Run("invisible members are marked hidden", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		f.engine.SetSettings(2, presence.Settings{Mode: presence.ModeInvisible})
		f.engine.SetSettings(3, presence.Settings{Visibility: presence.VisibleNobody})
		for _, u := range []presence.User{alice, bob, {ID: 3, Username: "carol"}} {
			mustRoom(t, f.mustConnect(t, u, nil), "r1")
		}
		var visible []string
		for _, st := range f.engine.RoomMembers("r1") {
			if !st.Hidden() {
				visible = append(visible, st.Username)
			}
			if presence.CanSee(1, st, func() bool { return false }) != (st.UserID == 1) {
				t.Fatalf("CanSee(alice, %s) is wrong", st.Username)
			}
		}
		if strings.Join(visible, ",") != "alice" {
			t.Fatalf("visible members = %v, want only alice", visible)
		}
	})

	t.Run("no grace leaves at once", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: -1, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		mustRoom(t, a, "r1")
		a.Close()
		expectRoomEvents(t, f.roomEvents(), in("r1", 1), out("r1", 1))
	})

	t.Run("ErrBadRoom", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		mustRoom(t, a, "ok")
		for _, bad := range []string{strings.Repeat("x", presence.MaxRoomLen+1), "a\nb", "tab\there", " lead", "trail ", "\xff", "zero\u200bwidth"} {
			if err := a.SetRoom(bad); !errors.Is(err, presence.ErrBadRoom) {
				t.Fatalf("SetRoom(%q) = %v, want ErrBadRoom", bad, err)
			}
		}
		if a.Room() != "ok" {
			t.Fatalf("a bad name moved the connection to %q", a.Room())
		}
		for _, good := range []string{strings.Repeat("é", presence.MaxRoomLen), "/users/alice", "doc 42: Q3 plan", "频道 #1"} {
			if p := presence.RoomProblem(good); p != "" {
				t.Fatalf("RoomProblem(%q) = %q, want ok", good, p)
			}
		}
		a.Close()
		if err := a.SetRoom("x"); !errors.Is(err, presence.ErrClosed) {
			t.Fatalf("SetRoom on a closed connection = %v, want ErrClosed", err)
		}
	})

	t.Run("engine close forgets rooms", func(t *testing.T) {
		f := newRoomFixture(t, presence.Config{Grace: grace, Deadline: -1})
		a := f.mustConnect(t, alice, nil)
		mustRoom(t, a, "r1")
		a.Close()
		f.engine.Close()
		f.clock.Advance(grace)
		if rooms, _ := f.engine.RoomCounts(); rooms != 0 {
			t.Fatal("rooms survive Close")
		}
		if f.clock.Pending() != 0 {
			t.Fatalf("%d timers left after Close", f.clock.Pending())
		}
	})

	t.Run("a full watch is dropped, not waited for", func(t *testing.T) {
		f := newFixture(t, presence.Config{Grace: grace, Deadline: -1})
		w := f.engine.WatchRooms(1)
		defer w.Close()
		a := f.mustConnect(t, alice, nil)
		mustRoom(t, a, "r1")
		mustRoom(t, a, "r2") // the second event does not fit
		<-w.C
		if _, ok := <-w.C; ok || !w.Dropped() {
			t.Fatal("a full watch was not dropped")
		}
	})
}

// FuzzRoomProblem: whatever RoomProblem accepts is valid UTF-8, 1 to
// MaxRoomLen characters, printable, not padded with spaces; whatever it
// refuses, SetRoom refuses with ErrBadRoom.
func FuzzRoomProblem(f *testing.F) {
	for _, s := range []string{"/users/alice", "", " ", "a\x00", "\xff", "频道", strings.Repeat("x", 101), "a\u200bb", "a\u00a0b"} {
		f.Add(s)
	}
	e := presence.New(presence.Config{Clock: presence.NewFakeClock(t0), Deadline: -1})
	defer e.Close()
	c, err := e.Connect(alice, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p := presence.RoomProblem(name)
		if p == "" {
			n := utf8.RuneCountInString(name)
			if !utf8.ValidString(name) || n < 1 || n > presence.MaxRoomLen || name[0] == ' ' || name[len(name)-1] == ' ' {
				t.Fatalf("accepted %q", name)
			}
			for _, r := range name {
				if unicode.IsControl(r) || !unicode.IsPrint(r) {
					t.Fatalf("accepted %q with %U", name, r)
				}
			}
			if err := c.SetRoom(name); err != nil {
				t.Fatalf("SetRoom(%q) = %v", name, err)
			}
			return
		}
		if name != "" && !errors.Is(c.SetRoom(name), presence.ErrBadRoom) {
			t.Fatalf("SetRoom(%q) accepted what RoomProblem refuses (%s)", name, p)
		}
	})
}

// BenchmarkRoomsMove: a tab moves between two rooms another tab of the
// same user keeps them in (no grace timer, no room event): the cost of a
// room message on the engine.
func BenchmarkRoomsMove(b *testing.B) {
	e := presence.New(presence.Config{Deadline: -1})
	defer e.Close()
	for i := range int64(1000) { // a thousand others in the rooms
		c, _ := e.Connect(presence.User{ID: i + 10, Username: "u"}, nil)
		c.SetRoom([]string{"/a", "/b"}[i%2])
	}
	keep1, _ := e.Connect(alice, nil)
	keep1.SetRoom("/a")
	keep2, _ := e.Connect(alice, nil)
	keep2.SetRoom("/b")
	c, _ := e.Connect(alice, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		c.SetRoom([]string{"/a", "/b"}[i%2])
	}
}
