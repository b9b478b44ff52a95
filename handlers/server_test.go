package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/store/storetest"
)

var ctx = context.Background()

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testServer is the real HTTP server on 127.0.0.1:0 with a real database,
// and an engine and batcher on a fake clock.
type testServer struct {
	*httptest.Server
	DB      *store.DB
	Clock   *presence.FakeClock
	Engine  *presence.Engine
	Batcher *presence.Batcher
	Handler *handlers.Server
	Path    string // the database file ("" with PRESENCE_TEST_STORE=postgres)
	DBURL   string // the PostgreSQL database with PRESENCE_TEST_STORE=postgres
}

const (
	testGrace    = 5 * time.Second
	testDeadline = 30 * time.Second
)

func MustStartServer(tb testing.TB, cfg handlers.Config) *testServer {
	tb.Helper()
	return MustStartServerWithLog(tb, cfg, nil)
}

// MustStartServerWithLog is MustStartServer with the handlers' logger.
func MustStartServerWithLog(tb testing.TB, cfg handlers.Config, log *slog.Logger) *testServer {
	tb.Helper()
	return mustStartServerWith(tb, cfg, log, nil)
}

// mustStartServerWith is MustStartServerWithLog with a hook that may
// change the engine's config and the handlers' deps before they are used.
func mustStartServerWith(tb testing.TB, cfg handlers.Config, log *slog.Logger, tweak func(*presence.Config, *handlers.Deps)) *testServer {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "presence.db")
	var db *store.DB
	var err error
	var dbURL string
	if os.Getenv("PRESENCE_TEST_STORE") == "postgres" {
		// The handler tests on PostgreSQL, on demand (a fresh schema each).
		path, dbURL = "", storetest.URL(tb)
		db, err = store.OpenPostgres(ctx, dbURL)
	} else {
		db, err = store.Open(path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	db.BcryptCost = bcrypt.MinCost
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	clock := presence.NewFakeClock(t0)
	b := presence.NewBatcher(db, clock, time.Second, nil)
	ecfg := presence.Config{Clock: clock, Recorder: b, Grace: testGrace, Deadline: testDeadline, PingAfter: testDeadline / 3, MaxConnsPerUser: 4}
	deps := handlers.Deps{
		Store: db, Batcher: b,
		Sessions: sessions.NewCookieStore(make([]byte, 64), make([]byte, 32)),
		Log:      log,
		Clock:    clock,
		Config:   cfg,
	}
	if tweak != nil {
		tweak(&ecfg, &deps)
	}
	e := presence.New(ecfg)
	deps.Engine = e
	h, err := handlers.New(deps)
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testServer{Server: httptest.NewServer(h), DB: db, Clock: clock, Engine: e, Batcher: b, Handler: h, Path: path, DBURL: dbURL}
	tb.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		h.Shutdown(sctx)
		ts.Close()
		e.Close()
		b.Close(ctx)
		db.Close()
	})
	return ts
}

// MustCreateUser creates a user and returns it with an API token.
func (ts *testServer) MustCreateUser(tb testing.TB, name string) (store.User, string) {
	tb.Helper()
	u, err := ts.DB.CreateUser(ctx, name, "password1")
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := ts.DB.CreateToken(ctx, u.ID, store.TokenAPI, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return u, tok
}

func (ts *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws/user-status/" + query
}

// wsClient is a test WebSocket client speaking the JSON protocol.
type wsClient struct {
	tb   testing.TB
	conn *websocket.Conn
	msgs chan map[string]any
	errc chan error
}

// MustDial opens the presence socket with ?token= and checks the ack.
func (ts *testServer) MustDial(tb testing.TB, token string) *wsClient {
	tb.Helper()
	return ts.MustDialQuery(tb, "?token="+url.QueryEscape(token))
}

// MustDialQuery opens the presence socket with a raw query string.
func (ts *testServer) MustDialQuery(tb testing.TB, query string) *wsClient {
	tb.Helper()
	return ts.MustDialHeader(tb, query, nil)
}

// MustDialHeader opens the presence socket with a raw query string and
// request headers (a session cookie and its Origin, say).
func (ts *testServer) MustDialHeader(tb testing.TB, query string, h http.Header) *wsClient {
	tb.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(query), h)
	if err != nil {
		tb.Fatalf("dial: %v (%v)", err, respStatus(resp))
	}
	c := &wsClient{tb: tb, conn: conn, msgs: make(chan map[string]any, 256), errc: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.errc <- err
				close(c.msgs)
				return
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				c.errc <- err
				close(c.msgs)
				return
			}
			c.msgs <- m
		}
	}()
	tb.Cleanup(func() { conn.Close() })
	if m := c.next(); m["type"] != "connection.ack" {
		tb.Fatalf("first message = %v, want connection.ack", m)
	}
	return c
}

func respStatus(r *http.Response) any {
	if r == nil {
		return "no response"
	}
	return r.Status
}

// next returns the next message, failing after a few seconds.
func (c *wsClient) next() map[string]any {
	c.tb.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.tb.Fatalf("connection closed: %v", <-c.errc)
		}
		return m
	case <-time.After(5 * time.Second):
		c.tb.Fatal("no message within 5s")
	}
	return nil
}

// nextOfType skips messages until one of type typ arrives.
func (c *wsClient) nextOfType(typ string) map[string]any {
	c.tb.Helper()
	for {
		if m := c.next(); m["type"] == typ {
			return m
		}
	}
}

// send writes a text message.
func (c *wsClient) send(s string) {
	c.tb.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.tb.Fatal(err)
	}
}

// ping does one application ping round trip. Since the server answers in
// order, it is also a barrier: every event published before the ping was
// handled has been delivered once the pong arrives.
func (c *wsClient) ping() {
	c.tb.Helper()
	c.send(`{"type":"ping"}`)
	c.nextOfType("pong")
}

// closedWith waits for the server to close the socket and returns the code.
func (c *wsClient) closedWith() int {
	c.tb.Helper()
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue
			}
			err := <-c.errc
			if ce, isClose := err.(*websocket.CloseError); isClose {
				return ce.Code
			}
			return -1
		case <-time.After(5 * time.Second):
			c.tb.Fatal("socket not closed within 5s")
		}
	}
}

// expectStatus waits for a user.status.changed message about user.
func (c *wsClient) expectStatus(user store.User, online bool) map[string]any {
	c.tb.Helper()
	for {
		m := c.nextOfType("user.status.changed")
		if m["user_id"] != strconv.FormatInt(user.ID, 10) { // a string, as the original sent it
			continue
		}
		if m["is_online"] != online || m["username"] != user.Username {
			c.tb.Fatalf("status = %v, want %s online=%v", m, user.Username, online)
		}
		return m
	}
}

// expectNoStatus checks that no status message is waiting, after a ping
// round trip has flushed everything already published.
func (c *wsClient) expectNoStatus() {
	c.tb.Helper()
	c.send(`{"type":"ping"}`)
	for {
		m := c.next()
		if m["type"] == "pong" {
			return
		}
		if m["type"] == "user.status.changed" {
			c.tb.Fatalf("unexpected status %v", m)
		}
	}
}

// eventually polls cond until it holds, failing after 5 s.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do sends a request and returns status and body.
func do(tb testing.TB, client *http.Client, method, url, body string, header http.Header) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
func browser(tb testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
