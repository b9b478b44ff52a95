package handlers_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/store"
)

// befriend makes a and b friends through the store.
func (ts *testServer) befriend(tb testing.TB, a, b int64) {
	tb.Helper()
	res, err := ts.DB.RequestFriend(ctx, a, b)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := ts.DB.AcceptFriendRequest(ctx, b, res.Request.ID); err != nil {
		tb.Fatal(err)
	}
}

func jsonBody(tb testing.TB, body string, v any) {
	tb.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		tb.Fatalf("%v in %s", err, body)
	}
}

// wantDetail checks a status and that the body is {"detail": ...}.
func wantDetail(tb testing.TB, status int, body string, want int) {
	tb.Helper()
	var e struct{ Detail string }
	if status != want || json.Unmarshal([]byte(body), &e) != nil || e.Detail == "" {
		tb.Fatalf("got %d %s, want %d with a detail", status, body, want)
	}
}

func TestFriendsAPI(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, aliceTok := ts.MustCreateUser(t, "alice")
	bob, bobTok := ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	api := ts.URL + "/api/friends/"
	jsonH := func(tok string) http.Header {
		h := bearer(tok)
		h.Set("Content-Type", "application/json")
		return h
	}
	var reqID int64

	t.Run("ErrNoAuth", func(t *testing.T) {
		st, body := do(t, nil, "GET", api, "", nil)
		wantDetail(t, st, body, 401)
	})
	t.Run("ErrBadBody", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/", `{"username":`, jsonH(aliceTok))
		wantDetail(t, st, body, 400)
		st, body = do(t, nil, "POST", api+"requests/", `{}`, jsonH(aliceTok))
		wantDetail(t, st, body, 400)
	})
	t.Run("ErrSelf", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/", `{"username":"ALICE"}`, jsonH(aliceTok))
		wantDetail(t, st, body, 400)
	})
	t.Run("ErrUnknownUser", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/", `{"username":"nobody"}`, jsonH(aliceTok))
		wantDetail(t, st, body, 404)
	})
	t.Run("Request", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/", `{"username":"bob"}`, jsonH(aliceTok))
		var r struct {
			ID       int64
			Username string
			Status   string
			UserID   json.Number `json:"user_id"`
		}
		jsonBody(t, body, &r)
		if st != 201 || r.ID == 0 || r.Username != "bob" || r.Status != "pending" || r.UserID.String() != itoa(bob.ID) {
			t.Fatalf("%d %s", st, body)
		}
		reqID = r.ID
	})
	t.Run("ErrDuplicate", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/", `{"username":"bob"}`, jsonH(aliceTok))
		wantDetail(t, st, body, 409)
	})
	t.Run("ListRequests", func(t *testing.T) {
		var bobs, alices struct {
			Incoming, Outgoing []struct {
				ID       int64
				Username string
			}
		}
		st, body := do(t, nil, "GET", api+"requests/", "", bearer(bobTok))
		jsonBody(t, body, &bobs)
		if st != 200 || len(bobs.Incoming) != 1 || bobs.Incoming[0].ID != reqID || bobs.Incoming[0].Username != "alice" || len(bobs.Outgoing) != 0 {
			t.Fatalf("bob: %d %s", st, body)
		}
		_, body = do(t, nil, "GET", api+"requests/", "", bearer(aliceTok))
		jsonBody(t, body, &alices)
		if len(alices.Outgoing) != 1 || alices.Outgoing[0].Username != "bob" || alices.Outgoing[0].ID != reqID {
			t.Fatalf("alice: %s", body)
		}
	})
	t.Run("ErrAcceptNotYours", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/"+itoa(reqID)+"/accept/", "", bearer(aliceTok))
		wantDetail(t, st, body, 404)
		st, body = do(t, nil, "POST", api+"requests/"+itoa(reqID)+"/accept/", "", bearer(carolTok))
		wantDetail(t, st, body, 404)
		st, body = do(t, nil, "POST", api+"requests/x/accept/", "", bearer(bobTok))
		wantDetail(t, st, body, 400)
	})
	t.Run("Accept", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/"+itoa(reqID)+"/accept/", "", bearer(bobTok))
		var f struct{ Username string }
		jsonBody(t, body, &f)
		if st != 200 || f.Username != "alice" {
			t.Fatalf("%d %s", st, body)
		}
		st, body = do(t, nil, "POST", api+"requests/", `{"username":"alice"}`, jsonH(bobTok))
		wantDetail(t, st, body, 409)
	})
	t.Run("ListWithPresence", func(t *testing.T) {
		ws := ts.MustDial(t, bobTok)
		defer ws.conn.Close()
		eventually(t, "bob online", func() bool { return ts.Engine.IsOnline(bob.ID) })
		st, body := do(t, nil, "GET", api, "", bearer(aliceTok))
		var fs []struct {
			ID       json.Number
			Username string
			IsOnline bool    `json:"is_online"`
			Since    *string `json:"friends_since"`
		}
		jsonBody(t, body, &fs)
		if st != 200 || len(fs) != 1 || fs[0].Username != "bob" || !fs[0].IsOnline || fs[0].ID.String() != itoa(bob.ID) || fs[0].Since == nil {
			t.Fatalf("%d %s", st, body)
		}
		_, body = do(t, nil, "GET", api, "", bearer(carolTok))
		if strings.TrimSpace(body) != "[]" {
			t.Fatalf("carol's friends: %s", body)
		}
	})
	t.Run("DeclineAndCrossed", func(t *testing.T) {
		st, body := do(t, nil, "POST", api+"requests/", `{"username":"carol"}`, jsonH(aliceTok))
		var r struct{ ID int64 }
		jsonBody(t, body, &r)
		if st, body = do(t, nil, "POST", api+"requests/"+itoa(r.ID)+"/decline/", "", bearer(carolTok)); st != 204 {
			t.Fatalf("decline: %d %s", st, body)
		}
		st, body = do(t, nil, "POST", api+"requests/"+itoa(r.ID)+"/decline/", "", bearer(carolTok))
		wantDetail(t, st, body, 404)
		// carol asks alice, then alice asks carol: accepted.
		do(t, nil, "POST", api+"requests/", `{"username":"alice"}`, jsonH(carolTok))
		st, body = do(t, nil, "POST", api+"requests/", `{"username":"carol"}`, jsonH(aliceTok))
		if st != 200 || !strings.Contains(body, `"status":"accepted"`) {
			t.Fatalf("crossed: %d %s", st, body)
		}
	})
	t.Run("Settings", func(t *testing.T) {
		st, body := do(t, nil, "PUT", api+"settings/", `{"notify_online": true}`, jsonH(aliceTok))
		if st != 200 || strings.TrimSpace(body) != `{"notify_online":true}` {
			t.Fatalf("%d %s", st, body)
		}
		if _, body = do(t, nil, "GET", api+"settings/", "", bearer(aliceTok)); strings.TrimSpace(body) != `{"notify_online":true}` {
			t.Fatalf("get: %s", body)
		}
		if _, body = do(t, nil, "GET", api+"settings/", "", bearer(bobTok)); strings.TrimSpace(body) != `{"notify_online":false}` {
			t.Fatalf("bob's: %s", body)
		}
		st, body = do(t, nil, "PUT", api+"settings/", `{"notify": 1}`, jsonH(aliceTok))
		wantDetail(t, st, body, 400)
	})
	t.Run("Remove", func(t *testing.T) {
		st, _ := do(t, nil, "DELETE", api+itoa(alice.ID)+"/", "", bearer(bobTok))
		if st != 204 {
			t.Fatalf("remove: %d", st)
		}
		if ok, _ := ts.DB.AreFriends(ctx, alice.ID, bob.ID); ok {
			t.Fatal("still friends")
		}
		st, body := do(t, nil, "DELETE", api+itoa(alice.ID)+"/", "", bearer(bobTok))
		wantDetail(t, st, body, 404)
		st, body = do(t, nil, "DELETE", api+"999999/", "", bearer(bobTok))
		wantDetail(t, st, body, 404)
	})
}

// TestAuthFriends_Pagination: the original app's OnlineUsers shape, online
// friends first, DRF-style absolute next/previous links.
func TestAuthFriends_Pagination(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	me, tok := ts.MustCreateUser(t, "mememe")
	var online []string
	for _, name := range []string{"ann", "ben", "cat", "dan", "eve"} {
		u, utok := ts.MustCreateUser(t, name)
		ts.befriend(t, me.ID, u.ID)
		if name == "cat" || name == "eve" {
			ws := ts.MustDial(t, utok)
			defer ws.conn.Close()
			online = append(online, name)
			eventually(t, name+" online", func() bool { return ts.Engine.IsOnline(u.ID) })
		}
	}
	type page struct {
		Count          int
		Next, Previous *string
		Results        []struct {
			Friend struct {
				ID       json.Number
				Username string
				IsOnline bool    `json:"is_online"`
				Image    *string `json:"profile_image_url"`
				LastSeen *string `json:"last_seen"`
				Activity *string `json:"last_activity"`
			}
		}
	}
	get := func(t *testing.T, q string) (int, page, string) {
		st, body := do(t, nil, "GET", ts.URL+"/api/auth/friends/"+q, "", bearer(tok))
		var p page
		if st == 200 {
			jsonBody(t, body, &p)
		}
		return st, p, body
	}
	t.Run("FirstPage", func(t *testing.T) {
		st, p, body := get(t, "?page_size=2")
		if st != 200 || p.Count != 5 || p.Previous != nil || p.Next == nil || *p.Next != ts.URL+"/api/auth/friends/?page=2&page_size=2" {
			t.Fatalf("%d %s", st, body)
		}
		if len(p.Results) != 2 || p.Results[0].Friend.Username != "cat" || p.Results[1].Friend.Username != "eve" ||
			!p.Results[0].Friend.IsOnline || p.Results[0].Friend.Activity == nil {
			t.Fatalf("online friends first: %s", body)
		}
		for _, k := range []string{`"id":`, `"username":`, `"profile_image_url":null`, `"is_online":`, `"last_seen":`, `"last_activity":`} {
			if !strings.Contains(body, k) {
				t.Fatalf("%s missing from %s", k, body)
			}
		}
	})
	t.Run("MiddleAndLast", func(t *testing.T) {
		_, p, body := get(t, "?page_size=2&page=2")
		if p.Previous == nil || *p.Previous != ts.URL+"/api/auth/friends/?page_size=2" || p.Next == nil || len(p.Results) != 2 || p.Results[0].Friend.IsOnline {
			t.Fatalf("page 2: %s", body)
		}
		_, p, body = get(t, "?page_size=2&page=3")
		if p.Next != nil || len(p.Results) != 1 || p.Results[0].Friend.Username != "dan" {
			t.Fatalf("page 3: %s", body)
		}
	})
	t.Run("ErrInvalidPage", func(t *testing.T) {
		for _, q := range []string{"?page_size=2&page=4", "?page=0", "?page=x"} {
			st, _, body := get(t, q)
			wantDetail(t, st, body, 404)
		}
	})
	t.Run("PageSizeBounded", func(t *testing.T) {
		_, p, body := get(t, "?page_size=100000")
		if p.Count != 5 || len(p.Results) != 5 || p.Next != nil {
			t.Fatalf("%s", body)
		}
		_, p, _ = get(t, "?page_size=-1")
		if len(p.Results) != 5 {
			t.Fatal("bad page_size did not fall back to the default")
		}
	})
	t.Run("ErrNoAuth", func(t *testing.T) {
		st, body := do(t, nil, "GET", ts.URL+"/api/auth/friends/?page_size=100", "", nil)
		wantDetail(t, st, body, 401)
	})
}

// TestServerPutFriends: the host's backend replaces a host user's friends,
// creating the host users it has not seen, symmetric, host ids out.
func TestServerPutFriends(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	key := ts.serverKey(t)
	put := func(t *testing.T, id, body string, h http.Header) (int, string) {
		if h == nil {
			h = bearer(key)
		}
		return do(t, nil, "PUT", ts.URL+"/api/server/users/"+id+"/friends/", body, h)
	}
	t.Run("CreatesAndSets", func(t *testing.T) {
		st, body := put(t, "42", `{"friend_ids": [7, "8", 7]}`, nil)
		if st != 200 || body != `{"added":[7,8],"friend_ids":[7,8],"id":42,"removed":[]}`+"\n" {
			t.Fatalf("%d %q", st, body)
		}
		u42, _ := ts.DB.HostUser(ctx, "42")
		u7, _ := ts.DB.HostUser(ctx, "7")
		if ok, _ := ts.DB.AreFriends(ctx, u7.ID, u42.ID); !ok {
			t.Fatal("7 is not 42's friend")
		}
	})
	t.Run("Replaces", func(t *testing.T) {
		st, body := put(t, "42", `{"friend_ids": ["8", "uuid-9"]}`, nil)
		if st != 200 || body != `{"added":["uuid-9"],"friend_ids":[8,"uuid-9"],"id":42,"removed":[7]}`+"\n" {
			t.Fatalf("%d %q", st, body)
		}
		st, body = put(t, "7", `{"friend_ids": []}`, nil)
		if st != 200 || !strings.Contains(body, `"friend_ids":[]`) {
			t.Fatalf("%d %s", st, body)
		}
	})
	t.Run("ErrBad", func(t *testing.T) {
		for _, b := range []string{`{"friend_ids": [42]}`, `{"friend_ids": [1.5]}`, `{}`, `{"friend_ids": [""]}`, `[`} {
			st, body := put(t, "42", b, nil)
			wantDetail(t, st, body, 400)
		}
		_, tok := ts.MustCreateUser(t, "someone")
		st, body := put(t, "42", `{"friend_ids": []}`, bearer(tok))
		wantDetail(t, st, body, 403)
	})
}

// mustFriendsStream opens a friends-scoped widget stream as tok.
func (ts *testServer) mustFriendsStream(tb testing.TB, tok, query string) *sseClient {
	tb.Helper()
	req, _ := http.NewRequest("GET", ts.URL+"/widgets/online-users/stream"+query, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != 200 {
		tb.Fatalf("stream: %s", resp.Status)
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 64), clock: ts.Clock}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	tb.Cleanup(func() { resp.Body.Close() })
	return c
}

// expectQuiet fails if c gets any event within d.
func expectQuiet(tb testing.TB, c *sseClient, d time.Duration) {
	tb.Helper()
	select {
	case ev := <-c.events:
		tb.Fatalf("unexpected event %q: %s", ev.name, ev.data)
	case <-time.After(d):
	}
}

// TestFriendsWidget_FanOut: a change of one user reaches only the
// friends-scoped streams of that user's friends, rendered once; a viewer
// who is not a friend receives no bytes; friendship changes update the
// scoped widget; opted-in friends get a toast over the stream they have.
func TestFriendsWidget_FanOut(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, aliceTok := ts.MustCreateUser(t, "alice")
	bob, bobTok := ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	ts.befriend(t, alice.ID, bob.ID)
	feed := ts.Handler.FriendsFeed()

	aliceFriends := ts.mustFriendsStream(t, aliceTok, "?scope=friends")
	carolFriends := ts.mustFriendsStream(t, carolTok, "?scope=friends")
	eventually(t, "streams registered", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 2 })

	ws := ts.MustDial(t, bobTok)
	ev := nextNamed(t, aliceFriends, "friends-delta")
	if !strings.Contains(ev.data, `data-user-id="`+itoa(bob.ID)+`"`) || !strings.Contains(ev.data, "afterbegin:[data-presence-friends-grid]") {
		t.Fatalf("alice's delta: %s", ev.data)
	}
	feed.Sync()
	expectQuiet(t, carolFriends, 300*time.Millisecond)
	if st := feed.Stats(); st.Renders != 1 || st.Routed != 1 {
		t.Fatalf("one change: %+v, want 1 render routed to 1 stream", st)
	}

	// Bob goes offline (after the grace period): a delete for alice only.
	ws.conn.Close()
	eventually(t, "bob's socket gone", func() bool { return ts.Handler.WebSockets() == 0 })
	ts.Clock.Advance(testGrace + time.Second)
	ev = nextNamed(t, aliceFriends, "friends-delta")
	if !strings.Contains(ev.data, "delete:[data-presence-friends-grid] li[data-user-id=&#34;"+itoa(bob.ID)) &&
		!strings.Contains(ev.data, `delete:[data-presence-friends-grid] li[data-user-id=&quot;`+itoa(bob.ID)) &&
		!strings.Contains(ev.data, `delete:[data-presence-friends-grid] li[data-user-id="`+itoa(bob.ID)) {
		t.Fatalf("offline delta: %s", ev.data)
	}

	t.Run("ErrScope", func(t *testing.T) {
		embed, err := ts.DB.CreateToken(ctx, alice.ID, store.TokenEmbed, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"", "/list", "/stream"} {
			if st, _ := do(t, nil, "GET", ts.URL+"/widgets/online-users"+path+"?scope=friends&embed_token="+embed, "", nil); st != 400 {
				t.Fatalf("%s with an embed token: %d, want 400", path, st)
			}
			if st, _ := do(t, nil, "GET", ts.URL+"/widgets/online-users"+path+"?scope=enemies", "", bearer(aliceTok)); st != 400 {
				t.Fatalf("%s with a bad scope: %d, want 400", path, st)
			}
		}
		st, body := do(t, nil, "GET", ts.URL+"/widgets/online-users?scope=friends", "", bearer(aliceTok))
		if st != 200 || !strings.Contains(body, `data-scope="friends"`) || !strings.Contains(body, "/stream?scope=friends") || !strings.Contains(body, "Friends online") {
			t.Fatalf("friends widget: %d %s", st, body)
		}
	})
	t.Run("ListIsPerViewer", func(t *testing.T) {
		ws := ts.MustDial(t, bobTok)
		defer ws.conn.Close()
		nextNamed(t, aliceFriends, "friends-delta")
		st, body := do(t, nil, "GET", ts.URL+"/widgets/online-users/list?scope=friends", "", bearer(aliceTok))
		if st != 200 || !strings.Contains(body, `data-user-id="`+itoa(bob.ID)+`"`) || !strings.Contains(body, `data-presence-total="1"`) {
			t.Fatalf("alice's list: %d %s", st, body)
		}
		_, body = do(t, nil, "GET", ts.URL+"/widgets/online-users/list?scope=friends", "", bearer(carolTok))
		if strings.Contains(body, `data-user-id=`) {
			t.Fatalf("carol's list shows someone: %s", body)
		}
	})
	t.Run("UnfriendUpdatesWidget", func(t *testing.T) {
		ws := ts.MustDial(t, bobTok)
		defer ws.conn.Close()
		if st, _ := do(t, nil, "DELETE", ts.URL+"/api/friends/"+itoa(bob.ID)+"/", "", bearer(aliceTok)); st != 204 {
			t.Fatalf("remove: %d", st)
		}
		ev := nextNamed(t, aliceFriends, "friends-delta")
		if !strings.Contains(ev.data, "delete:") || strings.Contains(ev.data, "afterbegin") {
			t.Fatalf("unfriend delta: %s", ev.data)
		}
		// Befriending an online user (a request accepted through the API)
		// adds their tile at once.
		h := bearer(bobTok)
		h.Set("Content-Type", "application/json")
		_, body := do(t, nil, "POST", ts.URL+"/api/friends/requests/", `{"username":"alice"}`, h)
		var r struct{ ID int64 }
		jsonBody(t, body, &r)
		if st, body := do(t, nil, "POST", ts.URL+"/api/friends/requests/"+itoa(r.ID)+"/accept/", "", bearer(aliceTok)); st != 200 {
			t.Fatalf("accept: %d %s", st, body)
		}
		ev = nextNamed(t, aliceFriends, "friends-delta")
		if !strings.Contains(ev.data, "afterbegin") {
			t.Fatalf("befriend delta: %s", ev.data)
		}
	})
	t.Run("Toast", func(t *testing.T) {
		ws := ts.MustDial(t, bobTok)
		ws.conn.Close()
		eventually(t, "bob's socket gone", func() bool { return ts.Handler.WebSockets() == 0 })
		ts.Clock.Advance(testGrace + time.Second)
		feed.Sync()
		eventually(t, "bob offline", func() bool { return !ts.Engine.IsOnline(bob.ID) })
		// The feed must have taken bob's going offline before he comes
		// back: it reads a user's state from the engine, and one that had
		// not would find him online again and nothing to announce (a busy
		// CI machine got there).
		if ev := nextNamed(t, aliceFriends, "friends-delta"); !strings.Contains(ev.data, "delete:") {
			t.Fatalf("bob offline: %s", ev.data)
		}
		drain(aliceFriends)
		global := ts.MustStream(t, aliceTok) // the home page's stream
		c := browser(t)
		if st, _ := do(t, c, "POST", ts.URL+"/login", "username=alice&password=password1", formHeader); st != 303 {
			t.Fatalf("login: %d", st)
		}
		if st, _ := do(t, c, "POST", ts.URL+"/friends/settings", "notify=on", formHeader); st != 303 {
			t.Fatalf("settings: %d", st)
		}
		ws = ts.MustDial(t, bobTok)
		defer ws.conn.Close()
		for _, s := range []*sseClient{aliceFriends, global} {
			ev := nextNamed(t, s, "friend-online")
			if !strings.Contains(ev.data, "bob") || !strings.Contains(ev.data, "data-presence-toasts") {
				t.Fatalf("toast: %s", ev.data)
			}
		}
		feed.Sync()
		expectQuiet(t, carolFriends, 200*time.Millisecond)
	})
}

func drain(c *sseClient) {
	for {
		select {
		case <-c.events:
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}

// TestFriends_HostIDs: in host mode the friends APIs speak host ids (and
// "local:N" for local accounts), as the original app's OnlineUsers expects;
// a host id and a local row id that collide are told apart.
func TestFriends_HostIDs(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	local, localTok := ts.MustCreateUser(t, "alice") // row 1, shown as "local:1"
	key := ts.serverKey(t)
	if st, body := do(t, nil, "PUT", ts.URL+"/api/server/users/42/friends/", `{"friend_ids": [1, "uuid-9"]}`, bearer(key)); st != 200 {
		t.Fatalf("put: %d %s", st, body)
	}
	hostTok := simpleJWT(t, ts.Clock.Now(), 42, jwt.MapClaims{"username": "ada"})
	_, body := do(t, nil, "GET", ts.URL+"/api/auth/friends/?page_size=100", "", bearer(hostTok))
	if !strings.Contains(body, `"id":1,`) || !strings.Contains(body, `"id":"uuid-9"`) || strings.Contains(body, "local:") {
		t.Fatalf("host friends: %s", body)
	}
	// The local alice asks the host's ada by id; ada sees "local:1".
	st, body := do(t, nil, "POST", ts.URL+"/api/friends/requests/", `{"user_id": 42}`, bearer(localTok))
	if st != 201 || !strings.Contains(body, `"user_id":42`) {
		t.Fatalf("request by host id: %d %s", st, body)
	}
	_, body = do(t, nil, "GET", ts.URL+"/api/friends/requests/", "", bearer(hostTok))
	if !strings.Contains(body, `"user_id":"local:1"`) {
		t.Fatalf("ada's incoming: %s", body)
	}
	// DELETE by public id: 1 is the host's user 1, not local alice.
	if st, _ := do(t, nil, "DELETE", ts.URL+"/api/friends/1/", "", bearer(hostTok)); st != 204 {
		t.Fatalf("delete host friend 1: %d", st)
	}
	if st, _ := do(t, nil, "DELETE", ts.URL+"/api/friends/local:1/", "", bearer(hostTok)); st != 404 {
		t.Fatalf("delete a non-friend local:1: %d", st)
	}
	host1, _ := ts.DB.HostUser(ctx, "1")
	if host1.ID == local.ID {
		t.Fatal("host 1 is the local account")
	}

	// The server API's replace updates friends widgets live: host user 7
	// is online; making them ada's friend shows them in ada's widget.
	adaStream := ts.mustFriendsStream(t, hostTok, "?scope=friends")
	eventually(t, "ada's stream", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 1 })
	ws, _ := ts.dialAck(t, simpleJWT(t, ts.Clock.Now(), 7, jwt.MapClaims{"username": "seven"}))
	defer ws.conn.Close()
	if st, body := do(t, nil, "PUT", ts.URL+"/api/server/users/42/friends/", `{"friend_ids": [7]}`, bearer(key)); st != 200 {
		t.Fatalf("put: %d %s", st, body)
	}
	ev := nextNamed(t, adaStream, "friends-delta")
	if !strings.Contains(ev.data, "afterbegin") || !strings.Contains(ev.data, "seven") {
		t.Fatalf("ada's delta: %s", ev.data)
	}
}

// TestFriendsPages: the friends page and the profile button, through real
// forms: add, pending, accept, remove, notices; cross-origin posts refused.
func TestFriendsPages(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	bob, _ := ts.MustCreateUser(t, "bob")
	a, b := browser(t), browser(t)
	for c, name := range map[*http.Client]string{a: "alice", b: "bob"} {
		if st, _ := do(t, c, "POST", ts.URL+"/login", "username="+name+"&password=password1", formHeader); st != 303 {
			t.Fatalf("login %s: %d", name, st)
		}
	}
	t.Run("ProfileAdd", func(t *testing.T) {
		_, body := do(t, a, "GET", ts.URL+"/users/bob", "", nil)
		if !strings.Contains(body, `data-testid="add-friend"`) {
			t.Fatalf("no add button: %s", body)
		}
		st, _ := do(t, a, "POST", ts.URL+"/friends/requests", "username=bob&next=/users/bob", formHeader)
		if st != 303 {
			t.Fatalf("add: %d", st)
		}
		_, body = do(t, a, "GET", ts.URL+"/users/bob", "", nil)
		if !strings.Contains(body, "Request pending") {
			t.Fatalf("not pending: %s", body)
		}
		_, body = do(t, a, "GET", ts.URL+"/users/alice", "", nil)
		if strings.Contains(body, `data-testid="friend-button"`) {
			t.Fatal("a friend button on one's own profile")
		}
	})
	t.Run("ErrCrossOrigin", func(t *testing.T) {
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}
		if st, _ := do(t, b, "POST", ts.URL+"/friends/settings", "notify=on", h); st != 403 {
			t.Fatalf("cross-origin post: %d", st)
		}
	})
	t.Run("ErrBadInput", func(t *testing.T) {
		if st, _ := do(t, b, "POST", ts.URL+"/friends/settings", "notify=maybe", formHeader); st != 400 {
			t.Fatalf("bad notify: %d", st)
		}
		if st, _ := do(t, b, "POST", ts.URL+"/friends/requests/x/accept", "", formHeader); st != 400 {
			t.Fatalf("bad id: %d", st)
		}
		st, _ := do(t, b, "POST", ts.URL+"/friends/requests", "username=nobody", formHeader)
		_, body := do(t, b, "GET", ts.URL+"/friends?error=nouser", "", nil)
		if st != 303 || !strings.Contains(body, "There is no user with that name.") {
			t.Fatalf("unknown user: %d", st)
		}
	})
	t.Run("AcceptOnPage", func(t *testing.T) {
		_, body := do(t, b, "GET", ts.URL+"/friends", "", nil)
		doc := mustDoc(t, body)
		form := doc.Find(`[data-testid=incoming-request][data-username=alice] [data-testid=accept]`).Closest("form")
		action, _ := form.Attr("action")
		if action == "" || doc.Find(`[data-testid=online-users-widget][data-scope=friends]`).Length() != 1 {
			t.Fatalf("page lacks the request or the friends widget: %s", body)
		}
		if st, _ := do(t, b, "POST", ts.URL+action, "", formHeader); st != 303 {
			t.Fatalf("accept: %d", st)
		}
		_, body = do(t, a, "GET", ts.URL+"/friends", "", nil)
		if !strings.Contains(body, `data-testid="friend" data-username="bob"`) {
			t.Fatalf("alice's friends: %s", body)
		}
		if st, _ := do(t, a, "POST", ts.URL+"/friends/settings", "notify=on", formHeader); st != 303 {
			t.Fatal("settings")
		}
		_, body = do(t, a, "GET", ts.URL+"/friends", "", nil)
		if !strings.Contains(body, `aria-pressed="true"`) {
			t.Fatal("notices not on")
		}
	})
	t.Run("Remove", func(t *testing.T) {
		if st, _ := do(t, a, "POST", ts.URL+"/friends/"+itoa(bob.ID)+"/remove", "next=/users/bob", formHeader); st != 303 {
			t.Fatalf("remove: %d", st)
		}
		_, body := do(t, a, "GET", ts.URL+"/users/bob", "", nil)
		if !strings.Contains(body, `data-testid="add-friend"`) {
			t.Fatal("still friends")
		}
	})
	t.Run("ErrSignedOut", func(t *testing.T) {
		if st, _ := do(t, browser(t), "GET", ts.URL+"/friends", "", nil); st != 303 {
			t.Fatalf("signed out: %d", st)
		}
	})
}
