package realtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

type event struct {
	name, data, comment, retry string
}

// readEvents parses an SSE stream into events until it ends.
func readEvents(r io.Reader) <-chan event {
	ch := make(chan event, 4096)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				ch <- ev
				ev = event{}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				if ev.data != "" {
					ev.data += "\n"
				}
				ev.data += line[len("data: "):]
			case strings.HasPrefix(line, ": "):
				ev.comment = line[2:]
			case strings.HasPrefix(line, "retry: "):
				ev.retry = line[len("retry: "):]
			}
		}
	}()
	return ch
}

// open opens a stream with a real HTTP client.
func open(t *testing.T, url string) (<-chan event, *http.Response) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %s", resp.Status)
	}
	return readEvents(resp.Body), resp
}

// rawStream sends a stream request on a raw connection and returns the
// connection, unread. rcvbuf > 0 shrinks its receive buffer.
func rawStream(t *testing.T, srv *httptest.Server, rcvbuf int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if rcvbuf > 0 {
		c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	return c
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// seq reads the number an event's data starts with.
func seq(ev event) int {
	n, err := strconv.Atoi(strings.Fields(ev.data + " x")[0])
	if err != nil {
		return -1
	}
	return n
}

// awaitState waits until ch delivers an event whose data starts with want
// and returns how long that took.
func awaitState(t *testing.T, who string, ch <-chan event, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	timeout := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("%s: stream ended before state %d", who, want)
			}
			if seq(ev) == want {
				return time.Since(start)
			}
		case <-timeout:
			t.Fatalf("%s: no state %d within %v: a lagging subscriber delays the others", who, want, within)
		}
	}
}

// TestBroker_SlowReader: a subscriber that reads, but slower than events
// come (8 KiB every 100 ms), delays nobody: publishing never waits, and a
// healthy subscriber sees the newest state at once. The slow one is sent
// the newest state when it can take it, not the backlog, and is not cut
// off. (On the r3labs broker this replaced the healthy subscriber waited
// for the slow one: it had not seen the last state after 10 s.)
func TestBroker_SlowReader(t *testing.T) {
	b, srv := startBroker(t, BrokerConfig{KeepAlive: time.Hour, WriteTimeout: 5 * time.Second, Conns: &ConnCap{}})
	slow := rawStream(t, srv, 0)
	var slowRead atomic.Int64
	slowEvents := make(chan event, 4096)
	pr, pw := io.Pipe()
	go func() { // 8 KiB every 100 ms, never stopping
		defer pw.Close()
		buf := make([]byte, 8<<10)
		for {
			n, err := slow.Read(buf) // at most 8 KiB
			slowRead.Add(int64(n))
			pw.Write(buf[:n])
			if err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		for ev := range readEvents(pr) {
			slowEvents <- ev
		}
		close(slowEvents)
	}()
	healthy, _ := open(t, srv.URL)
	waitFor(t, "two subscribers", 5*time.Second, func() bool { return b.Subscribers() == 2 })

	const events = 300
	pad := strings.Repeat("x", 32<<10) // 300 × 32 KiB: minutes of reading for the slow one
	for i := range events {
		publishState(b, "presence", fmt.Appendf(nil, "%d %s", i, pad))
	}
	took := awaitState(t, "healthy", healthy, events-1, 3*time.Second)
	t.Logf("healthy saw the newest state %v after the last publish; the slow reader had read %d KiB", took, slowRead.Load()>>10)
	// The slow one gets the newest state too, without reading the backlog.
	took = awaitState(t, "slow", slowEvents, events-1, 20*time.Second)
	t.Logf("slow reader saw it after %v, having read %d KiB of the %d KiB published", took, slowRead.Load()>>10, events*32)
	if st := b.Stats(); st.CutOff != 0 || st.Resyncs == 0 {
		t.Fatalf("stats %+v: want the slow reader resynced, not cut", st)
	}
}

// TestBroker_StoppedReader: a subscriber that stops reading delays nobody
// and is cut off once a write has waited the write timeout (on the
// broker's clock, advanced here by hand). Its writer is blocked for the
// whole of the three rounds while no time passes on that clock: the
// publisher and the healthy subscriber never wait for it.
func TestBroker_StoppedReader(t *testing.T) {
	clock := presence.NewFakeClock(time.Unix(0, 0))
	b, srv := startBroker(t, BrokerConfig{KeepAlive: time.Hour, WriteTimeout: 10 * time.Second, Conns: &ConnCap{}, Clock: clock})
	rawStream(t, srv, 4096) // sends its request, then never reads a byte
	healthy, _ := open(t, srv.URL)
	waitFor(t, "two subscribers", 5*time.Second, func() bool { return b.Subscribers() == 2 })

	pad := strings.Repeat("x", 64<<10) // 100 × 64 KiB: far more than socket buffers hold
	for round := range 3 {
		for i := range 100 {
			publishState(b, "presence", fmt.Appendf(nil, "%d %s", round*100+i, pad))
		}
		took := awaitState(t, "healthy", healthy, round*100+99, 3*time.Second)
		t.Logf("round %d: healthy saw the newest state after %v", round, took)
	}
	if b.Stats().CutOff != 0 {
		t.Fatal("cut off before its write timed out")
	}
	waitFor(t, "the stopped reader to be cut off", 5*time.Second, func() bool {
		clock.Advance(10 * time.Second)
		return b.Stats().CutOff == 1 && b.Subscribers() == 1
	})
	publishState(b, "presence", []byte("1000 after"))
	awaitState(t, "healthy", healthy, 1000, 3*time.Second)
}

// TestBroker_Stream: what a stream carries — a retry: of 1-4 s first,
// keep-alive comments, multi-line data split into data: lines, named
// events; empty events are refused; no header lets a client choose a
// stream or replay.
func TestBroker_Stream(t *testing.T) {
	clock := presence.NewFakeClock(time.Unix(0, 0))
	b, srv := startBroker(t, BrokerConfig{KeepAlive: 15 * time.Second, WriteTimeout: time.Second, Conns: &ConnCap{}, Clock: clock})
	req, _ := http.NewRequest("GET", srv.URL+"/?stream=other", nil)
	req.Header.Set("Last-Event-ID", "not-a-number")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("headers %v", resp.Header)
	}
	ch := readEvents(resp.Body)
	next := func() event {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended (stats %+v)", b.Stats())
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return event{}
	}
	if ms, err := strconv.Atoi(next().retry); err != nil || ms < 1000 || ms >= 4000 {
		t.Fatalf("first event is not a retry in [1000, 4000) ms: %v", err)
	}
	waitFor(t, "subscriber", 5*time.Second, func() bool { return b.Subscribers() == 1 })
	// The client can see the retry before the writer has stopped that
	// write's timeout: advancing the clock then would let 15 s pass during
	// the write, and the broker rightly cuts the stream off. Wait until the
	// keep-alive is the only timer left (the writer is idle).
	waitFor(t, "the first write to finish", 5*time.Second, func() bool { return clock.Pending() == 1 })
	clock.Advance(15 * time.Second)
	if ev := next(); ev.comment != "keep-alive" {
		t.Fatalf("got %+v, want a keep-alive", ev)
	}
	b.Publish("presence", nil)
	b.Publish("presence", []byte("<p>\nline two\r\nthree</p>\n"))
	b.PublishLatest("presence-count", []byte("7"))
	if ev := next(); ev.name != "presence" || ev.data != "<p>\nline two\nthree</p>" {
		t.Fatalf("got %+v", ev)
	}
	if ev := next(); ev.name != "presence-count" || ev.data != "7" {
		t.Fatalf("got %+v", ev)
	}
	if st := b.Stats(); st.CutOff != 0 {
		t.Fatalf("stats %+v: the stream was cut off", st)
	}
}

// TestBroker_OwnerCap: one owner, and one group of owners, cannot hold
// more streams than allowed; others still connect, and slots come back
// when streams end.
func TestBroker_OwnerCap(t *testing.T) {
	conns := &ConnCap{Max: 100}
	b, srv := startBroker(t, BrokerConfig{KeepAlive: time.Hour, WriteTimeout: time.Second, Conns: conns, MaxPerOwner: 2, MaxPerGroup: 3})
	get := func(owner string) (*http.Response, error) {
		resp, err := http.Get(srv.URL + "/?owner=" + owner)
		if err == nil {
			t.Cleanup(func() { resp.Body.Close() })
		}
		return resp, err
	}
	code := func(owner string) int {
		resp, err := get(owner)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	first, _ := get("user:1")
	if code("user:1") != 200 || code("user:1") != 503 {
		t.Fatal("a third stream for user 1 was not refused")
	}
	if code("user:2") != 200 {
		t.Fatal("another user was refused")
	}
	// An embed token's group: 2 per address, 3 in all.
	if code("embed:t/1.1.1.1") != 200 || code("embed:t/1.1.1.1") != 200 || code("embed:t/1.1.1.1") != 503 {
		t.Fatal("per-address cap")
	}
	if code("embed:t/2.2.2.2") != 200 || code("embed:t/3.3.3.3") != 503 {
		t.Fatal("per-token ceiling")
	}
	if code("embed:u/3.3.3.3") != 200 {
		t.Fatal("another token was refused")
	}
	first.Body.Close()
	waitFor(t, "the slot to come back", 5*time.Second, func() bool {
		publishState(b, "presence", []byte("x")) // a write notices the closed stream
		resp, err := get("user:1")
		return err == nil && resp.StatusCode == 200
	})
	if err := b.Serve(context.Background(), httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "user:1"); !errors.Is(err, ErrOwnerFull) {
		t.Fatalf("Serve = %v, want ErrOwnerFull", err)
	}
}

// TestBroker_ContextEndsStream: the stream ends promptly when the context
// Serve was given is done, though the handler returned long ago.
func TestBroker_ContextEndsStream(t *testing.T) {
	b := NewBroker(BrokerConfig{KeepAlive: time.Hour, WriteTimeout: time.Second})
	defer b.Shutdown(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.Serve(ctx, w, r, "user:1")
	}))
	defer srv.Close()
	ch, _ := open(t, srv.URL)
	<-ch // retry
	cancel()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after its context ended")
	}
	waitFor(t, "unregistered", 5*time.Second, func() bool { return b.Subscribers() == 0 })
}

// TestBroker_HTTP2: over HTTP/2 the connection cannot be hijacked; the
// stream is served inside the handler and works the same.
func TestBroker_HTTP2(t *testing.T) {
	b := NewBroker(BrokerConfig{KeepAlive: time.Hour, WriteTimeout: time.Second})
	defer b.Shutdown(context.Background())
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.Serve(context.Background(), w, r, "user:1")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"h2"}
	client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("proto %s", resp.Proto)
	}
	ch := readEvents(resp.Body)
	<-ch // retry
	waitFor(t, "subscriber", 5*time.Second, func() bool { return b.Subscribers() == 1 })
	publishState(b, "presence", []byte("42 over h2"))
	awaitState(t, "h2", ch, 42, 5*time.Second)
	resp.Body.Close()
	waitFor(t, "the stream to end with its request", 5*time.Second, func() bool { return b.Subscribers() == 0 })
}

// TestBroker_NoLeak: streams opened and closed in a loop, then a shutdown
// with streams open, leave no goroutine behind.
func TestBroker_NoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	conns := &ConnCap{}
	b := NewBroker(BrokerConfig{KeepAlive: 10 * time.Millisecond, WriteTimeout: time.Second, Conns: conns})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.Serve(context.Background(), w, r, "user:1")
	}))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 300 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 64))
		resp.Body.Close()
	}
	var open []*http.Response
	for range 20 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, resp)
	}
	if err := b.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, resp := range open {
		io.Copy(io.Discard, resp.Body) // ended by the shutdown
		resp.Body.Close()
	}
	if conns.Held() != 0 || b.Subscribers() != 0 {
		t.Fatalf("held %d, subscribers %d after shutdown", conns.Held(), b.Subscribers())
	}
	srv.Close()
	client.CloseIdleConnections()
	waitFor(t, "goroutines to end", 5*time.Second, func() bool { return runtime.NumGoroutine() <= before+2 })
	if err := b.Serve(context.Background(), httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after shutdown = %v", err)
	}
}

// TestBroker_KeepAliveIdleOnly: a keep-alive goes only to a stream that
// wrote nothing for half the interval; one that carried an event since
// gets none, and no stream stays silent for longer than the interval.
func TestBroker_KeepAliveIdleOnly(t *testing.T) {
	clock := presence.NewFakeClock(time.Unix(100, 0))
	b := NewBroker(BrokerConfig{KeepAlive: 10 * time.Second, WriteTimeout: time.Minute, Conns: &ConnCap{}, Clock: clock})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.URL.Query().Get("viewer"), 10, 64)
		if err := b.ServeViewer(context.Background(), w, r, r.URL.Query().Get("viewer"), StreamViewer{UserID: id}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		b.Shutdown(context.Background())
	})
	busy, _ := open(t, srv.URL+"/?viewer=1")
	idle, _ := open(t, srv.URL+"/?viewer=2")
	next := func(who string, ch <-chan event) event {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no event", who)
		}
		return event{}
	}
	next("busy", busy) // retry:
	next("idle", idle)
	// Both first writes are stamped (before they began) and only the
	// keep-alive's timer is left.
	waitFor(t, "the first writes", 5*time.Second, func() bool { return b.Subscribers() == 2 && clock.Pending() == 1 })

	clock.Advance(5 * time.Second) // a round: both wrote at 100 s, not before 100 s
	if n := b.PublishTo([]int64{1}, "presence", []byte("for the busy one"), true); n != 1 {
		t.Fatalf("PublishTo reached %d streams", n)
	}
	if ev := next("busy", busy); ev.data != "for the busy one" {
		t.Fatalf("busy got %+v, want its event (no keep-alive at 5 s)", ev)
	}
	// The busy stream stamped its write before the client could read it:
	// the next round must see it as busy, with no wait here.

	clock.Advance(5 * time.Second) // at 110 s: idle since 100 s, busy wrote at 105 s
	if ev := next("idle", idle); ev.comment != "keep-alive" {
		t.Fatalf("idle got %+v, want a keep-alive", ev)
	}
	b.Publish("presence", []byte("for both"))
	if ev := next("busy", busy); ev.data != "for both" {
		t.Fatalf("busy got %+v before the event for both: a keep-alive it did not need", ev)
	}
	if ev := next("idle", idle); ev.data != "for both" {
		t.Fatalf("idle got %+v", ev)
	}
}

// countingClock is a FakeClock that counts the timers armed on it.
type countingClock struct {
	*presence.FakeClock
	armed atomic.Int64
}

func (c *countingClock) AfterFunc(d time.Duration, f func()) presence.Timer {
	c.armed.Add(1)
	return c.FakeClock.AfterFunc(d, f)
}

// TestBroker_PushArmsNoTimer: a push the kernel takes at once is written
// without arming the write timeout, so that a push to thousands of streams
// is one system call each and leaves nothing to collect; a stream that
// stops reading still gets its timeout (TestBroker_StoppedReader).
func TestBroker_PushArmsNoTimer(t *testing.T) {
	clock := &countingClock{FakeClock: presence.NewFakeClock(time.Unix(0, 0))}
	b, srv := startBroker(t, BrokerConfig{KeepAlive: time.Hour, WriteTimeout: 10 * time.Second, Conns: &ConnCap{}, Clock: clock})
	events, _ := open(t, srv.URL)
	waitFor(t, "the subscriber", 5*time.Second, func() bool { return b.Subscribers() == 1 })
	publishState(b, "presence", []byte("0 first"))
	awaitState(t, "the subscriber", events, 0, 3*time.Second)
	before := clock.armed.Load()
	for i := 1; i <= 50; i++ {
		publishState(b, "presence", fmt.Appendf(nil, "%d small", i))
		awaitState(t, "the subscriber", events, i, 3*time.Second)
	}
	if n := clock.armed.Load() - before; n != 0 {
		t.Fatalf("50 pushes to a stream that keeps up armed %d timers, want 0", n)
	}
}
