package realtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/r3labs/sse/v2"
)

// This file is the only one that knows r3labs/sse/v2. That library is
// unmaintained and has sharp edges; each is handled here:
//
//   - AutoReplay defaults to true and keeps every event forever: off.
//   - The client picks a stream with ?stream=: the request is rewritten so
//     the one stream is always ours, and Last-Event-ID (which it parses and
//     rejects if not a number) is dropped; a reconnect gets a fresh snapshot
//     from the page instead of a replay.
//   - An event with empty Data and no Comment ends every subscriber's
//     stream: publish refuses empty data.
//   - Multi-line data needs SplitData, or the HTML fragments would break.
//   - It sends no keep-alives: a comment goes out every keepAlive.
//   - One stalled subscriber blocks the stream loop for all (blocking send
//     into its 64-slot channel). Every write here carries a deadline; the
//     first failed write cancels the subscriber, whose writes then fail at
//     once, so its channel keeps draining and the loop never waits on it.
//     Since the widget feed publishes at most one event per coalescing
//     window (≥ 50 ms, after a leading-edge push) plus keep-alives, a
//     subscriber cannot fill its 64 slots within one write deadline (2 s).
//   - RemoveStream/Close with live subscribers leaks goroutines: shutdown
//     first cancels every subscriber and waits for them, then closes.
//   - Every publish uses a fresh *sse.Event.
//
// Memory: a stream served inside its HTTP handler keeps net/http's whole
// per-connection kit for its lifetime (the handler goroutine with the deep
// stack it grew during auth, 4 KiB read and write buffers, a response
// buffer, a background-read goroutine): ~35 KiB measured at 9,000 streams.
// So after the middleware has authorised the request, the connection is
// hijacked and the stream runs in a fresh goroutine with one small buffer.
// Nothing reads the hijacked connection, so a closed tab is noticed at the
// next write (at the latest the next keep-alive). Where hijacking is not
// possible (HTTP/2), the stream is served inside the handler as before.

const sseStream = "presence"

// A stream's first line tells the browser's EventSource how long to wait
// before reconnecting (its default is a fixed ~3 s): a random delay in
// [sseRetryMin, sseRetryMin+sseRetrySpread) per stream, so that after a
// restart thousands of widgets do not all come back in the same instant.
const (
	sseRetryMin    = time.Second
	sseRetrySpread = 3 * time.Second
)

// sseRetry returns a reconnect delay for one stream.
func sseRetry() time.Duration {
	return sseRetryMin + rand.N(sseRetrySpread)
}

// sseSendBuffer is the kernel send buffer of a stream: a few full pushes,
// plenty for a few 9 KB pushes a second at 100 ms round trips.
const sseSendBuffer = 64 << 10

// Broker fans identical SSE events out to every subscriber.
type Broker struct {
	conns        *ConnCap
	srv          *sse.Server
	writeTimeout time.Duration

	mu     sync.Mutex
	subs   map[*sseSubscriber]struct{}
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
	once   sync.Once

	published, cutOff atomic.Int64
}

type sseSubscriber struct{ cancel context.CancelFunc }

// NewBroker returns a broker that sends idle streams a comment every
// keepAlive and cuts a client that cannot take a write within writeTimeout.
// conns bounds streams together with the WebSockets. Caller must call
// Shutdown.
func NewBroker(keepAlive, writeTimeout time.Duration, conns *ConnCap) *Broker {
	srv := sse.New()
	srv.AutoReplay = false
	srv.AutoStream = false
	srv.SplitData = true
	srv.EventTTL = 0
	srv.Headers = map[string]string{"X-Accel-Buffering": "no"} // no proxy buffering
	srv.CreateStream(sseStream)
	b := &Broker{conns: conns, srv: srv, writeTimeout: writeTimeout, subs: map[*sseSubscriber]struct{}{}, stop: make(chan struct{})}
	go b.keepAlive(keepAlive)
	return b
}

func (b *Broker) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.srv.Publish(sseStream, &sse.Event{Comment: []byte("keep-alive")})
		case <-b.stop:
			return
		}
	}
}

// Publish sends one named event with data (an HTML fragment) to everyone.
func (b *Broker) Publish(event string, data []byte) {
	if len(data) == 0 {
		return
	}
	b.published.Add(1)
	b.srv.Publish(sseStream, &sse.Event{Event: []byte(event), Data: data})
}

// Subscribers returns how many streams are open.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Serve streams events to one client until it leaves, falls behind, ctx
// is done (its credentials were revoked), or the broker shuts down. ctx
// must outlive the request (not r.Context(): a hijacked stream outlives the
// handler). owner is not used yet.
func (b *Broker) Serve(ctx context.Context, w http.ResponseWriter, r *http.Request, owner string) error {
	ctx, cancel := context.WithCancel(ctx)
	sub := &sseSubscriber{cancel: cancel}
	if !b.conns.Acquire() {
		cancel()
		return ErrFull
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.conns.Release()
		cancel()
		return ErrClosed
	}
	b.subs[sub] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()

	rc := http.NewResponseController(w)
	fail := func() { b.cutOff.Add(1); cancel() }
	header := w.Header().Clone() // CORS and other headers set by middleware
	// The hijacked bufio pair is dropped: nothing more is read, and its
	// buffers are freed.
	if conn, _, err := rc.Hijack(); err == nil {
		conn.SetDeadline(time.Time{})
		// A bounded send buffer: a stalled reader pins at most this much
		// kernel memory and is detected (write deadline) after a few pushes
		// instead of after megabytes of auto-tuned buffer.
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetWriteBuffer(sseSendBuffer)
		}
		go func() {
			hw := &hijackedWriter{conn: conn, header: header, bw: bufio.NewWriterSize(conn, 1024)}
			b.stream(ctx, &sseWriter{w: hw, flush: hw.flush, deadline: conn.SetWriteDeadline, timeout: b.writeTimeout, retry: sseRetry(), fail: fail})
			conn.Close()
			cancel()
			b.unregister(sub)
		}()
		return nil
	}
	// In the handler, the request ending (client gone) ends the stream.
	stop := context.AfterFunc(r.Context(), cancel)
	defer stop()
	rc.SetWriteDeadline(time.Time{}) // the stream outlives any server WriteTimeout
	b.stream(ctx, &sseWriter{w: w, flush: rc.Flush, deadline: rc.SetWriteDeadline, timeout: b.writeTimeout, retry: sseRetry(), fail: fail})
	b.unregister(sub)
	return nil
}

// stream runs r3labs' loop for one subscriber on a minimal request: the
// one stream is ours, and no Last-Event-ID reaches it.
func (b *Broker) stream(ctx context.Context, w *sseWriter) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/?stream="+sseStream, nil)
	b.srv.ServeHTTP(w, req)
}

func (b *Broker) unregister(sub *sseSubscriber) {
	b.mu.Lock()
	delete(b.subs, sub)
	b.mu.Unlock()
	b.conns.Release()
	b.wg.Done()
}

// Shutdown ends every stream and waits for them, until ctx is done.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	for s := range b.subs {
		s.cancel()
	}
	b.mu.Unlock()
	b.once.Do(func() { close(b.stop) })
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		b.srv.Close()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sseWriter gives every write a deadline and fails fast after the first
// failure, so a stalled client never holds up the stream loop.
type sseWriter struct {
	w        http.ResponseWriter
	flush    func() error
	deadline func(time.Time) error
	timeout  time.Duration
	retry    time.Duration // announced after the header when > 0
	fail     func()
	failed   atomic.Bool
}

var errSlowClient = errors.New("sse: client too slow")

func (s *sseWriter) Header() http.Header { return s.w.Header() }
func (s *sseWriter) WriteHeader(code int) {
	s.w.WriteHeader(code)
	if code == http.StatusOK && s.retry > 0 {
		fmt.Fprintf(s.w, "retry: %d\n\n", s.retry.Milliseconds())
	}
}

func (s *sseWriter) Write(p []byte) (int, error) {
	if s.failed.Load() {
		return 0, errSlowClient
	}
	s.deadline(time.Now().Add(s.timeout))
	n, err := s.w.Write(p)
	if err != nil {
		s.markFailed()
	}
	return n, err
}

func (s *sseWriter) Flush() {
	if s.failed.Load() {
		return
	}
	s.deadline(time.Now().Add(s.timeout))
	if err := s.flush(); err != nil {
		s.markFailed()
	}
}

func (s *sseWriter) markFailed() {
	if s.failed.CompareAndSwap(false, true) {
		s.fail()
	}
}

// hijackedWriter is the minimal http.ResponseWriter r3labs needs, over a
// hijacked HTTP/1.1 connection. The response has no length and no chunking:
// it ends when the connection closes, which EventSource expects.
type hijackedWriter struct {
	conn        net.Conn
	header      http.Header
	bw          *bufio.Writer
	wroteHeader bool
}

func (h *hijackedWriter) Header() http.Header { return h.header }

func (h *hijackedWriter) WriteHeader(code int) {
	if h.wroteHeader {
		return
	}
	h.wroteHeader = true
	fmt.Fprintf(h.bw, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	h.header.Set("Connection", "close")
	h.header.Write(h.bw)
	h.bw.WriteString("\r\n")
}

func (h *hijackedWriter) Write(p []byte) (int, error) {
	if !h.wroteHeader {
		h.WriteHeader(http.StatusOK)
	}
	return h.bw.Write(p)
}

func (h *hijackedWriter) flush() error { return h.bw.Flush() }

// BrokerStats are the broker's counters since it started.
type BrokerStats struct {
	Subscribers       int
	Published, CutOff int64
}

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	return BrokerStats{Subscribers: b.Subscribers(), Published: b.published.Load(), CutOff: b.cutOff.Load()}
}
