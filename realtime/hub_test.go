package realtime

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/presence"
)

// smallBus is the real LocalBus with every subscriber's buffer capped, so
// a test can overflow the hub's subscription with a handful of events.
type smallBus struct {
	*presence.LocalBus
	buffer int
}

func (b smallBus) Subscribe(int) *presence.Subscription { return b.LocalBus.Subscribe(b.buffer) }

// hubServer is a real HTTP server whose only route hands every request to
// the hub as user ?id=, with ?events=0 honoured.
type hubServer struct {
	*httptest.Server
	hub  *Hub
	bus  smallBus
	ctxs sync.Map // ?id → the context its socket is accepted with
}

func startHub(t *testing.T, buffer int) *hubServer {
	t.Helper()
	bus := smallBus{presence.NewLocalBus(), buffer}
	e := presence.New(presence.Config{Clock: presence.NewFakeClock(time.Unix(0, 0)), Bus: bus, Grace: -1, Deadline: -1})
	h := NewHub(e, slog.New(slog.DiscardHandler), -1, 100, &ConnCap{})
	s := &hubServer{hub: h, bus: bus}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
		u := presence.User{ID: id, Username: "u" + r.URL.Query().Get("id")}
		ctx := context.Background()
		if c, ok := s.ctxs.Load(r.URL.Query().Get("id")); ok {
			ctx = c.(context.Context)
		}
		if err := h.Accept(ctx, w, r, u, r.URL.Query().Get("events") != "0"); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(sctx)
		s.Close()
		e.Close()
	})
	return s
}

// testSocket reads a hub socket in the background.
type testSocket struct {
	t     *testing.T
	conn  *websocket.Conn
	msgs  chan map[string]any
	ended chan error // the read error that ended the socket
}

func (s *hubServer) dial(t *testing.T, query string) *testSocket {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &testSocket{t: t, conn: conn, msgs: make(chan map[string]any, 1024), ended: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.ended <- err
				close(c.msgs)
				return
			}
			var m map[string]any
			json.Unmarshal(data, &m)
			c.msgs <- m
		}
	}()
	if m := c.next(); m["type"] != "connection.ack" {
		t.Fatalf("first message %v", m)
	}
	return c
}

func (c *testSocket) next() map[string]any {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("socket ended: %v", <-c.ended)
		}
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatal("no message within 5s")
	}
	return nil
}

// ping is a barrier: the pong comes after everything queued before it.
func (c *testSocket) ping() {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		c.t.Fatal(err)
	}
	for c.next()["type"] != "pong" {
	}
}

// statusOf waits for a user.status.changed about user id.
func (c *testSocket) statusOf(id int64) map[string]any {
	c.t.Helper()
	for {
		if m := c.next(); m["type"] == "user.status.changed" && m["user_id"] == strconv.FormatInt(id, 10) {
			return m
		}
	}
}

// closeError waits for the socket to end and returns its close frame.
func (c *testSocket) closeError() *websocket.CloseError {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue
			}
			err := <-c.ended
			ce, _ := err.(*websocket.CloseError)
			if ce == nil {
				c.t.Fatalf("socket ended without a close frame: %v", err)
			}
			return ce
		case <-timeout:
			c.t.Fatal("socket still open after 5s")
		}
	}
}

// TestHub_BusGap: when the hub falls behind the bus and its subscription is
// dropped, the events in the gap are lost. Every socket that wants events
// is told so (closed with 1013, to reconnect and resync); keep-alive
// sockets (?events=0), which miss nothing, are left alone; sockets opened
// after the gap get every event again.
func TestHub_BusGap(t *testing.T) {
	s := startHub(t, 2)
	events := s.dial(t, "id=1")
	events.statusOf(1)
	keepAlive := s.dial(t, "id=2&events=0")
	events.statusOf(2)

	// Hold the fan-out still (it takes the event log's lock for every event)
	// and publish more than it can hold: at most one event in its hands,
	// two in the buffer, the fourth overflows and the bus drops it.
	s.hub.log.mu.Lock()
	for i := range 5 {
		s.bus.Publish(presence.Event{UserID: int64(100 + i), Username: "x", Online: true})
	}
	dropped := s.bus.Len() == 0
	s.hub.log.mu.Unlock()
	if !dropped {
		t.Fatal("the bus did not drop the hub's subscription; the test did not make a gap")
	}

	ce := events.closeError()
	if ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "missed") {
		t.Fatalf("event socket closed with %d %q, want 1013 saying events were missed", ce.Code, ce.Text)
	}
	keepAlive.ping() // untouched
	if got := s.hub.Stats().Gaps; got != 1 {
		t.Fatalf("gaps = %d, want 1", got)
	}

	// The hub subscribed again: a socket opened now gets every event.
	fresh := s.dial(t, "id=3")
	fresh.statusOf(3)
	s.bus.Publish(presence.Event{UserID: 200, Username: "y", Online: true})
	fresh.statusOf(200)
	keepAlive.ping()
}

// TestHub_ContextEnds: when the context a socket was accepted with ends
// (its credentials were revoked), the socket is closed with 1008 — and
// the close frame arrives even while the client keeps sending, which the
// reader must not cut short by closing first.
func TestHub_ContextEnds(t *testing.T) {
	s := startHub(t, 16)
	ctx, revoke := context.WithCancel(context.Background())
	s.ctxs.Store("1", ctx)
	busy := s.dial(t, "id=1")
	quiet := s.dial(t, "id=1&events=0")
	other := s.dial(t, "id=2")
	go func() {
		for busy.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) == nil {
		}
	}()
	for busy.next()["type"] != "pong" { // the flood is under way
	}
	revoke()
	for _, c := range []*testSocket{busy, quiet} {
		if ce := c.closeError(); ce.Code != websocket.ClosePolicyViolation || ce.Text != reasonRevoked {
			t.Fatalf("closed with %d %q, want 1008 %q", ce.Code, ce.Text, reasonRevoked)
		}
	}
	other.ping()
	if got := s.hub.Stats().Revoked; got != 2 {
		t.Fatalf("revoked = %d, want 2", got)
	}

	// A context that has already ended: the socket is closed at once.
	s.ctxs.Store("3", ctx)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/?id=3", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage() // the ack may or may not come first
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("late socket ended with %v, want close 1008", err)
		}
		break
	}
}

// TestHub_LaggingSocketMerged: a socket that reads, but far slower than
// events come, is not cut off: while it lags, each user's events merge
// into the latest, and it ends up with every user's latest state, in
// far fewer messages than were published (docs/PROTOCOL.md, "Merged
// events").
func TestHub_LaggingSocketMerged(t *testing.T) {
	s := startHub(t, 1<<16)
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(32 << 10)
		}
		return c, err
	}}
	lag, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/?id=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lag.Close()
	if _, ack, err := lag.ReadMessage(); err != nil || !strings.Contains(string(ack), "connection.ack") {
		t.Fatalf("ack: %q %v", ack, err)
	}

	// 50 users change 400 times each while the socket reads nothing.
	const users, changes = 50, 400
	for i := range users * changes {
		u := int64(100 + i%users)
		last := i >= users*(changes-1)
		online := i/users%2 == 0
		if last {
			online = u%2 == 0
		}
		s.bus.Publish(presence.Event{UserID: u, Username: "x", Online: online})
	}
	for deadline := time.Now().Add(10 * time.Second); s.hub.log.head.Load() < users*changes; {
		if time.Now().After(deadline) {
			t.Fatal("the hub did not take every event")
		}
		time.Sleep(time.Millisecond)
	}

	// Now it reads: a ping is the barrier after everything sent so far.
	if err := lag.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	lag.SetReadDeadline(time.Now().Add(10 * time.Second))
	latest := map[string]bool{}
	n := 0
	for {
		_, data, err := lag.ReadMessage()
		if err != nil {
			t.Fatalf("lagging socket ended after %d messages: %v", n, err)
		}
		var m struct {
			Type     string `json:"type"`
			UserID   string `json:"user_id"`
			IsOnline bool   `json:"is_online"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("message %d: %v", n, err)
		}
		if m.Type == "pong" && len(latest) == users {
			break
		}
		if m.Type == "user.status.changed" && m.UserID != "1" { // not its own arrival
			n++
			latest[m.UserID] = m.IsOnline
		}
	}
	for u := int64(100); u < 100+users; u++ {
		if got, want := latest[strconv.FormatInt(u, 10)], u%2 == 0; got != want {
			t.Fatalf("user %d: last is_online %v, want %v", u, got, want)
		}
	}
	if n >= users*changes/2 {
		t.Fatalf("lagging socket got %d of %d events: nothing was merged", n, users*changes)
	}
	if st := s.hub.Stats(); st.Slow != 0 || st.Open != 1 {
		t.Fatalf("stats %+v: want no socket cut and one open", st)
	}
	t.Logf("%d events published, %d sent to the lagging socket", users*changes, n)
}

// TestHub_Settle: Settle returns once every event taken from the bus has
// been offered to the event sockets, at once when no socket wants events,
// and after max when the writer cannot pass.
func TestHub_Settle(t *testing.T) {
	settle := func(h *Hub, stop <-chan struct{}, max time.Duration) <-chan time.Duration {
		done := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			h.Settle(stop, max)
			done <- time.Since(start)
		}()
		return done
	}
	// inLog publishes one event and waits until the hub has framed it into
	// its log (the writer's pass may still be held).
	inLog := func(t *testing.T, s *hubServer) {
		t.Helper()
		head := s.hub.log.head.Load()
		s.bus.Publish(presence.Event{UserID: 9, Username: "u9", Online: true, Mode: presence.ModeOnline})
		waitFor(t, "the event in the log", 5*time.Second, func() bool { return s.hub.log.head.Load() > head })
	}
	// stillWaiting fails unless Settle is still waiting 100 ms on, while
	// the test holds the hub's mu (released either way).
	stillWaiting := func(t *testing.T, s *hubServer, done <-chan time.Duration, why string) {
		t.Helper()
		select {
		case <-done:
			s.hub.mu.Unlock()
			t.Fatal(why)
		case <-time.After(100 * time.Millisecond):
		}
		s.hub.mu.Unlock()
	}
	within := func(t *testing.T, done <-chan time.Duration, d time.Duration) time.Duration {
		t.Helper()
		select {
		case took := <-done:
			return took
		case <-time.After(d):
			t.Fatalf("Settle did not return within %v", d)
		}
		return 0
	}
	t.Run("NoEventSockets", func(t *testing.T) {
		s := startHub(t, 64)
		s.dial(t, "id=1&events=0")
		s.hub.mu.Lock() // no pass can run: Settle must not wait for one
		defer s.hub.mu.Unlock()
		s.bus.Publish(presence.Event{UserID: 9, Username: "u9", Online: true, Mode: presence.ModeOnline})
		within(t, settle(s.hub, nil, time.Hour), 5*time.Second)
	})
	t.Run("OK", func(t *testing.T) {
		s := startHub(t, 64)
		c := s.dial(t, "id=1")
		var cl *wsClient
		s.hub.mu.Lock()
		for x := range s.hub.clients {
			cl = x
		}
		// The writer copies the socket list under mu: holding it stops the
		// pass that carries the event below.
		inLog(t, s)
		done := settle(s.hub, nil, time.Hour)
		stillWaiting(t, s, done, "Settle returned while the event was not yet offered to the socket")
		within(t, done, 5*time.Second)
		if got, head := cl.cursor.Load(), s.hub.log.head.Load(); got < head {
			t.Fatalf("Settle returned with the socket at %d of the log's %d", got, head)
		}
		if st := c.statusOf(9); st["is_online"] != true {
			t.Fatalf("status %v", st)
		}
	})
	t.Run("Taken", func(t *testing.T) {
		// An event the bus has handed to the fan-out, which has not put it
		// in the log yet (its goroutine not yet run, held here), is waited
		// for: the widget feed, woken by the same event, may run first.
		s := startHub(t, 64)
		c := s.dial(t, "id=1")
		taken, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		hold := func() {
			once.Do(func() {
				close(taken)
				<-release
			})
		}
		s.hub.beforeLog.Store(&hold)
		s.bus.Publish(presence.Event{UserID: 9, Username: "u9", Online: true, Mode: presence.ModeOnline})
		<-taken
		done := settle(s.hub, nil, time.Hour)
		select {
		case <-done:
			close(release)
			t.Fatal("Settle returned while the fan-out held an event it had taken")
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		within(t, done, 5*time.Second)
		if st := c.statusOf(9); st["is_online"] != true {
			t.Fatalf("status %v", st)
		}
	})
	t.Run("Resubscribed", func(t *testing.T) {
		// Events the bus counted on a subscription it then dropped will not
		// all reach the log: once the hub has a new subscription, Settle
		// stops waiting for them instead of running to its max.
		s := startHub(t, 64)
		s.dial(t, "id=1")
		old := s.hub.sub.Load()
		bus := presence.NewLocalBus()
		stale := &busSub{Subscription: bus.Subscribe(8)}
		defer stale.Close()
		for i := range 3 {
			bus.Publish(presence.Event{UserID: int64(20 + i), Username: "x", Online: true})
		}
		s.hub.sub.Store(stale) // 3 sent, none logged: Settle waits for them
		done := settle(s.hub, nil, time.Hour)
		select {
		case <-done:
			t.Fatal("Settle returned with events counted and none logged")
		case <-time.After(100 * time.Millisecond):
		}
		s.hub.sub.Store(old)
		s.hub.wakeSettle()
		within(t, done, 5*time.Second)
	})
	t.Run("Queued", func(t *testing.T) {
		// Events still on the hub's bus subscription are waited for too.
		s := startHub(t, 1<<16)
		s.dial(t, "id=1")
		s.hub.mu.Lock()
		// With mu held the fan-out stops at its first trim (minTrim
		// entries), the rest of the events queued behind it.
		head := s.hub.log.head.Load()
		const n = 2 * minTrim
		for i := range n {
			s.bus.Publish(presence.Event{UserID: int64(10 + i), Username: "x", Online: true, Mode: presence.ModeOnline})
		}
		waitFor(t, "the fan-out stuck at its trim", 5*time.Second, func() bool { return s.hub.log.len() >= minTrim })
		if s.hub.log.head.Load() >= head+n {
			s.hub.mu.Unlock()
			t.Fatal("every event reached the log: none is queued")
		}
		done := settle(s.hub, nil, time.Hour)
		stillWaiting(t, s, done, "Settle returned with events queued and no pass run")
		within(t, done, 5*time.Second)
		// Offered, not necessarily written: a batch beyond maxBatchFrames
		// goes on in the socket's own goroutine. So the pass is what
		// must have covered them.
		if got := s.hub.through.Load(); got < head+n {
			t.Fatalf("Settle returned after a pass up to %d, before the queued events (up to %d)", got, head+n)
		}
	})
	t.Run("Stop", func(t *testing.T) {
		s := startHub(t, 64)
		s.dial(t, "id=1")
		s.hub.mu.Lock()
		defer s.hub.mu.Unlock()
		inLog(t, s)
		stop := make(chan struct{})
		done := settle(s.hub, stop, time.Hour)
		close(stop)
		within(t, done, 5*time.Second)
	})
	t.Run("Max", func(t *testing.T) {
		s := startHub(t, 64)
		s.dial(t, "id=1")
		s.hub.mu.Lock()
		defer s.hub.mu.Unlock()
		inLog(t, s)
		if took := within(t, settle(s.hub, nil, 50*time.Millisecond), 5*time.Second); took < 50*time.Millisecond {
			t.Fatalf("Settle returned after %v with the pass held, before its max of 50ms", took)
		}
	})
}

// TestHub_ShutdownTwiceAtOnce: a graceful stop and a test's (or a
// second signal's) Shutdown may run together; neither panics, and both
// return once the sockets are closed.
func TestHub_ShutdownTwiceAtOnce(t *testing.T) {
	for range 50 {
		s := startHub(t, 64)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { <-start; s.hub.Shutdown(context.Background()) })
		}
		close(start)
		wg.Wait()
	}
}
