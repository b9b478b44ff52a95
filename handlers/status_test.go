package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

func jsonBearer(tok string) http.Header {
	h := bearer(tok)
	h.Set("Content-Type", "application/json")
	return h
}

func putStatus(tb testing.TB, ts *testServer, tok, body string) (int, map[string]any) {
	tb.Helper()
	code, raw := do(tb, nil, "PUT", ts.URL+"/api/users/me/status/", body, jsonBearer(tok))
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		tb.Fatalf("PUT %s: %d %q", body, code, raw)
	}
	return code, m
}

func onlineItems(tb testing.TB, ts *testServer, tok string) []map[string]any {
	tb.Helper()
	code, body := do(tb, nil, "GET", ts.URL+"/api/users/online/", "", bearer(tok))
	if code != 200 {
		tb.Fatalf("online: %d %s", code, body)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestAPIStatus(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")

	code, body := do(t, nil, "GET", ts.URL+"/api/users/me/status/", "", bearer(tokA))
	if code != 200 || !strings.Contains(body, `"mode":"online"`) || !strings.Contains(body, `"current_mode":"offline"`) ||
		!strings.Contains(body, `"expires_at":null`) || !strings.Contains(body, `"visibility":"everyone"`) {
		t.Fatalf("GET default: %d %s", code, body)
	}
	watcher := ts.MustDial(t, tokB)
	ts.MustDial(t, tokA)
	watcher.expectStatus(alice, true)

	t.Run("Set", func(t *testing.T) {
		code, m := putStatus(t, ts, tokA, `{"mode":"dnd","text":"  deep work  ","emoji":"🎧","expires_in":20}`)
		if code != 200 || m["mode"] != "dnd" || m["current_mode"] != "dnd" || m["text"] != "deep work" || m["emoji"] != "🎧" ||
			m["is_online"] != true || m["expires_at"] != t0.Add(20*time.Second).UTC().Format("2006-01-02T15:04:05.000Z07:00") {
			t.Fatalf("PUT: %d %v", code, m)
		}
		ev := watcher.expectStatus(alice, true)
		if ev["mode"] != "dnd" || ev["status_text"] != "deep work" || ev["status_emoji"] != "🎧" {
			t.Fatalf("event %v", ev)
		}
		items := onlineItems(t, ts, tokB)
		if len(items) != 1 || items[0]["mode"] != "dnd" || items[0]["status_text"] != "deep work" || items[0]["status_emoji"] != "🎧" {
			t.Fatalf("online list %v", items)
		}
		// Only the fields given change.
		if code, m := putStatus(t, ts, tokA, `{"mode":"away"}`); code != 200 || m["text"] != "deep work" || m["mode"] != "away" {
			t.Fatalf("PUT mode only: %d %v", code, m)
		}
		watcher.expectStatus(alice, true)
	})

	t.Run("Expiry", func(t *testing.T) {
		ts.Clock.Advance(20 * time.Second)
		ev := watcher.expectStatus(alice, true)
		if ev["status_text"] != "" || ev["status_emoji"] != "" || ev["mode"] != "away" {
			t.Fatalf("expiry event %v", ev)
		}
		if items := onlineItems(t, ts, tokB); items[0]["status_text"] != "" {
			t.Fatalf("online list after expiry %v", items)
		}
	})

	t.Run("Emoji", func(t *testing.T) {
		for _, e := range []string{"👍", "👍🏽", "👨‍👩‍👧", "🇫🇷", "1️⃣", "❤️", "🏳️‍🌈", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"} {
			if code, m := putStatus(t, ts, tokA, `{"emoji":"`+e+`","expires_at":null}`); code != 200 || m["emoji"] != e {
				t.Errorf("emoji %q: %d %v", e, code, m)
			}
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		long := strings.Repeat("é", presence.MaxStatusText+1)
		for body, detail := range map[string]string{
			`{"mode":"busy"}`:                                  "mode must be one of",
			`{"mode":3}`:                                       "mode must be a string",
			`{"text":"` + long + `"}`:                          "at most 100 characters",
			`{"text":"two\nlines"}`:                            "one line",
			`{"emoji":"👍👍"}`:                                   "exactly one emoji (got 2",
			`{"emoji":"a"}`:                                    "exactly one emoji",
			`{"emoji":"é"}`:                                    "exactly one emoji",
			`{"emoji":"1"}`:                                    "exactly one emoji",
			`{"emoji":"🇫"}`:                                    "exactly one emoji",
			`{"expires_in":0}`:                                 "expires_in must be",
			`{"expires_in":"soon"}`:                            "expires_in must be",
			`{"expires_at":"2020-01-01T00:00:00Z"}`:            "not in the future",
			`{"expires_at":"tomorrow"}`:                        "RFC 3339",
			`{"expires_in":60,"expires_at":null}`:              "not both",
			`{"visibility":"friends-of-friends"}`:              "visibility must be one of",
			`{"colour":"red"}`:                                 "unknown field",
			`[]`:                                               "JSON object",
			`{"text":"ok","expires_in":99999999999}`:           "expires_in must be",
			`{"expires_at":"2099-01-01T00:00:00Z","text":"x"}`: "within 366 days",
		} {
			code, m := putStatus(t, ts, tokA, body)
			if d, _ := m["detail"].(string); code != 400 || !strings.Contains(d, detail) {
				t.Errorf("PUT %s: %d %v, want 400 with %q", body, code, m, detail)
			}
		}
		if code, _ := do(t, nil, "PUT", ts.URL+"/api/users/me/status/", `{}`, nil); code != 401 {
			t.Errorf("PUT without auth: %d", code)
		}
	})
}

func TestAutoAway(t *testing.T) {
	ts := mustStartServerWith(t, handlers.Config{}, nil, func(c *presence.Config, _ *handlers.Deps) {
		c.AwayAfter, c.Deadline, c.PingAfter = 10*time.Minute, -1, 0
	})
	alice, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	watcher := ts.MustDial(t, tokB)
	tab := ts.MustDial(t, tokA)
	watcher.expectStatus(alice, true)
	ts.Clock.Advance(9 * time.Minute)
	watcher.expectNoStatus()
	ts.Clock.Advance(4 * time.Minute)
	if ev := watcher.expectStatus(alice, true); ev["mode"] != "away" {
		t.Fatalf("after 13 idle minutes: %v", ev)
	}
	if items := onlineItems(t, ts, tokB); items[0]["mode"] != "away" || items[0]["is_online"] != true {
		t.Fatalf("online list %v", items)
	}
	tab.ping() // activity
	if ev := watcher.expectStatus(alice, true); ev["mode"] != "online" {
		t.Fatalf("after a ping: %v", ev)
	}
}

// seesNothingOf fails if s mentions the user: their name, or their id in
// any of the shapes the API, events and fragments use.
func seesNothingOf(tb testing.TB, where, s string, u store.User) {
	tb.Helper()
	id := strconv.FormatInt(u.ID, 10)
	for _, needle := range []string{u.Username, `"id":` + id + `,`, `"user_id":"` + id + `"`, `data-user-id="` + id + `"`, `data-user-id=&#34;` + id + `&#34;`} {
		if strings.Contains(s, needle) {
			tb.Errorf("%s shows the invisible user (%q): %.400s", where, needle, s)
		}
	}
}

// TestInvisibleLeaksNothing walks every endpoint and stream as another
// user while zelda is invisible, and fails if her name or id shows up
// anywhere but her own profile (which must show her offline).
func TestInvisibleLeaksNothing(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	zelda, tokZ := ts.MustCreateUser(t, "zelda_hidden")
	bob, tokB := ts.MustCreateUser(t, "bob")
	early := ts.MustDial(t, tokB)
	early.expectStatus(bob, true)
	zTab := ts.MustDial(t, tokZ)
	early.expectStatus(zelda, true)
	ts.Clock.Advance(testDeadline / 3)
	zTab.ping()
	ts.Batcher.Flush(ctx)

	// Going invisible: others see her offline once, without her status.
	pushes := func() float64 {
		return metricValue(t, ts, "presence_widget_list_deltas_total") + metricValue(t, ts, "presence_widget_list_pushes_total")
	}
	pushed := pushes()
	putStatus(t, ts, tokZ, `{"mode":"invisible","text":"shh","emoji":"🤫"}`)
	ev := early.expectStatus(zelda, false)
	if ev["mode"] != "offline" || ev["status_text"] != "" || ev["status_emoji"] != "" {
		t.Fatalf("going invisible: %v", ev)
	}
	self := zTab.nextOfType("user.status.changed") // she sees her own truth
	if self["mode"] != "invisible" || self["status_text"] != "shh" || self["is_online"] != false {
		t.Fatalf("her own event: %v", self)
	}
	ts.Batcher.Flush(ctx)
	before, _ := ts.DB.UserByID(ctx, zelda.ID)

	// Viewers who arrive from now on must never hear of her: wait until
	// the widget feed has pushed her departure (the one "offline").
	eventually(t, "the feed to push her departure", func() bool {
		ts.Clock.Advance(feedWindowStep) // the feed may be gathering a burst on the fake clock
		return pushes() > pushed
	})
	late := ts.MustDial(t, tokB)
	stream := ts.MustStream(t, tokB)
	// What she does while invisible: pings, a status, a second tab, leaving.
	ts.Clock.Advance(testDeadline / 3)
	zTab.ping()
	putStatus(t, ts, tokZ, `{"text":"still here"}`)
	tab2 := ts.MustDial(t, tokZ)
	tab2.ping()
	tab2.conn.Close()
	ts.Clock.Advance(time.Second)

	for where, path := range map[string]string{
		"API online list":    "/api/users/online/",
		"API at auth/online": "/api/auth/online/",
		"widget":             "/widgets/online-users",
		"widget list":        "/widgets/online-users/list",
		"online page":        "/online",
		"home page":          "/",
		"bob's profile":      "/users/bob",
		"metrics":            "/metrics",
	} {
		code, body := do(t, nil, "GET", ts.URL+path, "", bearer(tokB))
		if code != 200 {
			t.Fatalf("%s: %d %s", where, code, body)
		}
		seesNothingOf(t, where, body, zelda)
	}
	if n, _ := ts.Engine.Counts(); n != 2 {
		t.Fatalf("engine counts %d users: want zelda still connected", n)
	}
	if strings.Contains(ts.MustList(t, tokB), `data-presence-total="2"`) {
		t.Fatal("the widget's count includes the invisible user")
	}
	code, body := do(t, nil, "GET", ts.URL+"/users/zelda_hidden", "", bearer(tokB))
	if code != 200 || strings.Contains(body, "Online now") || strings.Contains(body, "still here") || !strings.Contains(body, "Last seen") {
		t.Fatalf("profile: %d %s", code, body)
	}
	code, body = do(t, nil, "GET", ts.URL+"/api/users/zelda_hidden/presence/", "", bearer(tokB))
	if code != 200 || !strings.Contains(body, `"is_online":false`) || !strings.Contains(body, `"mode":"offline"`) || strings.Contains(body, "still here") {
		t.Fatalf("presence API: %d %s", code, body)
	}

	// WebSocket events: the early watcher saw her go offline once, then
	// nothing; the late one nothing at all; the stream nothing either.
	zTab.conn.Close()
	eventually(t, "her sockets to close", func() bool { _, n := ts.Engine.Counts(); return n == 2 })
	ts.Clock.Advance(testGrace)
	for name, c := range map[string]*wsClient{"early": early, "late": late} {
		c.send(`{"type":"ping"}`)
		for {
			m := c.next()
			if m["type"] == "pong" {
				break
			}
			raw, _ := json.Marshal(m)
			seesNothingOf(t, name+" watcher", string(raw), zelda)
		}
	}
	ts.Clock.Advance(time.Second)
	drain := time.After(300 * time.Millisecond)
	for done := false; !done; {
		select {
		case ev := <-stream.events:
			seesNothingOf(t, "widget stream", ev.data, zelda)
		case <-drain:
			done = true
		}
	}

	// Her last seen stopped when she went invisible.
	ts.Batcher.Flush(ctx)
	after, _ := ts.DB.UserByID(ctx, zelda.ID)
	if !after.LastSeen.Equal(before.LastSeen) || !after.LastActivity.Equal(before.LastActivity) || after.IsOnline {
		t.Fatalf("last seen moved while invisible: %v/%v → %v/%v (online %v)", before.LastSeen, before.LastActivity, after.LastSeen, after.LastActivity, after.IsOnline)
	}
}

// friends is a FriendChecker for tests: these pairs are friends.
type friends map[[2]int64]bool

func (f friends) AreFriends(_ context.Context, a, b int64) (bool, error) {
	return f[[2]int64{a, b}] || f[[2]int64{b, a}], nil
}

func TestVisibility(t *testing.T) {
	fr := friends{}
	ts := mustStartServerWith(t, handlers.Config{}, nil, func(_ *presence.Config, d *handlers.Deps) { d.Friends = fr })
	carol, tokC := ts.MustCreateUser(t, "carol")
	bob, tokB := ts.MustCreateUser(t, "bob")
	dave, tokD := ts.MustCreateUser(t, "dave")
	fr[[2]int64{carol.ID, dave.ID}] = true

	// Carol was here ten minutes ago.
	c := ts.MustDial(t, tokC)
	c.conn.Close()
	eventually(t, "carol's socket to close", func() bool { _, n := ts.Engine.Counts(); return n == 0 })
	ts.Clock.Advance(testGrace)
	ts.Clock.Advance(5 * time.Minute)
	ts.Batcher.Flush(ctx)

	presenceOf := func(tok string) map[string]any {
		t.Helper()
		code, body := do(t, nil, "GET", ts.URL+"/api/users/carol/presence/", "", bearer(tok))
		var m map[string]any
		if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("presence: %d %s", code, body)
		}
		return m
	}
	profileOf := func(tok string) string {
		t.Helper()
		_, body := do(t, nil, "GET", ts.URL+"/users/carol", "", bearer(tok))
		return body
	}
	if m := presenceOf(tokB); m["last_seen_ago"] != "5 minutes ago" || m["is_online"] != false {
		t.Fatalf("everyone: %v", m)
	}
	if !strings.Contains(profileOf(tokB), "Last seen 5 minutes ago") {
		t.Fatal("profile does not say when carol was last seen")
	}

	for _, vis := range []string{"nobody", "friends"} {
		t.Run(vis, func(t *testing.T) {
			putStatus(t, ts, tokC, `{"visibility":"`+vis+`"}`)
			if m := presenceOf(tokB); m["last_seen"] != nil || m["last_seen_ago"] != nil {
				t.Fatalf("bob sees carol's last seen: %v", m)
			}
			if p := profileOf(tokB); strings.Contains(p, "Last seen") {
				t.Fatal("bob's view of the profile shows last seen")
			}
			friendSees := vis == "friends"
			if m := presenceOf(tokD); (m["last_seen_ago"] == "5 minutes ago") != friendSees {
				t.Fatalf("dave (a friend) sees last seen %v, want %v", m, friendSees)
			}
			// Online: hidden from bob everywhere, shown to a friend.
			cs := ts.MustDial(t, tokC)
			cs.ping()
			for _, it := range onlineItems(t, ts, tokB) {
				if it["username"] == "carol" {
					t.Fatal("bob's online list shows carol")
				}
			}
			if m := presenceOf(tokB); m["is_online"] != false {
				t.Fatalf("bob sees carol online: %v", m)
			}
			if strings.Contains(ts.MustList(t, tokB), "carol") {
				t.Fatal("the shared widget list shows carol")
			}
			_, page := do(t, nil, "GET", ts.URL+"/online", "", bearer(tokB))
			if strings.Contains(page, "carol") {
				t.Fatal("bob's /online shows carol")
			}
			daveSees := false
			for _, it := range onlineItems(t, ts, tokD) {
				daveSees = daveSees || it["username"] == "carol"
			}
			if daveSees != friendSees {
				t.Fatalf("dave sees carol online: %v, want %v", daveSees, friendSees)
			}
			if m := presenceOf(tokC); m["is_online"] != true {
				t.Fatalf("carol does not see herself online: %v", m)
			}
			cs.conn.Close()
			eventually(t, "carol's socket to close", func() bool { _, n := ts.Engine.Counts(); return n == 0 })
			ts.Clock.Advance(testGrace)
		})
	}
	_ = bob
}

// TestStatusForm: the header menu's form sets the mode and a status that
// clears at the end of the browser's day, and sends the browser back to a
// page of this server only.
func TestStatusForm(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(form string) (int, string) {
		t.Helper()
		h := bearer(tokA)
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		req, _ := http.NewRequest("POST", ts.URL+"/status", strings.NewReader(form))
		req.Header = h
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	// t0 is 4 March 05:06 UTC, 00:06 at UTC−5 (JavaScript offset 300),
	// where the day ends at 5 March 05:00 UTC.
	code, loc := post("mode=dnd&emoji=%F0%9F%8E%A7&text=deep+work&expires=today&tz_offset=300&visibility=friends&return=%2Fonline%3Fpage%3D1")
	if code != 303 || loc != "/online?page=1" {
		t.Fatalf("POST: %d %q", code, loc)
	}
	s := ts.Engine.Settings(alice.ID)
	want := time.Date(2026, 3, 5, 5, 0, 0, 0, time.UTC)
	if s.Mode != presence.ModeDND || s.Text != "deep work" || s.Emoji != "🎧" || !s.Expires.Equal(want) || s.Visibility != presence.VisibleFriends {
		t.Fatalf("settings %+v, want dnd, status until %v, friends", s, want)
	}
	if code, loc := post("mode=online&clear=1&expires=never&return=%2F%2Fevil.example%2F"); code != 303 || loc != "/" {
		t.Fatalf("clear: %d %q", code, loc)
	}
	if s := ts.Engine.Settings(alice.ID); s.Mode != presence.ModeOnline || s.Text != "" || s.Emoji != "" || s.Visibility != presence.VisibleFriends {
		t.Fatalf("after clear: %+v", s)
	}
	for _, bad := range []string{"mode=busy", "emoji=ab", "expires=tomorrow", "visibility=all"} {
		if code, _ := post(bad); code != 400 {
			t.Errorf("POST %s: %d, want 400", bad, code)
		}
	}
}

// TestStatusChangeIsOneTileDelta: a change of mode or status reaches every
// widget as one presence-delta that replaces the user's tile (removed,
// then inserted before the same neighbour), rendered once for all.
func TestStatusChangeIsOneTileDelta(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	_, tokC := ts.MustCreateUser(t, "carol")
	ts.MustDial(t, tokA)
	ts.MustDial(t, tokB)
	ts.MustDial(t, tokC)
	for i := range 9 { // enough tiles that one tile's delta is the cheaper push
		_, tok := ts.MustCreateUser(t, "user"+strconv.Itoa(i))
		ts.MustDial(t, tok)
	}
	eventually(t, "all online", func() bool { n, _ := ts.Engine.Counts(); return n == 12 })
	// Let the feed push the arrivals (it gathers them for a window on the
	// fake clock) before the change under test.
	eventually(t, "the list to show all twelve", func() bool {
		ts.Clock.Advance(feedWindowStep)
		return strings.Contains(ts.MustList(t, tokB), `data-presence-total="12"`)
	})
	ts.Clock.Advance(2 * feedWindowStep)
	streams := []*sseClient{ts.MustStream(t, tokB), ts.MustStream(t, tokC)}
	eventually(t, "two subscribers", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 2 })
	renders := metricValue(t, ts, "presence_widget_renders_total")

	putStatus(t, ts, tokA, `{"mode":"dnd","text":"deep work","emoji":"🎧"}`)
	for _, s := range streams {
		ev := nextNamed(t, s, "presence-delta") // after the stream's opening snapshot
		id := itoa(alice.ID)
		if strings.Count(ev.data, `delete:`) != 1 || !strings.Contains(ev.data, `li[data-user-id=&#34;`+id+`&#34;]`) && !strings.Contains(ev.data, `li[data-user-id="`+id+`"]`) {
			t.Fatalf("delta does not remove alice's tile once: %s", ev.data)
		}
		if !strings.Contains(ev.data, `data-tip="alice · do not disturb · 🎧 deep work"`) || !strings.Contains(ev.data, `data-mode="dnd"`) ||
			strings.Count(ev.data, `data-testid="widget-user"`) != 1 {
			t.Fatalf("delta does not insert alice's new tile alone: %s", ev.data)
		}
	}
	if got := metricValue(t, ts, "presence_widget_renders_total") - renders; got != 1 {
		t.Fatalf("%v renders for one change, want 1", got)
	}
}
