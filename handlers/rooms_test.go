package handlers_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// roomList is GET /api/rooms/online/?room=room as tok: status and names.
func roomList(t *testing.T, ts *testServer, tok, room string) (int, []string, []map[string]any) {
	t.Helper()
	st, body := do(t, nil, "GET", ts.URL+"/api/rooms/online/?room="+url.QueryEscape(room), "", bearer(tok))
	if st != 200 {
		return st, nil, nil
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(body), &items); err != nil {
		t.Fatalf("room list: %v: %s", err, body)
	}
	var names []string
	for _, it := range items {
		names = append(names, it["username"].(string))
	}
	return st, names, items
}

func expectRoom(t *testing.T, ts *testServer, tok, room, want string) {
	t.Helper()
	st, names, _ := roomList(t, ts, tok, room)
	if st != 200 || strings.Join(names, ",") != want {
		t.Fatalf("room %q: %d %v, want %q", room, st, names, want)
	}
}

// TestRoomsAPI: ?room= at connect and the room message put a tab in a
// room; GET /api/rooms/online/ lists who is in it (the online list's shape,
// the requester and hidden users left out); leaving takes the grace period;
// bad names are refused with a detail; original-protocol clients see no
// change.
func TestRoomsAPI(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "root") // the first account: an administrator
	root := signedIn(t, ts, "root")
	_, aliceTok := ts.MustCreateUser(t, "alice")
	bob, bobTok := ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	dave, daveTok := ts.MustCreateUser(t, "dave")
	const room = "/users/alice"

	t.Run("OK", func(t *testing.T) {
		bobWS := ts.MustDialQuery(t, "?token="+bobTok+"&room="+url.QueryEscape(room))
		carolWS := ts.MustDial(t, carolTok)
		carolWS.send(`{"type":"room","room":"` + room + `"}`)
		if m := carolWS.nextOfType("room.joined"); m["room"] != room {
			t.Fatalf("room reply: %v", m)
		}
		// Two tabs of bob in the room: counted once.
		bobWS2 := ts.MustDialQuery(t, "?token="+bobTok+"&room="+url.QueryEscape(room))
		expectRoom(t, ts, aliceTok, room, "bob,carol")
		expectRoom(t, ts, bobTok, room, "carol") // not the requester
		_, _, items := roomList(t, ts, aliceTok, room)
		for _, k := range []string{"id", "username", "profile_image_url", "is_online", "last_seen", "last_activity", "mode", "status_text", "status_emoji"} {
			if _, ok := items[0][k]; !ok {
				t.Fatalf("item lacks %q: %v", k, items[0])
			}
		}
		if items[0]["is_online"] != true || items[0]["mode"] != "online" {
			t.Fatalf("item: %v", items[0])
		}
		expectRoom(t, ts, aliceTok, "/users/carol", "")

		// An invisible user in the room is not shown to others.
		ts.Engine.SetSettings(dave.ID, presence.Settings{Mode: presence.ModeInvisible})
		ts.MustDialQuery(t, "?token="+daveTok+"&room="+url.QueryEscape(room))
		expectRoom(t, ts, aliceTok, room, "bob,carol")
		expectRoom(t, ts, daveTok, room, "bob,carol")

		// The admin page shows each connection's room.
		if _, body := do(t, root, "GET", ts.URL+"/admin", "", nil); !strings.Contains(body, room) {
			t.Fatal("/admin does not show the connection's room")
		}

		// Carol leaves: still there within the grace period, gone after.
		carolWS.send(`{"type":"room","room":""}`)
		if m := carolWS.nextOfType("room.left"); m["room"] != "" {
			t.Fatalf("leave reply: %v", m)
		}
		ts.Clock.Advance(testGrace / 2)
		expectRoom(t, ts, aliceTok, room, "bob,carol")
		ts.Clock.Advance(testGrace)
		expectRoom(t, ts, aliceTok, room, "bob")

		// One of bob's tabs closes: he stays; the other closes: he leaves
		// after the grace period, with going offline.
		bobWS.conn.Close()
		eventually(t, "bob's first tab gone", func() bool { return len(ts.Engine.RoomMembers(room)) == 2 && ts.Handler.WebSockets() == 3 })
		ts.Clock.Advance(2 * testGrace)
		expectRoom(t, ts, aliceTok, room, "bob")
		bobWS2.conn.Close()
		eventually(t, "bob's tabs gone", func() bool { return ts.Handler.WebSockets() == 2 })
		expectRoom(t, ts, aliceTok, room, "bob")
		ts.Clock.Advance(testGrace + time.Second)
		expectRoom(t, ts, aliceTok, room, "")
		if ts.Engine.IsOnline(bob.ID) {
			t.Fatal("bob still online")
		}
	})

	t.Run("Reload", func(t *testing.T) {
		eventually(t, "earlier sockets gone", func() bool { return ts.Handler.WebSockets() == 0 })
		ws := ts.MustDialQuery(t, "?token="+bobTok+"&room=doc")
		ws.conn.Close()
		eventually(t, "socket gone", func() bool { return ts.Handler.WebSockets() == 0 })
		ts.Clock.Advance(testGrace / 2)
		ts.MustDialQuery(t, "?token="+bobTok+"&room=doc")
		ts.Clock.Advance(2 * testGrace)
		expectRoom(t, ts, aliceTok, "doc", "bob")
	})

	t.Run("ErrBadRoom", func(t *testing.T) {
		for _, q := range []string{"", "?room=", "?room=" + strings.Repeat("x", 101), "?room=a%00b", "?room=%20lead", "?room=%FF", "?room=a%E2%80%8Bb"} {
			st, body := do(t, nil, "GET", ts.URL+"/api/rooms/online/"+q, "", bearer(aliceTok))
			if st != 400 || !strings.Contains(body, `"detail"`) {
				t.Fatalf("rooms%s: %d %s, want 400 with detail", q, st, body)
			}
		}
		if st, _ := do(t, nil, "GET", ts.URL+"/api/rooms/online/?room=x", "", nil); st != 401 {
			t.Fatalf("without auth: %d, want 401", st)
		}
		// A bad ?room= refuses the handshake with a JSON 400.
		_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+aliceTok+"&room=%0A"), nil)
		if err == nil || resp == nil || resp.StatusCode != 400 {
			t.Fatalf("bad room at connect: %v %v, want 400", err, respStatus(resp))
		}
		// A bad room message is answered with an error; the socket stays,
		// in the room it was in.
		ws := ts.MustDialQuery(t, "?token="+aliceTok+"&room=ok&events=0")
		for _, msg := range []string{`{"type":"room","room":"` + strings.Repeat("é", 101) + `"}`, `{"type":"room","room":"a\u0007"}`, `{"type":"room"}`, `{"type":"room","room":42}`} {
			ws.send(msg)
			m := ws.next()
			if m["type"] != "error" || m["detail"] == "" {
				t.Fatalf("%s: %v, want an error", msg, m)
			}
		}
		ws.ping()
		expectRoom(t, ts, bobTok, "ok", "alice")
	})

	t.Run("OriginalProtocol", func(t *testing.T) {
		ws := ts.MustDialQuery(t, "?events=0&token="+carolTok) // no room
		ws.ping()
		ws.send(`{"type":"nonsense"}`)
		if m := ws.next(); m["type"] != "error" {
			t.Fatalf("unknown type: %v", m)
		}
		if rooms := ts.Engine.RoomsOf(mustUser(t, ts, "carol").ID); len(rooms) != 0 {
			t.Fatalf("a client without rooms is in %v", rooms)
		}
	})
}

// mustRoomStream opens a room widget stream with the query (bearer tok,
// or none for an embed token in the query).
func (ts *testServer) mustRoomStream(tb testing.TB, tok, query string) *sseClient {
	tb.Helper()
	return ts.mustFriendsStream(tb, tok, query)
}

// TestRoomWidget_Stream: a change in room R is rendered once and queued
// only on the streams watching R; other rooms' streams and the shared
// list's get no room bytes. The list fragment is the room's members.
func TestRoomWidget_Stream(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, aliceTok := ts.MustCreateUser(t, "alice")
	bob, bobTok := ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	_, daveTok := ts.MustCreateUser(t, "dave")
	feed := ts.Handler.RoomFeed()

	doc1 := ts.mustRoomStream(t, aliceTok, "?room=doc-1")
	doc2 := ts.mustRoomStream(t, carolTok, "?room="+url.QueryEscape("doc 2 é"))
	global := ts.MustStream(t, daveTok)
	eventually(t, "streams registered", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 3 })

	ws := ts.MustDialQuery(t, "?token="+bobTok+"&room=doc-1")
	ev := nextNamed(t, doc1, "room-delta")
	if !strings.Contains(ev.data, `data-user-id="`+itoa(bob.ID)+`"`) || !strings.Contains(ev.data, "afterbegin:[data-presence-room-grid=") {
		t.Fatalf("doc-1 delta: %s", ev.data)
	}
	expectQuiet(t, doc2, 300*time.Millisecond)
	if st := feed.Stats(); st.Renders != 1 || st.Routed != 1 {
		t.Fatalf("one change: %+v, want 1 render routed to 1 stream", st)
	}
	for {
		select {
		case ev := <-global.events:
			if ev.name == "room-delta" {
				t.Fatalf("the shared list's stream got room bytes: %s", ev.data)
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}

	// The list: the room's members, the viewer left out.
	st, body := do(t, nil, "GET", ts.URL+"/widgets/online-users/list?room=doc-1", "", bearer(aliceTok))
	if st != 200 || !strings.Contains(body, `data-user-id="`+itoa(bob.ID)+`"`) || !strings.Contains(body, `data-presence-room-grid="doc-1"`) {
		t.Fatalf("alice's room list: %d %s", st, body)
	}
	if _, body := do(t, nil, "GET", ts.URL+"/widgets/online-users/list?room=doc-1", "", bearer(bobTok)); strings.Contains(body, `data-user-id=`) {
		t.Fatalf("bob's own room list shows someone: %s", body)
	}
	st, body = do(t, nil, "GET", ts.URL+"/widgets/online-users?room=doc-1", "", bearer(aliceTok))
	if st != 200 || !strings.Contains(body, `data-scope="room"`) || !strings.Contains(body, "/stream?room=doc-1") || !strings.Contains(body, "Here now") {
		t.Fatalf("room widget: %d %s", st, body)
	}

	// Bob moves to doc 2: doc 2 sees him at once, doc-1 loses him after
	// the grace period.
	ws.send(`{"type":"room","room":"doc 2 é"}`)
	ws.nextOfType("room.joined")
	if ev := nextNamed(t, doc2, "room-delta"); !strings.Contains(ev.data, "afterbegin") {
		t.Fatalf("doc 2 delta: %s", ev.data)
	}
	expectQuiet(t, doc1, 200*time.Millisecond)
	ts.Clock.Advance(testGrace)
	if ev := nextNamed(t, doc1, "room-delta"); !strings.Contains(ev.data, "delete:") || strings.Contains(ev.data, "afterbegin") {
		t.Fatalf("doc-1 leave delta: %s", ev.data)
	}

	// Going invisible hides him from the room at once.
	ts.Engine.SetSettings(bob.ID, presence.Settings{Mode: presence.ModeInvisible})
	if ev := nextNamed(t, doc2, "room-delta"); strings.Contains(ev.data, "afterbegin") {
		t.Fatalf("invisible delta: %s", ev.data)
	}
	if _, body := do(t, nil, "GET", ts.URL+"/widgets/online-users/list?room="+url.QueryEscape("doc 2 é"), "", bearer(carolTok)); strings.Contains(body, `data-user-id=`) {
		t.Fatalf("an invisible member is listed: %s", body)
	}

	t.Run("EmbedToken", func(t *testing.T) {
		embed, err := ts.DB.CreateToken(ctx, alice.ID, store.TokenEmbed, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := ts.mustRoomStream(t, "", "?room=product-7&embed_token="+embed)
		ts.MustDialQuery(t, "?token="+carolTok+"&room=product-7")
		if ev := nextNamed(t, s, "room-delta"); !strings.Contains(ev.data, "carol") {
			t.Fatalf("embed room delta: %s", ev.data)
		}
	})

	t.Run("ErrBadRoom", func(t *testing.T) {
		for _, path := range []string{"", "/list", "/stream"} {
			for _, q := range []string{"?room=", "?room=a%0Ab", "?room=x&scope=friends"} {
				if st, body := do(t, nil, "GET", ts.URL+"/widgets/online-users"+path+q, "", bearer(aliceTok)); st != 400 || !strings.Contains(body, "room") {
					t.Fatalf("%s%s: %d %s, want 400", path, q, st, body)
				}
			}
		}
	})
}

// TestProfileViewers: a profile page shows who else is viewing it now
// (the members of the room named by its path), rendered on the server,
// with the room widget's stream to keep it live.
func TestProfileViewers(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	_, bobTok := ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	carol := signedIn(t, ts, "carol")
	ts.MustDialQuery(t, "?token="+bobTok+"&room=/users/alice")
	ts.MustDialQuery(t, "?token="+carolTok+"&room=/users/alice")

	st, body := do(t, carol, "GET", ts.URL+"/users/alice", "", nil)
	if st != 200 {
		t.Fatalf("profile: %d", st)
	}
	v := mustDoc(t, body).Find(`[data-testid="profile-viewers"]`)
	if v.Length() != 1 || v.Find(`[data-username="bob"]`).Length() != 1 || v.Find(`[data-username="carol"]`).Length() != 0 {
		t.Fatalf("viewers: %s", body)
	}
	if !strings.Contains(body, "Viewing this profile now") || !strings.Contains(body, `sse-connect="/widgets/online-users/stream?scope=rooms"`) ||
		!strings.Contains(body, "/widgets/online-users/list?room="+url.QueryEscape("/users/alice")) {
		t.Fatalf("viewers widget is not live: %s", body)
	}
}

// TestRoomsStream: a viewer's rooms stream (?scope=rooms, what profile
// viewers use) carries the changes of every room the viewer is in, and
// only those: one stream for all of a browser's room widgets.
func TestRoomsStream(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, aliceTok := ts.MustCreateUser(t, "alice")
	_, bobTok := ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	embed, err := ts.DB.CreateToken(ctx, mustUser(t, ts, "alice").ID, store.TokenEmbed, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := do(t, nil, "GET", ts.URL+"/widgets/online-users/stream?scope=rooms&embed_token="+embed, "", nil); st != 400 {
		t.Fatalf("rooms stream with an embed token: %d, want 400", st)
	}

	aliceRooms := ts.mustRoomStream(t, aliceTok, "?scope=rooms")
	carolRooms := ts.mustRoomStream(t, carolTok, "?scope=rooms")
	aliceFriends := ts.mustRoomStream(t, aliceTok, "?scope=friends")
	eventually(t, "streams registered", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 3 })
	ts.MustDialQuery(t, "?events=0&token="+aliceTok+"&room=/users/dave")
	ts.MustDialQuery(t, "?events=0&token="+aliceTok+"&room=/users/erin") // another tab
	ts.MustDialQuery(t, "?events=0&token="+carolTok+"&room=/users/frank")

	eventually(t, "the tiles of alice and carol in their own rooms sent", func() bool { return ts.Handler.RoomFeed().Stats().Renders == 3 })
	drain(aliceRooms)
	drain(carolRooms)
	bob := ts.MustDialQuery(t, "?events=0&token="+bobTok+"&room=/users/dave")
	if ev := nextNamed(t, aliceRooms, "room-delta"); !strings.Contains(ev.data, "bob") || !strings.Contains(ev.data, "afterbegin") {
		t.Fatalf("alice's rooms delta: %s", ev.data)
	}
	bob.send(`{"type":"room","room":"/users/erin"}`)
	bob.nextOfType("room.joined")
	if ev := nextNamed(t, aliceRooms, "room-delta"); !strings.Contains(ev.data, "bob") || !strings.Contains(ev.data, "afterbegin") {
		t.Fatalf("alice's second room: %s", ev.data)
	}
	ts.Clock.Advance(testGrace)
	if ev := nextNamed(t, aliceRooms, "room-delta"); strings.Contains(ev.data, "afterbegin") {
		t.Fatalf("bob's leaving the first room: %s", ev.data)
	}
	for {
		select {
		case ev := <-aliceFriends.events:
			if ev.name == "room-delta" {
				t.Fatalf("a friends stream got room bytes: %s", ev.data)
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	expectQuiet(t, carolRooms, 200*time.Millisecond)

	// A room that is no profile page (no room widget on the rooms stream)
	// does not reach it, though alice is in it too.
	ts.MustDialQuery(t, "?events=0&token="+aliceTok+"&room=/")
	ts.MustDialQuery(t, "?events=0&token="+bobTok+"&room=/")
	expectQuiet(t, aliceRooms, 300*time.Millisecond)
}

// TestEmbedFrame_Room: the iframe takes ?room= through to its widget and
// keeps the viewer in that room (body data-presence-room); without it the
// framed page names no room (not its own path).
func TestEmbedFrame_Room(t *testing.T) {
	ts := hostServer(t, handlers.Config{AllowedOrigins: []string{embedHost}})
	tok := simpleJWT(t, t0, 42, map[string]any{"username": "ada"})
	r := get(t, ts.URL+"/embed/online-users?room=doc-42&token="+url.QueryEscape(tok), nil)
	doc := mustDoc(t, r.body)
	w := doc.Find(`[data-presence-widget]`)
	if r.code != 200 || w.AttrOr("data-scope", "") != "room" || w.AttrOr("data-room", "") != "doc-42" ||
		!strings.Contains(w.AttrOr("sse-connect", ""), "room=doc-42") ||
		doc.Find(`[data-testid="embed-frame"]`).AttrOr("data-presence-room", "?") != "doc-42" {
		t.Fatalf("%d %s", r.code, r.body)
	}
	r = get(t, ts.URL+"/embed/online-users?token="+url.QueryEscape(tok), nil)
	if v, ok := mustDoc(t, r.body).Find(`[data-testid="embed-frame"]`).Attr("data-presence-room"); !ok || v != "" {
		t.Fatalf("frame without a room names %q (%v)", v, ok)
	}
	if r := get(t, ts.URL+"/embed/online-users?room=%0A&token="+url.QueryEscape(tok), nil); r.code != 400 {
		t.Fatalf("bad room: %d", r.code)
	}
	// embed.js passes data-room to the widget and to the socket.
	if r := get(t, ts.URL+"/embed.js", nil); !strings.Contains(r.body, `add("room", ds.room)`) || !strings.Contains(r.body, "ds.room);") {
		t.Fatal("embed.js does not pass data-room on")
	}
}
