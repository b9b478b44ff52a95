package presence_test

import (
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// settingsRecorder is a memRecorder that also keeps settings.
type settingsRecorder struct {
	memRecorder
	settings map[int64]presence.Settings
}

func (r *settingsRecorder) RecordSettings(id int64, s presence.Settings) {
	if r.settings == nil {
		r.settings = map[int64]presence.Settings{}
	}
	r.settings[id] = s
}

func online(u presence.User, at time.Time, mode presence.Mode) presence.Event {
	return presence.Event{UserID: u.ID, Username: u.Username, Online: true, LastSeen: at, Mode: mode}
}

func TestEngine_AutoAway(t *testing.T) {
	f := newFixture(t, presence.Config{Deadline: -1, AwayAfter: 10 * time.Minute})
	c1 := f.mustConnect(t, alice, nil)
	f.clock.Advance(time.Minute)
	c2 := f.mustConnect(t, alice, nil) // a second device
	expectEvents(t, f.events(), online(alice, t0, presence.ModeOnline))

	// Pongs keep the sockets alive but are not activity.
	f.clock.Advance(8 * time.Minute)
	c1.Alive()
	c2.Alive()
	f.clock.Advance(time.Minute - time.Second)
	expectEvents(t, f.events())
	f.clock.Advance(3 * time.Minute) // the sweep notices within AwayAfter/4
	expectEvents(t, f.events(), online(alice, t0, presence.ModeAway))
	if st, _ := f.engine.State(alice.ID); st.Mode != presence.ModeAway {
		t.Fatalf("state mode = %q, want away", st.Mode)
	}
	if got := f.engine.Online(); len(got) != 1 || got[0].Mode != presence.ModeAway {
		t.Fatalf("Online() = %+v, want alice away", got)
	}

	// Activity on any one device ends it at once.
	c2.Activity()
	expectEvents(t, f.events(), online(alice, t0, presence.ModeOnline))
	c2.Activity()
	expectEvents(t, f.events()) // no event per ping

	// Active on one device keeps the user online while another idles.
	for range 30 {
		f.clock.Advance(time.Minute)
		c2.Activity()
	}
	expectEvents(t, f.events())

	// A manual away is not ended by activity; choosing online again is.
	f.engine.SetSettings(alice.ID, presence.Settings{Mode: presence.ModeAway})
	c1.Activity()
	expectEvents(t, f.events(), online(alice, t0, presence.ModeAway))
	f.engine.SetSettings(alice.ID, presence.Settings{Mode: presence.ModeOnline})
	expectEvents(t, f.events(), online(alice, t0, presence.ModeOnline))
}

func TestEngine_StatusExpiry(t *testing.T) {
	rec := &settingsRecorder{}
	f := newFixture(t, presence.Config{Deadline: -1, Recorder: rec})
	f.mustConnect(t, alice, nil)
	f.events()
	got := f.engine.SetSettings(alice.ID, presence.Settings{Text: "in a meeting", Emoji: "📅", Expires: t0.Add(30 * time.Minute)})
	if got.Mode != presence.ModeOnline || got.Visibility != presence.VisibleEveryone {
		t.Fatalf("stored = %+v, want the defaults filled in", got)
	}
	want := online(alice, t0, presence.ModeOnline)
	want.StatusText, want.StatusEmoji = "in a meeting", "📅"
	expectEvents(t, f.events(), want)
	if rec.settings[alice.ID].Text != "in a meeting" {
		t.Fatalf("recorded %+v", rec.settings[alice.ID])
	}

	f.clock.Advance(30*time.Minute - time.Millisecond)
	expectEvents(t, f.events())
	f.clock.Advance(time.Millisecond)
	expectEvents(t, f.events(), online(alice, t0, presence.ModeOnline))
	if s := f.engine.Settings(alice.ID); !s.IsDefault() {
		t.Fatalf("settings after expiry = %+v", s)
	}
	if s := rec.settings[alice.ID]; s.Text != "" || s.Emoji != "" {
		t.Fatalf("expiry not recorded: %+v", s)
	}

	// An offline user's status expires too, and one already past is
	// cleared on load.
	f.engine.SetSettings(bob.ID, presence.Settings{Emoji: "🌴", Expires: f.clock.Now().Add(time.Hour)})
	f.clock.Advance(time.Hour)
	if s := f.engine.Settings(bob.ID); s.Emoji != "" {
		t.Fatalf("bob's status after expiry = %+v", s)
	}
	f.engine.LoadSettings(map[int64]presence.Settings{3: {Text: "old", Expires: t0}, 4: {Mode: presence.ModeDND}})
	if s := f.engine.Settings(3); s.Text != "" {
		t.Fatalf("status loaded past its expiry = %+v", s)
	}
	if _, ok := rec.settings[3]; !ok {
		t.Fatal("the clearing of an expired status loaded at start-up was not recorded")
	}
	if _, ok := rec.settings[4]; ok || f.engine.Settings(4).Mode != presence.ModeDND {
		t.Fatal("settings loaded at start-up were recorded again, or not loaded")
	}
	expectEvents(t, f.events())
}

func TestEngine_Invisible(t *testing.T) {
	rec := &settingsRecorder{}
	f := newFixture(t, presence.Config{Grace: time.Second, Deadline: -1, Recorder: rec})
	f.engine.SetSettings(alice.ID, presence.Settings{Mode: presence.ModeInvisible})

	// Coming online invisible tells only alice herself.
	c := f.mustConnect(t, alice, nil)
	expectEvents(t, f.events(), presence.Event{UserID: 1, Username: "alice", Mode: presence.ModeInvisible, LastSeen: t0, Scope: presence.ScopeSelf})
	if f.engine.IsOnline(alice.ID) || len(f.engine.Online()) != 0 {
		t.Fatal("an invisible user is online to everyone")
	}
	if all := f.engine.OnlineAll(); len(all) != 1 || all[0].Mode != presence.ModeInvisible {
		t.Fatalf("OnlineAll() = %+v", all)
	}
	if _, ok := rec.status[alice.ID]; ok {
		t.Fatalf("invisible connect recorded %+v", rec.status[alice.ID])
	}
	f.clock.Advance(time.Minute)
	c.Activity()
	if _, ok := rec.activity[alice.ID]; ok {
		t.Fatal("an invisible user's activity was recorded")
	}

	// Becoming visible announces her; going invisible again shows her
	// offline to others once, and the truth to herself.
	f.engine.SetSettings(alice.ID, presence.Settings{})
	expectEvents(t, f.events(), online(alice, t0, presence.ModeOnline))
	f.clock.Advance(time.Minute)
	at := f.clock.Now()
	f.engine.SetSettings(alice.ID, presence.Settings{Mode: presence.ModeInvisible, Text: "secret"})
	expectEvents(t, f.events(),
		presence.Event{UserID: 1, Username: "alice", Mode: presence.ModeOffline, LastSeen: at, Scope: presence.ScopeOthers},
		presence.Event{UserID: 1, Username: "alice", Mode: presence.ModeInvisible, StatusText: "secret", LastSeen: at, Scope: presence.ScopeSelf})
	if r := rec.status[alice.ID]; r.online || !r.lastSeen.Equal(at) {
		t.Fatalf("recorded %+v, want offline at %v", r, at)
	}

	// Leaving while invisible: no event, last seen unchanged.
	f.clock.Advance(time.Minute)
	c.Close()
	f.clock.Advance(time.Second)
	expectEvents(t, f.events())
	if r := rec.status[alice.ID]; r.online || !r.lastSeen.IsZero() {
		t.Fatalf("recorded %+v, want offline with last seen left alone", r)
	}

	// Visible only to some: the same to everyone else.
	f.engine.SetSettings(bob.ID, presence.Settings{Visibility: presence.VisibleFriends})
	f.mustConnect(t, bob, nil)
	expectEvents(t, f.events(), presence.Event{UserID: 2, Username: "bob", Mode: presence.ModeOnline, Online: true, LastSeen: f.clock.Now(), Scope: presence.ScopeSelf})
	st, _ := f.engine.State(bob.ID)
	if !st.Hidden() || f.engine.IsOnline(bob.ID) {
		t.Fatalf("friends-only bob is public: %+v", st)
	}
	if presence.CanSee(alice.ID, st, func() bool { return false }) || !presence.CanSee(alice.ID, st, func() bool { return true }) ||
		!presence.CanSee(bob.ID, st, func() bool { return false }) {
		t.Fatal("CanSee does not follow friends-only")
	}
}

// TestEngine_ModesConcurrent drives modes, statuses with expiries, automatic
// away, activity, connections and snapshots from many goroutines on the
// real clock (run with -race); afterwards nobody is left online and every
// subscriber saw a consistent last word per user.
func TestEngine_ModesConcurrent(t *testing.T) {
	e := presence.New(presence.Config{Grace: -1, Deadline: -1, AwayAfter: 2 * time.Millisecond})
	sub := e.Bus().Subscribe(1 << 16)
	defer sub.Close()
	modes := []presence.Mode{presence.ModeOnline, presence.ModeAway, presence.ModeDND, presence.ModeInvisible}
	stop := time.Now().Add(200 * time.Millisecond)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			u := presence.User{ID: int64(g%4 + 1), Username: "u"}
			for i := 0; time.Now().Before(stop); i++ {
				c, err := e.Connect(u, nil)
				if err != nil {
					t.Error(err)
					return
				}
				c.Activity()
				e.SetSettings(u.ID, presence.Settings{Mode: modes[i%4], Text: "t", Expires: time.Now().Add(time.Duration(i%3) * time.Millisecond)})
				e.Online()
				e.OnlineAll()
				time.Sleep(time.Duration(i%3) * time.Millisecond)
				c.Activity()
				c.Close()
			}
		}()
	}
	for range 8 {
		<-done
	}
	if n, c := e.Counts(); n != 0 || c != 0 {
		t.Fatalf("counts after everyone left = %d users, %d conns", n, c)
	}
	e.Close()
	// Every user's last public word is offline (or they were never seen).
	last := map[int64]presence.Event{}
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatal("subscriber dropped")
			}
			if ev.Scope != presence.ScopeSelf {
				last[ev.UserID] = ev
			}
			continue
		default:
		}
		break
	}
	for id, ev := range last {
		if ev.Online {
			t.Errorf("user %d's last public event is online: %+v", id, ev)
		}
	}
}
