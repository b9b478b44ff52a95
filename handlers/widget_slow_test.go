package handlers_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// TestWidgetStream_BadViewer is issue 9 §2 from the outside: 30 people
// come and go (each change pushed, ~20 pushes a second), one viewer's
// stream is bad, and a healthy viewer must keep seeing newcomers promptly.
// The bad viewer either reads 8 KiB every 100 ms — slower than full-list
// pushes would come, never stopping — or stops reading. Every newcomer
// must show within two seconds (typically 10-100 ms).
//
// On the r3labs broker the stream loop waited on the bad viewer: a stopped
// one held everyone for up to the 2 s write deadline, a slow one for ever
// longer once its 64-event channel and socket buffers were full. With the
// ~13 pushes a second this machine's feed manages under test, that takes
// longer than this test runs, so it passes on that broker too; the tests
// that fail there are realtime's TestBroker_SlowReader and
// TestBroker_StoppedReader, which push faster.
func TestWidgetStream_BadViewer(t *testing.T) {
	for _, stopped := range []bool{false, true} {
		name := "SlowButReading"
		if stopped {
			name = "Stopped"
		}
		t.Run(name, func(t *testing.T) { badViewer(t, stopped) })
	}
}

// startNoGraceServer is MustStartServer with what the issue measured:
// no grace (each change is pushed at once) and no heartbeat deadline, on
// the system clock.
func startNoGraceServer(tb testing.TB) *testServer {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "presence.db"))
	if err != nil {
		tb.Fatal(err)
	}
	db.BcryptCost = bcrypt.MinCost
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	e := presence.New(presence.Config{Grace: -1, Deadline: -1})
	h, err := handlers.New(handlers.Deps{Store: db, Engine: e,
		Sessions: sessions.NewCookieStore(make([]byte, 64), make([]byte, 32))})
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testServer{Server: httptest.NewServer(h), DB: db, Engine: e, Handler: h}
	tb.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		h.Shutdown(sctx)
		ts.Close()
		e.Close()
		db.Close()
	})
	return ts
}

// quietPeer is the transport of the churning connections, which the
// engine never needs to ping or kick here (no heartbeat deadline).
type quietPeer struct{}

func (quietPeer) Ping() {}
func (quietPeer) Kick() {}

func badViewer(t *testing.T, stopped bool) {
	ts := startNoGraceServer(t)
	var users []presence.User
	for i := range 30 {
		u, _ := ts.MustCreateUser(t, fmt.Sprintf("a%02d", i))
		users = append(users, presence.User{ID: u.ID, Username: u.Username})
	}
	_, viewerTok := ts.MustCreateUser(t, "viewer")
	_, badTok := ts.MustCreateUser(t, "bad-viewer")

	// The healthy viewer: every event is read at once and the first sight
	// of each name recorded.
	healthy := ts.MustStream(t, viewerTok)
	var mu sync.Mutex
	seen := map[string]time.Time{}
	healthyEnded := make(chan struct{})
	go func() {
		defer close(healthyEnded)
		for ev := range healthy.events {
			now := time.Now()
			mu.Lock()
			for _, part := range strings.Split(ev.data, `data-username="`)[1:] {
				name, _, _ := strings.Cut(part, `"`)
				if _, ok := seen[name]; !ok {
					seen[name] = now
				}
			}
			mu.Unlock()
		}
	}()

	// The bad viewer.
	bad, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	// A small receive buffer, as on a phone: the kernel does not soak up
	// megabytes on the bad viewer's behalf.
	bad.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(bad, "GET /widgets/online-users/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", badTok)
	if !stopped {
		go func() {
			buf := make([]byte, 8<<10)
			for {
				if _, err := bad.Read(buf); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	eventually(t, "both viewers", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 2 })

	// Churn: of 30 people, all but one or two online, one leaves or comes
	// back every 2 ms; the feed turns that into a push of the ~9 KB list
	// per 50 ms window, the ~20 a second of the issue.
	// They connect to the engine directly: thousands of WebSocket
	// handshakes would measure the race detector, not the stream.
	stop := make(chan struct{})
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		conns := make([]*presence.Conn, len(users))
		defer func() {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
		}()
		for i := range users {
			conns[i], _ = ts.Engine.Connect(users[i], quietPeer{})
		}
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			i := rand.IntN(len(users))
			for (conns[i] == nil) == (n%2 == 0) { // alternately one leaves, one comes back
				i = rand.IntN(len(users))
			}
			if conns[i] == nil {
				conns[i], _ = ts.Engine.Connect(users[i], quietPeer{})
			} else {
				conns[i].Close() // offline at once: no grace
				conns[i] = nil
			}
		}
	}()
	defer func() { close(stop); <-churned }()
	start := time.Now()
	dial := func(tok string) (*websocket.Conn, error) {
		c, _, err := websocket.DefaultDialer.Dial(ts.wsURL("?events=0&token="+url.QueryEscape(tok)), nil)
		if err == nil {
			go io.Copy(io.Discard, c.NetConn())
		}
		return c, err
	}

	// A newcomer (sorting first, so always shown) every 500 ms for 8 s.
	var worst time.Duration
	for i := range 16 {
		time.Sleep(500 * time.Millisecond)
		name := fmt.Sprintf("a-new%02d", i)
		_, tok := ts.MustCreateUser(t, name)
		c, err := dial(tok)
		if err != nil {
			t.Fatal(err)
		}
		joined := time.Now() // online now: the handshake is answered after Connect
		var took time.Duration
		for {
			mu.Lock()
			at, ok := seen[name]
			mu.Unlock()
			if ok {
				took = at.Sub(joined)
				break
			}
			if time.Since(joined) > 5*time.Second {
				select {
				case <-healthyEnded:
					t.Fatalf("newcomer %d: the healthy viewer's stream ended", i)
				default:
				}
				t.Fatalf("newcomer %d not shown to the healthy viewer after 5 s (%v events pushed, %v streams cut)", i,
					metricValue(t, ts, "presence_sse_events_published_total"), metricValue(t, ts, "presence_sse_slow_clients_cut_total"))
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Close()
		worst = max(worst, took)
	}
	pushed := metricValue(t, ts, "presence_sse_events_published_total")
	t.Logf("newcomers shown to the healthy viewer within %v at worst; %.0f pushes/s", worst, pushed/time.Since(start).Seconds())
	if worst > 2*time.Second {
		t.Fatalf("a newcomer took %v to show: the bad viewer delays the healthy one", worst)
	}
}

// TestWidgetStream_OwnerCap: one user's token, or one address's embed
// token, opening streams in a loop is refused (429 with Retry-After) once
// it holds its share, while someone else still connects.
func TestWidgetStream_OwnerCap(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{MaxStreamsPerUser: 3, MaxConns: 100})
	alice, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	embed, err := ts.DB.CreateToken(ctx, alice.ID, store.TokenEmbed, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		open func() *http.Response
	}{
		{"User", func() *http.Response {
			req, _ := http.NewRequest("GET", ts.URL+"/widgets/online-users/stream", nil)
			req.Header.Set("Authorization", "Bearer "+tokA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}},
		{"EmbedToken", func() *http.Response {
			resp, err := http.Get(ts.URL + "/widgets/online-users/stream?embed_token=" + url.QueryEscape(embed))
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var refused *http.Response
			for i := range 50 { // a loop, as an abuser would
				resp := tc.open()
				t.Cleanup(func() { resp.Body.Close() })
				if resp.StatusCode != 200 {
					if i != 3 {
						t.Fatalf("stream %d: %s, want the 4th refused", i+1, resp.Status)
					}
					refused = resp
					break
				}
			}
			if refused == nil || refused.StatusCode != http.StatusTooManyRequests || refused.Header.Get("Retry-After") == "" {
				t.Fatalf("not refused with 429 + Retry-After: %v", refused)
			}
			body, _ := io.ReadAll(refused.Body)
			if !strings.Contains(string(body), "too many open widget streams") {
				t.Fatalf("refusal says %s", body)
			}
			ts.MustStream(t, tokB) // everyone else still connects
		})
	}
}
