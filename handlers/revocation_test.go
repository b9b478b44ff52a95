package handlers_test

import (
	"bufio"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
)

// rawStream is an event stream read only to learn when it ends.
type rawStream struct {
	lines chan string // every line, closed when the stream ends
}

// openStream opens the widget's event stream at path with headers h.
func (ts *testServer) openStream(tb testing.TB, path string, h http.Header) *rawStream {
	tb.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		tb.Fatalf("stream %s: %s", path, resp.Status)
	}
	s := &rawStream{lines: make(chan string, 1024)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	tb.Cleanup(func() { resp.Body.Close() })
	return s
}

// ended waits for the stream to end and says how long that took.
func (s *rawStream) ended(tb testing.TB) time.Duration {
	tb.Helper()
	start := time.Now()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-s.lines:
			if !ok {
				return time.Since(start)
			}
		case <-timeout:
			tb.Fatal("stream still open after 5s")
		}
	}
}

// open reports whether the stream is still open, after the server has had
// every chance to end it (the caller has waited on a barrier).
func (s *rawStream) open() bool {
	for {
		select {
		case _, ok := <-s.lines:
			if !ok {
				return false
			}
		default:
			return true
		}
	}
}

// cliStore is a second handle on the server's database, as `presence user
// revoke-token` opens it from another process (or another node).
func (ts *testServer) cliStore(tb testing.TB) *store.DB {
	tb.Helper()
	open := func() (*store.DB, error) { return store.Open(ts.Path) }
	if ts.DBURL != "" {
		open = func() (*store.DB, error) { return store.OpenPostgres(ctx, ts.DBURL) }
	}
	db, err := open()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// expectRevoked waits for the socket to close with 1008 and the reason
// that says why.
func (c *wsClient) expectRevoked() {
	c.tb.Helper()
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue
			}
			err := <-c.errc
			ce, isClose := err.(*websocket.CloseError)
			if !isClose || ce.Code != websocket.ClosePolicyViolation || ce.Text != "session ended: signed out or token revoked" {
				c.tb.Fatalf("socket ended with %v, want close 1008 \"session ended…\"", err)
			}
			return
		case <-time.After(5 * time.Second):
			c.tb.Fatal("socket still open after 5s")
		}
	}
}

// TestLogout_EndsConnections: signing out ends the session's WebSockets
// (1008) and widget streams in every tab, at once, and nobody else's.
func TestLogout_EndsConnections(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")

	// Alice signs in through the form; her browser opens two tabs, each
	// with its keep-alive socket, and one widget stream.
	b := signedIn(t, ts, "alice")
	u, _ := url.Parse(ts.URL)
	cookie := b.Jar.Cookies(u)[0]
	h := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}, "Origin": {ts.URL}}
	tab1 := ts.MustDialHeader(t, "?events=0", h)
	tab2 := ts.MustDialHeader(t, "", h)
	stream := ts.openStream(t, "/widgets/online-users/stream", h)
	// Bob, elsewhere, with a socket and a stream.
	bob := ts.MustDial(t, tokB)
	bobStream := ts.openStream(t, "/widgets/online-users/stream", bearer(tokB))

	// No clock moves: logout ends them by itself, not the poll.
	start := time.Now()
	if code, _ := do(t, b, "POST", ts.URL+"/logout", "", nil); code != http.StatusSeeOther {
		t.Fatalf("logout = %d", code)
	}
	tab1.expectRevoked()
	tab2.expectRevoked()
	stream.ended(t)
	t.Logf("logout to both sockets closed and the stream ended: %v", time.Since(start))

	bob.ping()
	if !bobStream.open() {
		t.Fatal("bob's stream ended with alice's session")
	}
	// The copy of the cookie cannot open a new one.
	if _, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(""), h); err == nil || resp.StatusCode != 401 {
		t.Fatalf("old cookie: %v %v, want 401", err, respStatus(resp))
	}

	t.Run("LoginRotatesSession", func(t *testing.T) {
		// Signing in again replaces the session: the old one's sockets end
		// (the page reconnects with the new cookie).
		b := signedIn(t, ts, "alice")
		old := b.Jar.Cookies(u)[0]
		sock := ts.MustDialHeader(t, "", http.Header{"Cookie": {old.Name + "=" + old.Value}, "Origin": {ts.URL}})
		if code, _ := do(t, b, "POST", ts.URL+"/login", "username=alice&password=password1", formHeader); code != http.StatusSeeOther {
			t.Fatalf("login = %d", code)
		}
		sock.expectRevoked()
	})
}

// TestRevokeToken_EndsConnections: a token revoked by another process
// writing the same database (the CLI) closes its sockets and streams at
// the server's next poll; the poll runs every 500 ms, on the injected
// clock here.
func TestRevokeToken_EndsConnections(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	cli := ts.cliStore(t)

	t.Run("APIToken", func(t *testing.T) {
		sock := ts.MustDial(t, tokA)
		sock2 := ts.MustDialQuery(t, "?events=0&token="+url.QueryEscape(tokA))
		stream := ts.openStream(t, "/widgets/online-users/stream", bearer(tokA))
		other := ts.MustDial(t, tokB)
		if err := cli.RevokeToken(ctx, tokA); err != nil {
			t.Fatal(err)
		}
		sock.ping() // nothing yet: the server has not polled
		ts.Clock.Advance(realtime.DefaultRevocationPoll)
		sock.expectRevoked()
		sock2.expectRevoked()
		stream.ended(t)
		other.ping()
	})

	t.Run("EmbedToken", func(t *testing.T) {
		// Every visitor of the site embedding the widget uses the same
		// token: revoking it ends all their streams.
		embed, err := ts.DB.CreateToken(ctx, alice.ID, store.TokenEmbed, 0)
		if err != nil {
			t.Fatal(err)
		}
		path := "/widgets/online-users/stream?embed_token=" + url.QueryEscape(embed)
		visitors := []*rawStream{ts.openStream(t, path, nil), ts.openStream(t, path, nil)}
		member := ts.openStream(t, "/widgets/online-users/stream", bearer(tokB))
		if err := cli.RevokeToken(ctx, embed); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Advance(realtime.DefaultRevocationPoll)
		for _, v := range visitors {
			v.ended(t)
		}
		eventually(t, "only the member's stream left", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 1 })
		if !member.open() {
			t.Fatal("a signed-in member's stream ended with the embed token")
		}
		code, _ := do(t, nil, "GET", ts.URL+path, "", nil)
		if code != 401 {
			t.Fatalf("revoked embed token: stream answered %d, want 401", code)
		}
	})
}
