package handlers_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

func TestWSUserStatus_Auth(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{AllowedOrigins: []string{"https://partner.example"}})
	alice, tok := ts.MustCreateUser(t, "alice")

	refused := func(t *testing.T, url string, h http.Header, want int) {
		t.Helper()
		conn, resp, err := websocket.DefaultDialer.Dial(url, h)
		if err == nil {
			conn.Close()
			t.Fatalf("upgrade accepted, want HTTP %d", want)
		}
		if resp == nil || resp.StatusCode != want {
			t.Fatalf("got %v, want HTTP %d", respStatus(resp), want)
		}
	}

	t.Run("QueryToken", func(t *testing.T) {
		c := ts.MustDial(t, tok)
		c.ping()
	})
	t.Run("BearerHeader", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial(ts.wsURL(""), bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	})
	t.Run("ErrNoToken", func(t *testing.T) { refused(t, ts.wsURL(""), nil, 401) })
	t.Run("ErrInvalidToken", func(t *testing.T) { refused(t, ts.wsURL("?token=prs_bogus"), nil, 401) })
	t.Run("ErrInvalidBearer", func(t *testing.T) { refused(t, ts.wsURL(""), bearer("prs_bogus"), 401) })
	t.Run("ErrRevokedToken", func(t *testing.T) {
		revoked, _ := ts.DB.CreateToken(ctx, alice.ID, store.TokenAPI, time.Hour)
		ts.DB.RevokeToken(ctx, revoked)
		refused(t, ts.wsURL("?token="+revoked), nil, 401)
	})
	t.Run("ErrExpiredToken", func(t *testing.T) {
		expired, _ := ts.DB.CreateToken(ctx, alice.ID, store.TokenAPI, time.Millisecond)
		time.Sleep(5 * time.Millisecond) // the store's clock is the real one
		refused(t, ts.wsURL("?token="+expired), nil, 401)
	})
	t.Run("ErrSessionTokenInQuery", func(t *testing.T) {
		sess, _ := ts.DB.CreateToken(ctx, alice.ID, store.TokenSession, time.Hour)
		refused(t, ts.wsURL("?token="+sess), nil, 401)
	})

	// A browser signed in as alice: the session cookie alone authenticates.
	jar := browser(t)
	if code, _ := do(t, jar, "POST", ts.URL+"/login", "username=alice&password=password1",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}); code != http.StatusSeeOther {
		t.Fatalf("login = %d", code)
	}
	u, _ := url.Parse(ts.URL)
	cookie := jar.Jar.Cookies(u)[0]
	withCookie := func(origin string) http.Header {
		h := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}

	t.Run("SessionCookieSameOrigin", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial(ts.wsURL(""), withCookie(ts.URL))
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	})
	t.Run("AllowListedOrigin", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial(ts.wsURL(""), withCookie("https://partner.example"))
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	})
	t.Run("ErrCrossSiteHijack", func(t *testing.T) {
		refused(t, ts.wsURL(""), withCookie("https://evil.example"), 403)
	})
	t.Run("ErrForeignOriginWithToken", func(t *testing.T) {
		h := http.Header{"Origin": {"https://evil.example"}}
		refused(t, ts.wsURL("?token="+tok), h, 403)
	})
}

func TestWSUserStatus_Protocol(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	bystander := ts.MustDial(t, tokB)

	t.Run("PingPong", func(t *testing.T) {
		c := ts.MustDial(t, tokA)
		c.ping()
	})
	t.Run("InvalidJSON", func(t *testing.T) {
		c := ts.MustDial(t, tokA)
		c.send(`{"type":`)
		if m := c.nextOfType("error"); !strings.Contains(m["detail"].(string), "invalid JSON") {
			t.Fatalf("error = %v", m)
		}
		c.ping() // still open
	})
	t.Run("UnknownType", func(t *testing.T) {
		c := ts.MustDial(t, tokA)
		c.send(`{"type":"subscribe"}`)
		if m := c.nextOfType("error"); m["detail"] != "unknown message type" {
			t.Fatalf("error = %v", m)
		}
		c.send(`[1,2,3]`)
		c.nextOfType("error")
		c.send(`{}`)
		c.nextOfType("error")
		c.ping()
	})
	t.Run("OversizedFrame", func(t *testing.T) {
		c := ts.MustDial(t, tokA)
		c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 1<<20)+`"}`))
		if code := c.closedWith(); code != websocket.CloseMessageTooBig {
			t.Fatalf("close code = %d, want 1009", code)
		}
	})
	t.Run("BinaryFrame", func(t *testing.T) {
		c := ts.MustDial(t, tokA)
		c.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`))
		if code := c.closedWith(); code != websocket.CloseUnsupportedData {
			t.Fatalf("close code = %d, want 1003", code)
		}
	})
	t.Run("InvalidUTF8", func(t *testing.T) {
		c := ts.MustDial(t, tokA)
		c.conn.WriteMessage(websocket.TextMessage, []byte("{\"type\":\"p\xffing\"}"))
		if code := c.closedWith(); code != websocket.CloseInvalidFramePayloadData {
			t.Fatalf("close code = %d, want 1007", code)
		}
	})
	t.Run("UnmaskedFrame", func(t *testing.T) {
		c := ts.MustDial(t, tokA)
		// Under the client library: a frame sent as a server would send it.
		if _, err := c.conn.NetConn().Write([]byte{0x81, 0x02, 'h', 'i'}); err != nil {
			t.Fatal(err)
		}
		if code := c.closedWith(); code != websocket.CloseProtocolError {
			t.Fatalf("close code = %d, want 1002", code)
		}
	})
	t.Run("ErrTooManyConnections", func(t *testing.T) {
		var cs []*wsClient
		for range 4 { // the test server's cap
			cs = append(cs, ts.MustDial(t, tokA))
		}
		conn, _, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tokA), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = conn.ReadMessage()
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("fifth socket: %v, want close 1008", err)
		}
		for _, c := range cs {
			c.ping() // the others keep working
			c.conn.Close()
		}
	})
	// Through all of that, another user's socket kept being served.
	bystander.ping()
}

// TestWSUserStatus_Presence covers user-level transitions as seen by
// another user's socket: tabs, grace, reconnects.
func TestWSUserStatus_Presence(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")
	bob, tokB := ts.MustCreateUser(t, "bob")
	watcher := ts.MustDial(t, tokA)
	watcher.expectStatus(alice, true) // its own arrival

	t.Run("TwoTabs", func(t *testing.T) {
		tab1 := ts.MustDial(t, tokB)
		m := watcher.expectStatus(bob, true)
		if m["last_seen"] == nil {
			t.Fatalf("online event without last_seen: %v", m)
		}
		tab2 := ts.MustDial(t, tokB)
		watcher.expectNoStatus() // a second tab is not news

		tab1.conn.Close()
		eventually(t, "tab 1 to unregister", func() bool { _, n := ts.Engine.Counts(); return n == 2 })
		ts.Clock.Advance(testDeadline / 2) // fake time: stay inside everyone's deadline
		watcher.expectNoStatus()           // one tab still open

		tab2.conn.Close()
		eventually(t, "tab 2 to unregister", func() bool { _, n := ts.Engine.Counts(); return n == 1 })
		ts.Clock.Advance(testGrace - time.Millisecond)
		watcher.expectNoStatus() // inside the grace period
		ts.Clock.Advance(time.Millisecond)
		m = watcher.expectStatus(bob, false)
		if m["last_seen"] == nil {
			t.Fatalf("offline event without last_seen: %v", m)
		}
	})

	t.Run("ReloadInsideGrace", func(t *testing.T) {
		tab := ts.MustDial(t, tokB)
		watcher.expectStatus(bob, true)
		tab.conn.Close()
		eventually(t, "tab to unregister", func() bool { _, n := ts.Engine.Counts(); return n == 1 })
		ts.Clock.Advance(2 * time.Second)
		tab = ts.MustDial(t, tokB) // the reload
		ts.Clock.Advance(testDeadline / 2)
		watcher.expectNoStatus()
		tab.ping()
	})
}

// TestWSUserStatus_DeadPeer: a client that completes the handshake and then
// goes silent (no close frame, no pongs, never reads) is dropped by the
// heartbeat deadline and its user goes offline after the grace period.
func TestWSUserStatus_DeadPeer(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tokA := ts.MustCreateUser(t, "alice")
	bob, tokB := ts.MustCreateUser(t, "bob")
	watcher := ts.MustDial(t, tokA)

	raw, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(raw, "GET /ws/user-status/?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", url.QueryEscape(tokB), ts.Listener.Addr(), base64.StdEncoding.EncodeToString(key))
	status, err := bufio.NewReader(raw).ReadString('\n')
	if err != nil || !strings.Contains(status, "101") {
		t.Fatalf("handshake: %q %v", status, err)
	}
	// From here on the raw peer never reads or writes again.
	watcher.expectStatus(bob, true)

	// Half the deadline passes; the watcher proves it is alive, bob does not.
	ts.Clock.Advance(testDeadline / 2)
	watcher.ping()
	ts.Clock.Advance(testDeadline/2 - time.Millisecond)
	watcher.expectNoStatus()
	if _, n := ts.Engine.Counts(); n != 2 {
		t.Fatalf("dead peer dropped before its deadline: %d conns", n)
	}
	// Past the deadline (plus one sweep interval) the dead socket is cut.
	ts.Clock.Advance(testDeadline/4 + time.Millisecond)
	eventually(t, "dead socket to be dropped", func() bool { _, n := ts.Engine.Counts(); return n == 1 })
	watcher.expectNoStatus() // grace period
	ts.Clock.Advance(testGrace)
	watcher.expectStatus(bob, false)
	watcher.ping() // the live socket survived all of it

	// The server really closed the TCP connection.
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := raw.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("server did not close the dead connection")
			}
			break
		}
	}
}

// TestWSUserStatus_BatchedWrites: a burst of 1,000 pings is written as one
// transaction at the next flush, not 1,000.
func TestWSUserStatus_BatchedWrites(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{WSMessageBurst: 1000})
	alice, tokA := ts.MustCreateUser(t, "alice")
	c := ts.MustDial(t, tokA)
	ts.Clock.Advance(time.Second) // flush the connect
	before := ts.DB.Stats().WriteTxs

	for range 1000 {
		c.send(`{"type":"ping"}`)
	}
	for range 1000 {
		c.nextOfType("pong")
	}
	if n := ts.DB.Stats().WriteTxs - before; n != 0 {
		t.Fatalf("%d transactions before the flush interval, want 0", n)
	}
	ts.Clock.Advance(time.Second)
	if n := ts.DB.Stats().WriteTxs - before; n != 1 {
		t.Fatalf("1000 pings cost %d transactions, want 1", n)
	}
	u, _ := ts.DB.UserByID(ctx, alice.ID)
	if !u.IsOnline || !u.LastActivity.Equal(t0.Add(time.Second)) {
		t.Fatalf("persisted %+v, want online with last_activity %v", u, t0.Add(time.Second))
	}
}

// TestWSUserStatus_Shutdown: every socket gets a 1001 close frame.
func TestWSUserStatus_Shutdown(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tokA := ts.MustCreateUser(t, "alice")
	c1, c2 := ts.MustDial(t, tokA), ts.MustDial(t, tokA)
	done := make(chan error, 1)
	go func() { done <- ts.Handler.Shutdown(ctx) }()
	for _, c := range []*wsClient{c1, c2} {
		if code := c.closedWith(); code != websocket.CloseGoingAway {
			t.Fatalf("close code = %d, want 1001", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tokA), nil); err == nil || resp.StatusCode != 503 {
		t.Fatalf("upgrade after shutdown: %v %v, want 503", err, respStatus(resp))
	}
}

// TestWSUserStatus_EventsOptOut: ?events=0 keeps the user online but sends
// no status events; the default (the original protocol) sends them.
func TestWSUserStatus_EventsOptOut(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tokA := ts.MustCreateUser(t, "alice")
	bob, tokB := ts.MustCreateUser(t, "bob")
	quiet := ts.MustDialQuery(t, "?events=0&token="+url.QueryEscape(tokA))
	loud := ts.MustDial(t, tokA)
	ts.MustDial(t, tokB)
	loud.expectStatus(bob, true)
	quiet.expectNoStatus()
	if !ts.Engine.IsOnline(bob.ID) {
		t.Fatal("bob not online")
	}
}

// TestWSUserStatus_RateLimit: messages over the per-socket limit are
// answered with an error and not processed; a client that keeps flooding
// is closed with 1008; other sockets are untouched. The bucket refills at
// one message a minute, so nothing depends on timing.
func TestWSUserStatus_RateLimit(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{WSMessageRate: 1.0 / 60, WSMessageBurst: 5})
	_, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	flooder, other := ts.MustDial(t, tokA), ts.MustDial(t, tokB)
	for range 5 {
		flooder.ping() // within the burst
	}
	flooder.send(`{"type":"ping"}`)
	if m := flooder.nextOfType("error"); m["detail"] != "rate limit exceeded" {
		t.Fatalf("over the limit: %v", m)
	}
	for range 10 {
		flooder.send(`{"type":"ping"}`)
	}
	if code := flooder.closedWith(); code != websocket.ClosePolicyViolation {
		t.Fatalf("flooder closed with %d, want 1008", code)
	}
	other.ping() // a different socket has its own bucket
	if got := metricValue(t, ts, "presence_ws_messages_rate_limited_total"); got < 11 {
		t.Fatalf("rate-limited counter = %v", got)
	}
}

// TestConnectionCap: past --max-conns new WebSockets and streams get 503
// with Retry-After, those held keep working, and a freed slot is reused.
func TestConnectionCap(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{MaxConns: 2})
	_, tok := ts.MustCreateUser(t, "alice")
	ws := ts.MustDial(t, tok)
	ts.MustStream(t, tok)
	_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tok), nil)
	if err == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection: %v %v, want 503 with Retry-After", err, respStatus(resp))
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/widgets/online-users/stream", "", bearer(tok)); code != 503 {
		t.Fatalf("third (stream): %d, want 503", code)
	}
	ws.ping() // held connections keep working
	ws.conn.Close()
	eventually(t, "the slot to free", func() bool { return metricValue(t, ts, "presence_long_lived_connections") == 1 })
	ts.MustDial(t, tok).ping() // recovered
	if got := metricValue(t, ts, "presence_connections_refused_at_capacity_total"); got != 2 {
		t.Fatalf("refused counter = %v, want 2", got)
	}
}

// TestConnectionLeak: many connect/disconnect cycles leave goroutines and
// the heap where they were.
func TestConnectionLeak(t *testing.T) {
	cycles := 10_000
	if testing.Short() {
		cycles = 1_000
	}
	ts := MustStartServer(t, handlers.Config{WSMessageRate: -1})
	_, tok := ts.MustCreateUser(t, "alice")
	settle := func() (int, uint64) {
		var g int
		var m runtime.MemStats
		for range 50 { // goroutines of closed sockets finish asynchronously
			runtime.GC()
			g = runtime.NumGoroutine()
			if _, n := ts.Engine.Counts(); n == 0 && ts.Handler.WebSockets() == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		runtime.ReadMemStats(&m)
		return g, m.HeapInuse
	}
	// Warm up pools and caches, then take the baseline.
	for range 50 {
		c, _, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tok), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.ReadMessage()
		c.Close()
	}
	g0, heap0 := settle()
	for i := range cycles {
		c, _, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tok), nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, _, err := c.ReadMessage(); err != nil { // the ack
			t.Fatalf("cycle %d: %v", i, err)
		}
		c.Close()
		// The server sees the close asynchronously; the next dial must
		// not race it to alice's cap of 4 connections.
		for deadline := time.Now().Add(5 * time.Second); ts.Handler.WebSockets() != 0; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: the server still holds the closed socket after 5 s", i)
			}
		}
	}
	ts.Clock.Advance(testGrace) // alice's last grace period ends
	g1, heap1 := settle()
	t.Logf("%d cycles: goroutines %d → %d, heap in use %d → %d KiB", cycles, g0, g1, heap0>>10, heap1>>10)
	if g1 > g0+5 {
		t.Fatalf("goroutines grew from %d to %d over %d cycles", g0, g1, cycles)
	}
	if heap1 > heap0+4<<20 {
		t.Fatalf("heap in use grew from %d to %d KiB", heap0>>10, heap1>>10)
	}
}

// TestTokensNotLogged: with every log level on, neither a valid nor an
// invalid token — in ?token=, a Bearer header or a form — reaches the log.
func TestTokensNotLogged(t *testing.T) {
	var logs bytes.Buffer
	ts := MustStartServerWithLog(t, handlers.Config{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	_, tok := ts.MustCreateUser(t, "alice")
	bad := "prs_" + strings.Repeat("x", 43)
	ts.MustDial(t, tok).ping()
	websocket.DefaultDialer.Dial(ts.wsURL("?token="+bad), nil)
	do(t, nil, "GET", ts.URL+"/api/users/online/?token="+tok, "", bearer(bad))
	do(t, nil, "GET", ts.URL+"/widgets/online-users?embed_token="+bad, "", nil)
	do(t, nil, "GET", ts.URL+"/widgets/online-users/list?token="+bad, "", nil)
	do(t, nil, "GET", ts.URL+"/embed/online-users?token="+bad, "", nil)
	do(t, nil, "POST", ts.URL+"/api/auth/token/", `{"username":"alice","password":"`+bad+`"}`, jsonHeader)
	ts.DB.Close() // make requests fail, so errors are logged
	do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(tok))
	do(t, nil, "GET", ts.URL+"/widgets/online-users?embed_token="+bad, "", nil)
	do(t, nil, "GET", ts.URL+"/widgets/online-users?token="+tok, "", nil)
	do(t, nil, "GET", ts.URL+"/embed/online-users?token="+tok, "", nil)
	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the test proves nothing")
	}
	for _, secret := range []string{tok, bad, tok[4:20], bad[4:20]} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a token reached the log:\n%s", logs.String())
		}
	}
}

// TestWSUserStatus_SlowReader: a socket that wants events but stops
// reading is closed once its buffers are full and a write has waited the
// write deadline; a reading socket receives every event, in order, and
// keeps working.
func TestWSUserStatus_SlowReader(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{WSWriteWait: 300 * time.Millisecond})
	_, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	// The slow peer: a tiny receive window, and it never reads after the ack.
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(2048)
		}
		return c, err
	}}
	slow, _, err := d.Dial(ts.wsURL("?token="+url.QueryEscape(tokA)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	healthy, _, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+url.QueryEscape(tokB)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close()
	got := make(chan string, 1<<16)
	ponged := make(chan struct{})
	var pongOnce sync.Once
	go func() { // the healthy peer reads everything, as a browser does
		for {
			_, msg, err := healthy.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			var m map[string]any
			json.Unmarshal(msg, &m)
			if m["type"] == "pong" {
				pongOnce.Do(func() { close(ponged) })
			}
			if name, _ := m["username"].(string); m["type"] == "user.status.changed" && strings.HasPrefix(name, "u0") {
				got <- name
			}
		}
	}()
	healthy.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
	select { // its pong: the hub has it registered for events
	case <-ponged:
	case <-time.After(5 * time.Second):
		t.Fatal("no pong on the healthy socket")
	}
	cut0 := metricValue(t, ts, "presence_websockets_slow_cut_total")

	// Status events straight from the engine, until the slow socket is cut.
	n := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); n++ {
		if n%200 == 0 && metricValue(t, ts, "presence_websockets_slow_cut_total") > cut0 {
			break
		}
		if _, err := ts.Engine.Connect(presence.User{ID: int64(1000 + n), Username: fmt.Sprintf("u%05d", n)}, nil); err != nil {
			t.Fatal(err)
		}
		if n%50 == 0 {
			time.Sleep(time.Millisecond) // a busy site, not one instant
		}
	}
	if metricValue(t, ts, "presence_websockets_slow_cut_total") == cut0 {
		t.Fatalf("slow socket not cut off after %d events", n)
	}
	t.Logf("slow socket cut within %d status events", n)
	for i := range n {
		select {
		case name, ok := <-got:
			if !ok {
				t.Fatalf("healthy socket closed after %d events", i)
			}
			if want := fmt.Sprintf("u%05d", i); name != want {
				t.Fatalf("event %d is about %s, want %s", i, name, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("healthy socket stuck at event %d", i)
		}
	}
	healthy.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
}
