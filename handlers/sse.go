package handlers

import (
	"context"
	"errors"
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
//     window (50 ms) plus keep-alives, a subscriber cannot fill its 64 slots
//     within one write deadline (2 s).
//   - RemoveStream/Close with live subscribers leaks goroutines: shutdown
//     first cancels every subscriber and waits for them, then closes.
//   - Every publish uses a fresh *sse.Event.

const sseStream = "presence"

// sseBroker fans identical SSE events out to every subscriber.
type sseBroker struct {
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

func newSSEBroker(keepAlive, writeTimeout time.Duration) *sseBroker {
	srv := sse.New()
	srv.AutoReplay = false
	srv.AutoStream = false
	srv.SplitData = true
	srv.EventTTL = 0
	srv.Headers = map[string]string{"X-Accel-Buffering": "no"} // no proxy buffering
	srv.CreateStream(sseStream)
	b := &sseBroker{srv: srv, writeTimeout: writeTimeout, subs: map[*sseSubscriber]struct{}{}, stop: make(chan struct{})}
	go b.keepAlive(keepAlive)
	return b
}

func (b *sseBroker) keepAlive(every time.Duration) {
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

// publish sends one named event with data (an HTML fragment) to everyone.
func (b *sseBroker) publish(event string, data []byte) {
	if len(data) == 0 {
		return
	}
	b.published.Add(1)
	b.srv.Publish(sseStream, &sse.Event{Event: []byte(event), Data: data})
}

// subscribers returns how many streams are open.
func (b *sseBroker) subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

var errSSEClosed = errors.New("server is shutting down")

// serve streams events to one client until it leaves, falls behind, or the
// broker shuts down.
func (b *sseBroker) serve(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub := &sseSubscriber{cancel: cancel}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errSSEClosed
	}
	b.subs[sub] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, sub)
		b.mu.Unlock()
		b.wg.Done()
	}()

	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // the stream outlives any server WriteTimeout
	sw := &sseWriter{w: w, rc: rc, timeout: b.writeTimeout, fail: func() { b.cutOff.Add(1); cancel() }}

	req := r.Clone(ctx)
	req.URL.RawQuery = "stream=" + sseStream
	req.Header.Del("Last-Event-ID")
	b.srv.ServeHTTP(sw, req)
	return nil
}

// shutdown ends every stream and waits for them, until ctx is done.
func (b *sseBroker) shutdown(ctx context.Context) error {
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
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	fail    func()
	failed  atomic.Bool
}

var errSlowClient = errors.New("sse: client too slow")

func (s *sseWriter) Header() http.Header  { return s.w.Header() }
func (s *sseWriter) WriteHeader(code int) { s.w.WriteHeader(code) }

func (s *sseWriter) Write(p []byte) (int, error) {
	if s.failed.Load() {
		return 0, errSlowClient
	}
	s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
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
	s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if err := s.rc.Flush(); err != nil {
		s.markFailed()
	}
}

func (s *sseWriter) markFailed() {
	if s.failed.CompareAndSwap(false, true) {
		s.fail()
	}
}
