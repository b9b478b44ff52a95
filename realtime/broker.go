package realtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presencehq/presence/presence"
)

// This file is the widget's Server-Sent Events broker. It replaced
// r3labs/sse/v2, whose single stream loop hands each event to every
// subscriber in turn and so lets one slow reader delay every other
// (docs/decisions/0001-sse-broker.md). What is left to take care of:
//
//   - No client picks a stream and Last-Event-ID is ignored: there is one
//     stream, and a reconnecting widget fetches a fresh list instead of a
//     replay.
//   - An empty event is refused (EventSource would dispatch nothing and
//     the data: line would be malformed for some parsers).
//   - Multi-line data is split into one data: line per line.
//   - Proxies must not buffer the stream: X-Accel-Buffering: no.
//
// How no subscriber can delay another: publishing only appends the event
// (encoded once, shared by everyone) to each subscriber's small queue and
// wakes its writer; it never writes to a socket. Each stream has its own
// writer goroutine. A subscriber whose queue grows past what the newest
// full state costs (it is lagging) has the queue dropped and is sent the
// newest snapshot (SetSnapshot) when it can take a write again; deltas it
// missed are never sent. A write that cannot complete within writeTimeout
// (on the broker's clock) ends the stream.
//
// Per-viewer streams: a stream may name its signed-in viewer
// (ServeViewer). Every such stream is indexed by viewer, so PublishTo can
// queue an event (encoded once) on the streams of a few viewers at a cost
// proportional to them, not to every subscriber. A scoped stream (the
// friends widget) gets only such events and keep-alives, never the shared
// list's; when it lags it is sent friends-refresh (fetch your list again)
// instead of the shared snapshot.
//
// Memory: a stream served inside its HTTP handler keeps net/http's whole
// per-connection kit for its lifetime (the handler goroutine with the deep
// stack it grew during auth, 4 KiB read and write buffers, a response
// buffer, a background-read goroutine): ~35 KiB measured at 9,000 streams.
// So after the middleware has authorised the request, the connection is
// hijacked and the stream runs in one fresh goroutine that owns no buffer
// while idle (events are written straight from the shared encoded bytes).
// Nothing reads the hijacked connection, so a closed tab is noticed at the
// next write (at the latest the next keep-alive). Where hijacking is not
// possible (HTTP/2), the stream is served inside the handler.

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
// plenty for a few 9 KB pushes a second at 100 ms round trips. A stalled
// reader pins at most this much kernel memory and is detected (write
// deadline) after a few pushes instead of after megabytes of auto-tuned
// buffer.
const sseSendBuffer = 64 << 10

// maxQueued bounds a subscriber's queue in events, whatever their size.
const maxQueued = 64

// ErrOwnerFull refuses a stream because its owner (a user, or one address
// using an embed token) already holds as many as it may, or because its
// group (every address using that embed token) holds its share of the
// server's connections.
var ErrOwnerFull = errors.New("too many event streams for this viewer")

// BrokerConfig configures a Broker.
type BrokerConfig struct {
	// KeepAlive is the longest a stream stays silent: one that has
	// written nothing for about half of it gets a comment, so proxies and
	// browsers keep idle streams open (0: never). A stream that carries
	// events gets none.
	KeepAlive time.Duration
	// WriteTimeout bounds one write to a stream; a client that cannot take
	// even the newest state within it is cut off (0: 2 s).
	WriteTimeout time.Duration
	// Conns bounds streams together with the WebSockets.
	Conns *ConnCap
	// Clock is the source of time for keep-alives and write timeouts
	// (default presence.SystemClock).
	Clock presence.Clock
	// MaxPerOwner caps the streams one owner may hold (0 = no cap).
	MaxPerOwner int
	// MaxPerGroup caps the streams one group of owners may hold (0 = no
	// cap); see Serve.
	MaxPerGroup int
}

// frame is one encoded SSE event, shared by every subscriber.
type frame struct {
	b []byte
	// latest: a newer frame with the same name replaces this one in a
	// queue (counts, keep-alives: only the newest matters).
	latest bool
	name   string
}

// Broker fans SSE events out to every subscriber; see the top of this file.
type Broker struct {
	cfg      BrokerConfig
	snapshot atomic.Pointer[frame]

	mu     sync.Mutex
	subs   map[*subscriber]struct{} // streams of the shared (global) list
	scoped map[*subscriber]struct{} // per-viewer streams (friends scope): no shared events
	// viewers indexes every stream opened by a signed-in viewer, by user
	// id, so an event for a few viewers reaches only their streams.
	viewers map[int64]map[*subscriber]struct{}
	// rooms indexes room-scoped streams by room, so a change in one room
	// reaches only the streams watching it (rooms.go).
	rooms  map[string]map[*subscriber]struct{}
	owners map[string]int
	closed bool
	wg     sync.WaitGroup
	ka     presence.Timer

	published, cutOff, resyncs atomic.Int64
	targeted, targetedBytes    atomic.Int64
}

// subscriber is one open stream.
type subscriber struct {
	owner  string
	viewer int64  // the signed-in viewer, 0 for anonymous (embed) streams
	scoped bool   // a per-viewer stream: shared events are not sent to it
	room   string // a room's stream (scoped): gets that room's events, not the viewer's friends'
	rooms  bool   // the viewer's rooms stream (scoped): the events of every room the viewer is in
	cancel context.CancelFunc
	wake   chan struct{} // cap 1

	mu     sync.Mutex
	queue  []*frame
	queued int  // bytes in queue
	resync bool // dropped events: send the snapshot next

	// wrote is the broker's clock (unix ns) when the stream's last write
	// began. It is stamped before the write, so that a keep-alive round
	// never sees a stream whose bytes a client already holds as idle.
	wrote atomic.Int64
}

// NewBroker returns a broker. Caller must call Shutdown.
func NewBroker(cfg BrokerConfig) *Broker {
	if cfg.Clock == nil {
		cfg.Clock = presence.SystemClock{}
	}
	if cfg.Conns == nil {
		cfg.Conns = &ConnCap{}
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Second
	}
	b := &Broker{cfg: cfg, subs: map[*subscriber]struct{}{}, scoped: map[*subscriber]struct{}{},
		viewers: map[int64]map[*subscriber]struct{}{}, rooms: map[string]map[*subscriber]struct{}{}, owners: map[string]int{}}
	if cfg.KeepAlive > 0 {
		b.mu.Lock()
		b.armKeepAlive()
		b.mu.Unlock()
	}
	return b
}

var keepAliveFrame = &frame{b: []byte(": keep-alive\n\n"), latest: true, name: ":"}

// armKeepAlive schedules the next keep-alive round, half an interval
// away. Caller holds b.mu.
//
// Each round sends a keep-alive only to the streams that wrote nothing
// since the round before: no stream is silent for longer than KeepAlive,
// a stream that carries events gets none, and the rounds are not a burst
// of one write per stream (2,000 streams: ~40 ms of the server's CPU at
// once, which any change then waits behind).
func (b *Broker) armKeepAlive() {
	half := max(b.cfg.KeepAlive/2, time.Millisecond)
	b.ka = b.cfg.Clock.AfterFunc(half, func() {
		b.keepAlive(b.cfg.Clock.Now().Add(-half).UnixNano())
		b.mu.Lock()
		if !b.closed {
			b.armKeepAlive()
		}
		b.mu.Unlock()
	})
}

// keepAlive queues a keep-alive for every stream whose last write began
// before idleSince (unix ns on the broker's clock). A write that began
// since has not been late for a keep-alive yet; if it is still blocked at
// a round more than half an interval after it began, that round queues one
// behind it.
func (b *Broker) keepAlive(idleSince int64) {
	limit := b.sharedLimit()
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.wrote.Load() < idleSince {
			s.push(keepAliveFrame, limit, &b.resyncs)
		}
	}
	for s := range b.scoped {
		if s.wrote.Load() < idleSince {
			s.push(keepAliveFrame, maxQueued<<10, &b.resyncs)
		}
	}
}

// encode renders one event: its name, then one data: line per line of
// data (a CR, LF or CRLF ends a line, as the SSE spec reads them).
func encode(event string, data []byte) []byte {
	out := make([]byte, 0, len(event)+len(data)+32)
	if event != "" {
		out = append(out, "event: "...)
		out = append(out, event...)
		out = append(out, '\n')
	}
	for len(data) > 0 {
		i := bytes.IndexAny(data, "\r\n")
		line, rest := data, []byte(nil)
		if i >= 0 {
			line, rest = data[:i], data[i+1:]
			if data[i] == '\r' && len(rest) > 0 && rest[0] == '\n' {
				rest = rest[1:]
			}
		}
		out = append(out, "data: "...)
		out = append(out, line...)
		out = append(out, '\n')
		data = rest
	}
	return append(out, '\n')
}

// Publish sends one named event to every subscriber, in order with the
// others. A subscriber that has fallen behind gets the snapshot instead.
// It never waits for a subscriber. Empty data is refused.
func (b *Broker) Publish(event string, data []byte) {
	if len(data) == 0 {
		return
	}
	b.published.Add(1)
	b.fanOut(&frame{b: encode(event, data), name: event})
}

// PublishLatest sends an event of which only the newest matters (a
// count): it replaces one of the same name still queued for a subscriber.
func (b *Broker) PublishLatest(event string, data []byte) {
	if len(data) == 0 {
		return
	}
	b.published.Add(1)
	b.fanOut(&frame{b: encode(event, data), name: event, latest: true})
}

// SetSnapshot sets the event a lagging subscriber is sent instead of the
// events it missed: the whole current state. Set it before publishing the
// event that leads to that state.
func (b *Broker) SetSnapshot(event string, data []byte) {
	if len(data) == 0 {
		return
	}
	b.snapshot.Store(&frame{b: encode(event, data), name: event})
}

// fanOut queues f for every subscriber. Each push takes only that
// subscriber's lock, which its writer holds just long enough to take the
// queue, never while writing.
func (b *Broker) fanOut(f *frame) {
	limit := b.sharedLimit()
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.push(f, limit, &b.resyncs)
	}
}

// sharedLimit is how many bytes a shared-list stream may hold queued
// before it is sent the snapshot instead: the snapshot's size, when there
// is one.
func (b *Broker) sharedLimit() int {
	if snap := b.snapshot.Load(); snap != nil {
		return len(snap.b)
	}
	return maxQueued << 10
}

// fanOutScoped queues f for every per-viewer stream.
func (b *Broker) fanOutScoped(f *frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.scoped {
		s.push(f, maxQueued<<10, &b.resyncs)
	}
}

// PublishTo sends one named event, encoded once, to the streams of the
// given viewers only: their per-viewer (scoped) streams, and with
// alsoShared their streams of the shared list as well. The cost is
// proportional to len(viewers) and their streams, never to every
// subscriber. It returns how many streams it reached.
func (b *Broker) PublishTo(viewers []int64, event string, data []byte, alsoShared bool) int {
	if len(data) == 0 || len(viewers) == 0 {
		return 0
	}
	f := &frame{b: encode(event, data), name: event}
	limit := maxQueued << 10
	n := 0
	b.mu.Lock()
	for _, v := range viewers {
		for s := range b.viewers[v] {
			if s.friends() || alsoShared {
				s.push(f, limit, &b.resyncs)
				n++
			}
		}
	}
	b.mu.Unlock()
	if n > 0 {
		b.targeted.Add(1)
		b.targetedBytes.Add(int64(n * len(f.b)))
	}
	return n
}

// PublishScoped sends one event to every per-viewer stream (a resync
// after the feed fell behind: rare).
func (b *Broker) PublishScoped(event string, data []byte) {
	if len(data) == 0 {
		return
	}
	b.fanOutScoped(&frame{b: encode(event, data), name: event})
}

// Watching returns those of ids that have at least one open stream (with
// scopedOnly, a per-viewer one other than a room's), in the order given.
func (b *Broker) Watching(ids []int64, scopedOnly bool) []int64 {
	var out []int64
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		for s := range b.viewers[id] {
			if s.friends() || !scopedOnly {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// friends reports whether s is a friends-scoped stream (per viewer, not a
// room's nor the viewer's rooms').
func (s *subscriber) friends() bool { return s.scoped && s.room == "" && !s.rooms }

// scopedResyncFrame is what a lagging per-viewer stream is sent instead of the
// events it missed: it tells the page to fetch its list again.
var scopedResyncFrame = &frame{b: encode("friends-refresh", []byte("refresh")), name: "friends-refresh"}

// push queues f, or gives up on the queue once it costs more than the
// snapshot (limit bytes) would.
func (s *subscriber) push(f *frame, limit int, resyncs *atomic.Int64) {
	s.mu.Lock()
	switch {
	case s.resync && !f.latest:
		// the snapshot will carry it
	case f.latest:
		for i, q := range s.queue {
			if q.latest && q.name == f.name {
				s.queued -= len(q.b)
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		s.queue = append(s.queue, f)
		s.queued += len(f.b)
	case len(s.queue) > 0 && (s.queued+len(f.b) > limit || len(s.queue) >= maxQueued):
		s.queue, s.queued, s.resync = nil, 0, true
		resyncs.Add(1)
	default:
		s.queue = append(s.queue, f)
		s.queued += len(f.b)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take appends to out what to write next, the snapshot first if events
// were dropped, then whatever is queued, and returns it.
func (s *subscriber) take(snap *frame, out net.Buffers) net.Buffers {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resync {
		s.resync = false
		if s.scoped {
			out = append(out, scopedResyncFrame.b)
		} else if snap != nil {
			out = append(out, snap.b)
		}
	}
	for _, f := range s.queue {
		out = append(out, f.b)
	}
	s.queue, s.queued = nil, 0
	return out
}

// Subscribers returns how many streams are open.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) + len(b.scoped)
}

// SharedSubscribers returns how many streams of the shared list are open
// (what one shared push costs).
func (b *Broker) SharedSubscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// group is the part of an owner key before its last "/", or "".
func group(owner string) string {
	if i := strings.LastIndexByte(owner, '/'); i > 0 {
		return owner[:i]
	}
	return ""
}

// register admits a new subscriber or says why not.
func (b *Broker) register(s *subscriber) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	g := group(s.owner)
	if s.owner != "" && b.cfg.MaxPerOwner > 0 && b.owners[s.owner] >= b.cfg.MaxPerOwner ||
		g != "" && b.cfg.MaxPerGroup > 0 && b.owners[g+"/"] >= b.cfg.MaxPerGroup {
		return ErrOwnerFull
	}
	if !b.cfg.Conns.Acquire() {
		return ErrFull
	}
	if s.owner != "" {
		b.owners[s.owner]++
	}
	if g != "" {
		b.owners[g+"/"]++
	}
	if s.scoped {
		b.scoped[s] = struct{}{}
	} else {
		b.subs[s] = struct{}{}
	}
	if s.room != "" {
		if b.rooms[s.room] == nil {
			b.rooms[s.room] = map[*subscriber]struct{}{}
		}
		b.rooms[s.room][s] = struct{}{}
	}
	if s.viewer != 0 {
		if b.viewers[s.viewer] == nil {
			b.viewers[s.viewer] = map[*subscriber]struct{}{}
		}
		b.viewers[s.viewer][s] = struct{}{}
	}
	b.wg.Add(1)
	return nil
}

func (b *Broker) unregister(s *subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	delete(b.scoped, s)
	if vs := b.viewers[s.viewer]; vs != nil {
		delete(vs, s)
		if len(vs) == 0 {
			delete(b.viewers, s.viewer)
		}
	}
	if rs := b.rooms[s.room]; rs != nil {
		delete(rs, s)
		if len(rs) == 0 {
			delete(b.rooms, s.room)
		}
	}
	for _, k := range []string{s.owner, group(s.owner) + "/"} {
		if k == "" || k == "/" {
			continue
		}
		if b.owners[k]--; b.owners[k] <= 0 {
			delete(b.owners, k)
		}
	}
	b.mu.Unlock()
	b.cfg.Conns.Release()
	b.wg.Done()
}

// Serve takes over one client's event stream until ctx is done, the
// client leaves or cannot take a write in time, or the broker shuts down.
// ctx is not the request's context: over HTTP/1.1 the stream outlives the
// handler (it hijacks the connection and returns at once); pass a context
// that ends when the viewer must stop receiving (a revoked session).
//
// owner is who the stream counts against: "user:42", or "group/member"
// (an embed token used from one address), where the member key is capped
// at MaxPerOwner and the whole group at MaxPerGroup. Before taking the
// stream over, Serve may refuse it with ErrClosed, ErrFull (--max-conns)
// or ErrOwnerFull; nothing has been written then.
func (b *Broker) Serve(ctx context.Context, w http.ResponseWriter, r *http.Request, owner string) error {
	return b.ServeViewer(ctx, w, r, owner, StreamViewer{})
}

// StreamViewer says whose stream it is.
type StreamViewer struct {
	// UserID is the signed-in viewer (0: anonymous, an embed token). Their
	// streams can be reached by PublishTo.
	UserID int64
	// Scoped: the stream shows the viewer's own list (friends), so it gets
	// only the events published to this viewer, never the shared list's.
	Scoped bool
	// Room, when set, makes the stream a room's (it is then scoped): it
	// gets the events published to that room (PublishRoom), and the
	// viewer's notices, not the viewer's friends widget events.
	Room string
	// MyRooms makes the stream the viewer's rooms stream (it is then
	// scoped): it gets the events of every room the viewer is in
	// (PublishToRooms), so one stream serves every room widget of a
	// browser's tabs, whatever room each tab is in.
	MyRooms bool
}

// ServeViewer is Serve for a stream that knows its viewer (see
// StreamViewer).
func (b *Broker) ServeViewer(ctx context.Context, w http.ResponseWriter, r *http.Request, owner string, v StreamViewer) error {
	sctx, cancel := context.WithCancel(ctx)
	s := &subscriber{owner: owner, viewer: v.UserID, scoped: v.Scoped || v.Room != "" || v.MyRooms, room: v.Room, rooms: v.MyRooms && v.Room == "",
		cancel: cancel, wake: make(chan struct{}, 1)}
	if err := b.register(s); err != nil {
		cancel()
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // no proxy buffering
	h.Del("Content-Length")
	retry := []byte("retry: " + strconv.FormatInt(sseRetry().Milliseconds(), 10) + "\n\n")

	rc := http.NewResponseController(w)
	if conn, brw, err := rc.Hijack(); err == nil {
		// The hijacked bufio pair is dropped (nothing more is read), and
		// with it its buffers.
		_ = brw
		conn.SetDeadline(time.Time{})
		out := &connOut{conn: conn}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetWriteBuffer(sseSendBuffer)
			out.raw, _ = tc.SyscallConn()
		}
		var head strings.Builder
		head.WriteString("HTTP/1.1 200 OK\r\n")
		h.Set("Connection", "close") // the response ends when the connection does
		h.Write(&head)
		head.WriteString("\r\n")
		head.Write(retry)
		go func() {
			defer b.unregister(s)
			defer conn.Close()
			defer cancel()
			b.stream(sctx, s, out, []byte(head.String()))
		}()
		return nil
	}
	// HTTP/2 (or a writer that cannot be hijacked): serve in the handler,
	// which must then stay; the request ending (client gone) ends it too.
	defer b.unregister(s)
	defer cancel()
	stop := context.AfterFunc(r.Context(), cancel)
	defer stop()
	rc.SetWriteDeadline(time.Time{}) // the stream outlives any server WriteTimeout
	w.WriteHeader(http.StatusOK)
	o := &handlerOut{w: w, rc: rc}
	b.stream(sctx, s, o, retry)
	o.finish()
	return nil
}

// out is where a stream's bytes go.
type out interface {
	write(bufs net.Buffers) error
	// tryWrite writes what the connection takes of bufs at once, without
	// waiting, and returns the rest (nil: all of it was written).
	tryWrite(bufs net.Buffers) (net.Buffers, error)
	// abort makes a blocked or future write fail at once.
	abort()
}

type connOut struct {
	conn net.Conn
	raw  syscall.RawConn // conn's descriptor, for writes that do not wait; nil for TLS
}

func (o *connOut) write(bufs net.Buffers) error {
	_, err := bufs.WriteTo(o.conn) // one writev, no copy
	return err
}

func (o *connOut) tryWrite(bufs net.Buffers) (net.Buffers, error) {
	n, err := tryWrite(o.raw, bufs)
	switch {
	case err != nil && !errors.Is(err, errWouldBlock):
		return bufs, err
	case n == 0:
		return bufs, nil // no copy: write takes it as is
	}
	return consumed(bufs, n), nil
}
func (o *connOut) abort() { o.conn.SetWriteDeadline(time.Unix(1, 0)) }

type handlerOut struct {
	w  http.ResponseWriter
	rc *http.ResponseController

	mu   sync.Mutex
	done bool // the handler is returning: the writer may no longer be touched
}

func (o *handlerOut) write(bufs net.Buffers) error {
	for _, b := range bufs {
		if _, err := o.w.Write(b); err != nil {
			return err
		}
	}
	return o.rc.Flush()
}

// tryWrite writes nothing: a handler's writer has no write that cannot
// wait, so every push takes write's path.
func (o *handlerOut) tryWrite(bufs net.Buffers) (net.Buffers, error) { return bufs, nil }

func (o *handlerOut) abort() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		o.rc.SetWriteDeadline(time.Unix(1, 0))
	}
}

// finish makes later aborts do nothing; call it before the handler returns.
func (o *handlerOut) finish() {
	o.mu.Lock()
	o.done = true
	o.mu.Unlock()
}

// stream is one subscriber's writer: it sleeps until woken, then writes
// what is queued, each batch within the write timeout.
func (b *Broker) stream(ctx context.Context, s *subscriber, o out, first []byte) {
	stop := context.AfterFunc(ctx, o.abort) // a blocked write ends with the stream
	defer stop()
	s.wrote.Store(b.cfg.Clock.Now().UnixNano())
	if !b.write(ctx, o, net.Buffers{first}) {
		return
	}
	var bufs net.Buffers // reused: a push allocates nothing for its batch
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		bufs = s.take(b.snapshot.Load(), bufs[:0])
		if len(bufs) == 0 {
			continue
		}
		s.wrote.Store(b.cfg.Clock.Now().UnixNano())
		ok := b.write(ctx, o, bufs)
		clear(bufs) // hold no frame until the next push
		if !ok {
			return
		}
	}
}

// write writes bufs within the write timeout and reports whether the
// stream may go on. What the kernel takes at once, as it does for nearly
// every push to a stream that keeps up, is written with no timer: a push
// to thousands of streams then costs one system call each, and no
// allocation to collect later (docs/PERFORMANCE.md, issue 16).
func (b *Broker) write(ctx context.Context, o out, bufs net.Buffers) bool {
	bufs, err := o.tryWrite(bufs)
	if err != nil {
		return false // gone (reset, closed): not a slow reader
	}
	if len(bufs) == 0 {
		return true
	}
	t := b.cfg.Clock.AfterFunc(b.cfg.WriteTimeout, o.abort)
	err = o.write(bufs)
	inTime := t.Stop() // false: the timeout fired, so the write took at least that long
	if inTime && err == nil {
		return true
	}
	// Too slow, rather than gone (connection reset) or ended by us.
	if ctx.Err() == nil && (!inTime || errors.Is(err, os.ErrDeadlineExceeded)) {
		b.cutOff.Add(1)
	}
	return false
}

// Shutdown ends every stream and waits for them, until ctx is done.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	if b.ka != nil {
		b.ka.Stop()
	}
	for s := range b.subs {
		s.cancel()
	}
	for s := range b.scoped {
		s.cancel()
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sse shutdown: %w", ctx.Err())
	}
}

// BrokerStats are the broker's counters since it started.
type BrokerStats struct {
	Subscribers int
	// Published counts events published; CutOff streams ended because a
	// write timed out or failed; Resyncs times a lagging subscriber's
	// queue was replaced by the snapshot.
	Published, CutOff, Resyncs int64
	// Targeted counts events published to chosen viewers (PublishTo) and
	// TargetedBytes the bytes they queued, over all the streams reached.
	Targeted, TargetedBytes int64
}

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	return BrokerStats{Subscribers: b.Subscribers(), Published: b.published.Load(), CutOff: b.cutOff.Load(), Resyncs: b.resyncs.Load(),
		Targeted: b.targeted.Load(), TargetedBytes: b.targetedBytes.Load()}
}
