package handlers_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
)

// startHistoryServer is a test server keeping days of history.
func startHistoryServer(tb testing.TB, days int) *testServer {
	tb.Helper()
	return mustStartServerWith(tb, handlers.Config{HistoryDays: days}, nil, func(c *presence.Config, _ *handlers.Deps) {
		if days > 0 {
			c.Sessions = c.Recorder.(presence.SessionRecorder)
		}
	})
}

const iPhoneUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"

// stayFiveMinutes keeps c's socket alive for five minutes of the fake
// clock, pinging within every heartbeat deadline as a real client does (a
// single jump past the deadline would drop it).
func stayFiveMinutes(t *testing.T, ts *testServer, c *wsClient) {
	t.Helper()
	for range 15 {
		c.ping()
		ts.Clock.Advance(20 * time.Second)
	}
}

type historyJSON struct {
	UserID   any `json:"user_id"`
	Days     int `json:"days"`
	Sessions []struct {
		Start  string  `json:"start"`
		End    *string `json:"end"`
		Device string  `json:"device"`
	} `json:"sessions"`
}

func TestUserHistoryAPI(t *testing.T) {
	ts := startHistoryServer(t, 30)
	alice, aliceTok := ts.MustCreateUser(t, "alice")
	bob, bobTok := ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	ts.befriend(t, alice.ID, bob.ID)
	api := ts.URL + "/api/users/" + strconv.FormatInt(alice.ID, 10) + "/history/"

	// Alice is online on her phone for ten minutes, reloading once within
	// the grace period: one session.
	c := ts.MustDialHeader(t, "?token="+aliceTok, http.Header{"User-Agent": {iPhoneUA}})
	stayFiveMinutes(t, ts, c)
	c.conn.Close()
	eventually(t, "alice's socket closed", func() bool { _, n := ts.Engine.Counts(); return n == 0 })
	ts.Clock.Advance(2 * time.Second)
	c = ts.MustDialHeader(t, "?token="+aliceTok, http.Header{"User-Agent": {"Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}})
	stayFiveMinutes(t, ts, c)
	c.conn.Close()
	eventually(t, "alice's socket closed", func() bool { _, n := ts.Engine.Counts(); return n == 0 })
	end := ts.Clock.Now()
	ts.Clock.Advance(testGrace + time.Second) // offline; the batch written
	// Then online again now: an open session.
	ts.MustDialHeader(t, "?token="+aliceTok, nil)
	ts.Clock.Advance(2 * time.Second)

	t.Run("OKOwner", func(t *testing.T) {
		st, body := do(t, nil, "GET", api, "", bearer(aliceTok))
		if st != 200 {
			t.Fatalf("%d %s", st, body)
		}
		var h historyJSON
		jsonBody(t, body, &h)
		if h.Days != 30 || h.UserID != float64(alice.ID) || len(h.Sessions) != 2 {
			t.Fatalf("history = %s, want days 30, user_id %d and 2 sessions", body, alice.ID)
		}
		s := h.Sessions[0]
		start, _ := time.Parse(time.RFC3339, s.Start)
		var stop time.Time
		if s.End != nil {
			stop, _ = time.Parse(time.RFC3339, *s.End)
		}
		if !start.Equal(t0) || !stop.Equal(end) || s.Device != "mobile" {
			t.Errorf("first session = %s to %v on %s, want %v to %v on mobile (one session across the reload)", s.Start, stop, s.Device, t0, end)
		}
		if s := h.Sessions[1]; s.End != nil || s.Device != "unknown" {
			t.Errorf("open session = %+v, want end null, device unknown", s)
		}
	})
	t.Run("OKFriend", func(t *testing.T) {
		st, body := do(t, nil, "GET", api, "", bearer(bobTok))
		var h historyJSON
		if st != 200 {
			t.Fatalf("%d %s", st, body)
		}
		jsonBody(t, body, &h)
		if len(h.Sessions) != 2 {
			t.Fatalf("friend sees %s", body)
		}
	})
	t.Run("ErrForbiddenStranger", func(t *testing.T) {
		st, body := do(t, nil, "GET", api, "", bearer(carolTok))
		wantDetail(t, st, body, 403)
	})
	t.Run("ErrForbiddenFriendWhenVisibleToNobody", func(t *testing.T) {
		ts.Engine.SetSettings(alice.ID, presence.Settings{Visibility: presence.VisibleNobody})
		defer ts.Engine.SetSettings(alice.ID, presence.Settings{})
		st, body := do(t, nil, "GET", api, "", bearer(bobTok))
		wantDetail(t, st, body, 403)
		if st, _ := do(t, nil, "GET", api, "", bearer(aliceTok)); st != 200 {
			t.Fatalf("owner got %d", st)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, id := range []string{"999", "nobody", "local:" + strconv.FormatInt(alice.ID, 10)} {
			st, body := do(t, nil, "GET", ts.URL+"/api/users/"+id+"/history/", "", bearer(aliceTok))
			wantDetail(t, st, body, 404)
		}
	})
	t.Run("ErrNoAuth", func(t *testing.T) {
		st, body := do(t, nil, "GET", api, "", nil)
		wantDetail(t, st, body, 401)
	})
	_ = bob
}

func TestUserHistoryAPI_ErrOff(t *testing.T) {
	ts := startHistoryServer(t, 0)
	alice, tok := ts.MustCreateUser(t, "alice")
	st, body := do(t, nil, "GET", ts.URL+"/api/users/"+strconv.FormatInt(alice.ID, 10)+"/history/", "", bearer(tok))
	wantDetail(t, st, body, 404)
}

func TestUserHistoryAPI_InvisibleNotRecorded(t *testing.T) {
	ts := startHistoryServer(t, 30)
	alice, tok := ts.MustCreateUser(t, "alice")
	ts.Engine.SetSettings(alice.ID, presence.Settings{Mode: presence.ModeInvisible})
	c := ts.MustDial(t, tok)
	ts.Clock.Advance(time.Minute)
	c.conn.Close()
	eventually(t, "socket closed", func() bool { _, n := ts.Engine.Counts(); return n == 0 })
	ts.Clock.Advance(time.Minute)
	st, body := do(t, nil, "GET", ts.URL+"/api/users/"+strconv.FormatInt(alice.ID, 10)+"/history/", "", bearer(tok))
	var h historyJSON
	jsonBody(t, body, &h)
	if st != 200 || len(h.Sessions) != 0 {
		t.Fatalf("%d %s: want no sessions for time spent invisible", st, body)
	}
}

func TestProfileHistoryTimeline(t *testing.T) {
	ts := startHistoryServer(t, 30)
	alice, _ := ts.MustCreateUser(t, "alice")
	bob, _ := ts.MustCreateUser(t, "bob")
	ts.MustCreateUser(t, "carol")
	ts.befriend(t, alice.ID, bob.ID)
	// t0 is 05:06 UTC: yesterday 10:00-12:00 on a phone, today 01:00-01:30.
	day := time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)
	err := ts.DB.SavePresence(ctx, []presence.Record{{UserID: alice.ID, Sessions: []presence.SessionChange{
		{Start: day.Add(-14 * time.Hour), End: day.Add(-12 * time.Hour), Device: "mobile"},
		{Start: day.Add(time.Hour), End: day.Add(90 * time.Minute), Device: "desktop"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	profile := func(t *testing.T, viewer string) *goquery.Document {
		t.Helper()
		c := browser(t)
		if st, _ := do(t, c, "POST", ts.URL+"/login", "username="+viewer+"&password=password1", formHeader); st != 303 {
			t.Fatalf("login %s: %d", viewer, st)
		}
		st, body := do(t, c, "GET", ts.URL+"/users/alice", "", nil)
		if st != 200 {
			t.Fatalf("%d %s", st, body)
		}
		return mustDoc(t, body)
	}
	for _, viewer := range []string{"alice", "bob"} {
		t.Run("Shown/"+viewer, func(t *testing.T) {
			doc := profile(t, viewer)
			days := doc.Find(`[data-testid="profile-history"] [data-testid="history-day"]`)
			if days.Length() != 7 {
				t.Fatalf("%d days, want 7", days.Length())
			}
			today, yesterday := days.Eq(0), days.Eq(1)
			if d, _ := today.Attr("data-date"); d != "2026-03-04" {
				t.Fatalf("first day %q, want today", d)
			}
			bar := yesterday.Find(`[data-testid="history-bar"]`)
			if x, _ := bar.Attr("x"); x != "600" || bar.Length() != 1 {
				t.Fatalf("yesterday's bar x=%q (%d bars), want one at 600 (10:00)", x, bar.Length())
			}
			if w, _ := bar.Attr("width"); w != "120" {
				t.Fatalf("yesterday's bar width %q, want 120 (two hours)", w)
			}
			if dev, _ := bar.Attr("data-device"); dev != "mobile" || bar.Find("title").Text() != "10:00–12:00, mobile" {
				t.Fatalf("bar device %q, title %q", dev, bar.Find("title").Text())
			}
			if got := yesterday.Find(`[data-testid="history-total"]`).Text(); got != "2 h 00 min" {
				t.Fatalf("yesterday's total %q", got)
			}
			if got := today.Find(`[data-testid="history-total"]`).Text(); got != "30 min" {
				t.Fatalf("today's total %q", got)
			}
			if n := days.Eq(2).Find(`[data-testid="history-bar"]`).Length(); n != 0 {
				t.Fatalf("%d bars two days ago", n)
			}
		})
	}
	t.Run("HiddenFromStranger", func(t *testing.T) {
		if doc := profile(t, "carol"); doc.Find(`[data-testid="profile-history"]`).Length() != 0 {
			t.Fatal("a stranger sees alice's history")
		}
	})
}

func TestProfileHistoryTimeline_Off(t *testing.T) {
	ts := startHistoryServer(t, 0)
	ts.MustCreateUser(t, "alice")
	c := browser(t)
	do(t, c, "POST", ts.URL+"/login", "username=alice&password=password1", formHeader)
	_, body := do(t, c, "GET", ts.URL+"/users/alice", "", nil)
	if mustDoc(t, body).Find(`[data-testid="profile-history"]`).Length() != 0 {
		t.Fatal("history shown with --history-days 0")
	}
}

// TestUserHistoryAPI_HostIDs: {id} is the public id: the host's id for a
// host user, "local:N" for a local account on a server taking host users.
func TestUserHistoryAPI_HostIDs(t *testing.T) {
	ts := mustStartServerWith(t, handlers.Config{HistoryDays: 30, JWTSecret: hostSecret}, nil, func(c *presence.Config, _ *handlers.Deps) {
		c.Sessions = c.Recorder.(presence.SessionRecorder)
	})
	alice, aliceTok := ts.MustCreateUser(t, "alice")
	jwt42 := simpleJWT(t, t0, 42, nil)
	ts.MustDial(t, jwt42)
	ts.Clock.Advance(2 * time.Second)

	st, body := do(t, nil, "GET", ts.URL+"/api/users/42/history/", "", bearer(jwt42))
	var h historyJSON
	if st != 200 {
		t.Fatalf("host user 42: %d %s", st, body)
	}
	jsonBody(t, body, &h)
	if h.UserID != float64(42) || len(h.Sessions) != 1 || h.Sessions[0].End != nil {
		t.Fatalf("host user 42's history = %s", body)
	}
	local := "local:" + strconv.FormatInt(alice.ID, 10)
	st, body = do(t, nil, "GET", ts.URL+"/api/users/"+local+"/history/", "", bearer(aliceTok))
	jsonBody(t, body, &h)
	if st != 200 || h.UserID != local {
		t.Fatalf("alice by %s: %d %s", local, st, body)
	}
	st, body = do(t, nil, "GET", ts.URL+"/api/users/"+strconv.FormatInt(alice.ID, 10)+"/history/", "", bearer(aliceTok))
	wantDetail(t, st, body, 404) // a host id nobody has, not alice
	st, body = do(t, nil, "GET", ts.URL+"/api/users/42/history/", "", bearer(aliceTok))
	wantDetail(t, st, body, 403)
}
