package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/ratelimit"
)

const (
	// writeWait is how long one write to a peer may take.
	writeWait = 10 * time.Second
	// maxMessageSize is the largest frame a client may send; larger ones
	// close the socket with 1009.
	maxMessageSize = 4 << 10
	// closeGrace is how long the server waits for the peer's close reply.
	closeGrace = time.Second
)

// Close codes used by the server (RFC 6455 §7.4.1).
const (
	closeGoingAway   = websocket.CloseGoingAway               // 1001: server shutting down
	closeUnsupported = websocket.CloseUnsupportedData         // 1003: binary frame
	closeBadData     = websocket.CloseInvalidFramePayloadData // 1007: invalid UTF-8
	closePolicy      = websocket.ClosePolicyViolation         // 1008: too many connections, flooding, revoked credentials
	closeTryLater    = websocket.CloseTryAgainLater           // 1013: events were lost
)

// reasonRevoked is the close reason of a socket whose credentials ended.
const reasonRevoked = "session ended: signed out or token revoked"

// reasonUserEnded is the close reason of a socket whose user the host site
// disconnected or deleted (UserEnds).
const reasonUserEnded = "disconnected by the site"

var (
	msgRateLimited = errorMessage("rate limit exceeded")
	msgPong        = []byte(`{"type":"pong"}`)
	msgPing        = []byte(`{"type":"ping"}`)
)

var upgrader = websocket.Upgrader{
	// No buffer sizes: gorilla only answers the upgrade (the hub reads
	// and writes its own frames, wsread.go and wswrite.go), and with none
	// set it reuses the hijacked HTTP buffers rather than allocating
	// buffers for a Conn that is dropped at once.
	// Origins are checked before the upgrade by originPolicy.
	CheckOrigin: func(*http.Request) bool { return true },
}

// Hub holds every open WebSocket so they can be counted, sent status
// events and closed cleanly on shutdown. It subscribes to the bus once,
// frames each event once into its event log (eventlog.go), and its writer
// sends the log to the sockets that want events, each socket from where
// it is, in chunks of sockets that run in parallel (wswrite.go).
type Hub struct {
	conns  *ConnCap
	engine *presence.Engine
	logger *slog.Logger
	rate   float64 // messages per second a socket may send, refilled
	burst  float64 // messages a socket may send at once

	log       *eventLog
	writeWait time.Duration

	mu      sync.Mutex
	clients map[*wsClient]struct{}
	closed  bool
	wg      sync.WaitGroup
	// eventSockets are the sockets that want events; wake tells the
	// writer that the log has grown.
	eventSockets []*wsClient
	wake         chan struct{}
	writerDone   chan struct{}
	// trimAt is the log's length at which it is next trimmed.
	trimAt int

	// For Settle: how many sockets want events, the subscription the
	// fan-out reads, the log's head when the last finished pass began,
	// and a channel closed when the running (or next) pass ends.
	nEventSockets atomic.Int64
	sub           atomic.Pointer[busSub]
	through       atomic.Uint64
	passMu        sync.Mutex
	passEnd       chan struct{}

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	accepted, kicked, received, slow, limited, gaps, gapClosed, revoked atomic.Int64
	// events counts status events fanned out; closedByRequest sockets
	// closed by CloseConnection and CloseUser (connections.go).
	events, closedByRequest atomic.Int64

	devices devices // parsed User-Agents, shared by sockets (connections.go)

	// beforeLog, when set (by tests), runs in the fan-out after it has
	// taken an event and before the event is in the log.
	beforeLog atomic.Pointer[func()]
}

// NewHub returns a hub whose sockets register with e. Each socket may send
// rate messages a second, burst at once (rate <= 0: no limit); conns bounds
// sockets together with the event streams. Caller must call Shutdown.
func NewHub(e *presence.Engine, log *slog.Logger, rate float64, burst int, conns *ConnCap) *Hub {
	h := &Hub{conns: conns, engine: e, logger: log, rate: rate, burst: float64(burst), clients: map[*wsClient]struct{}{},
		log: newEventLog(), writeWait: writeWait, trimAt: minTrim,
		wake: make(chan struct{}, 1), writerDone: make(chan struct{}), passEnd: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	go h.writer()
	// Subscribed before any socket can be accepted, so none misses the
	// events of its own arrival.
	sub := &busSub{Subscription: e.Bus().Subscribe(busBuffer)}
	h.sub.Store(sub)
	go h.fanOut(sub)
	return h
}

// busSub is the hub's subscription to the engine's bus, with how many of
// its events the fan-out has put in the log: Sent minus logged is what
// Settle must still wait for, whether queued on the subscription or
// handed to the fan-out's goroutine before it ran.
type busSub struct {
	*presence.Subscription
	logged atomic.Uint64
}

// SetWriteWait sets how long a write to a peer may block before the
// socket is closed as not reading (default 10 s). Call it before the
// first Accept.
func (h *Hub) SetWriteWait(d time.Duration) { h.writeWait = d }

// minTrim is the least length of the event log before it is trimmed.
const minTrim = 256

// Len returns how many WebSockets are open.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// busBuffer is how many events the hub's bus subscription holds while the
// fan-out is busy. Beyond it the bus drops the subscription (see gap).
const busBuffer = 4096

// fanOut frames each status event once, adds it to the log and wakes the
// writers. It never waits for a socket.
func (h *Hub) fanOut(sub *busSub) {
	defer close(h.done)
	defer func() { <-h.writerDone }()
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				// Subscribe again first, then cut: a socket still open
				// after the cut was registered after the new subscription
				// and misses nothing.
				sub = &busSub{Subscription: h.engine.Bus().Subscribe(busBuffer)}
				h.sub.Store(sub)
				h.wakeSettle() // it may be waiting for an event the old one never sent
				h.gap()
				continue
			}
			f := wsFrame(opText, statusMessage(ev))
			if hook := h.beforeLog.Load(); hook != nil {
				(*hook)()
			}
			// Counted before the log's head moves: Settle, which reads the
			// head first, may then miss the event for an instant, never
			// count it twice (and wait for an event that is not coming).
			sub.logged.Add(1)
			h.log.add(ev.UserID, ev.Scope, f)
			h.events.Add(1)
			select {
			case h.wake <- struct{}{}:
			default: // already woken: it reads the log from each socket's cursor
			}
			if h.log.len() >= h.trimAt {
				h.trim()
			}
		case <-h.stop:
			sub.Close()
			return
		}
	}
}

// trim drops from the log what every event socket has been sent, and
// sets the length at which to trim again: twice what is left, so that a
// socket far behind (which keeps its entries) does not make every event
// trim.
func (h *Hub) trim() {
	upTo := h.log.head.Load()
	h.mu.Lock()
	for _, cl := range h.eventSockets {
		upTo = min(upTo, cl.cursor.Load())
	}
	h.mu.Unlock()
	h.log.trim(upTo)
	h.trimAt = max(minTrim, 2*h.log.len())
}

// gap handles a dropped bus subscription: the fan-out fell so far behind
// that the bus cut it off, and the events published until it subscribed
// again are lost. Every socket that wants events would silently keep a
// wrong picture, so each is closed with 1013: the client reconnects and
// fetches a fresh snapshot. Keep-alive sockets (events=0) missed nothing
// and stay open. docs/PROTOCOL.md says why this beats resending state.
func (h *Hub) gap() {
	h.gaps.Add(1)
	h.mu.Lock()
	n := 0
	for cl := range h.clients {
		if cl.events {
			cl.cut(closeTryLater, "missed events while the server was overloaded; reconnect to resync")
			n++
		}
	}
	h.mu.Unlock()
	h.gapClosed.Add(int64(n))
	h.logger.Warn("websocket fan-out fell behind the bus: events were lost; closed the sockets that wanted them (1013)", "sockets", n)
}

// wsClient is one open WebSocket. On Linux it has no goroutine of its
// own: its reader runs while the client has sent bytes (readReady; a TLS
// socket keeps a readLoop goroutine). Writes happen on demand, by whoever
// finds the socket idle (a writer goroutine of the hub for events,
// without blocking; the reader for its own replies; a short-lived
// goroutine for pings and for what the peer did not take at once), so an
// idle socket costs no goroutine and no timer.
type wsClient struct {
	hub    *Hub
	nc     net.Conn        // the upgraded connection, read and written directly
	raw    syscall.RawConn // nc's descriptor for non-blocking I/O; nil for TLS
	user   presence.User
	pc     *presence.Conn
	events bool
	// unwatch stops watching the context given to Accept.
	unwatch func() bool

	// For listings (connections.go): an opaque id, when it was accepted
	// and last active (unix ns), its User-Agent's device (shared) and
	// what opened it.
	id         connID
	since      int64
	lastActive atomic.Int64
	device     *agent
	meta       ConnMeta
	room       atomic.Pointer[string] // the room it is in now (nil or "": none)

	// The socket's writer (whoever set writing) alone touches pend and
	// moves cursor; slot (its index in eventSockets) is guarded by the
	// hub's mu.
	mu      sync.Mutex
	extra   [][]byte // frames to write before more events: replies
	pingDue bool
	writing bool
	done    bool
	pend    net.Buffers   // the rest of a batch being written
	cursor  atomic.Uint64 // the last entry of the event log written or being written
	hint    *logEntry     // the entry at cursor, where the next walk of the log starts
	// wsem is the write lock, held while frames are written: a close
	// frame or a pong goes between batches, never into one.
	wsem chan struct{}
	slot int

	closing   atomic.Bool // a close frame is sent (or being sent): only the client's is awaited
	closeMu   sync.Mutex  // held by sendClose while it sends: finish waits for the frame before closing
	closeSent atomic.Bool // under wsem: the close frame is out; nothing more is written

	// The reader: the poller's readReady (plain TCP on Linux), one at a
	// time under readMu, or the socket's own readLoop goroutine.
	// readEnded is set, under readMu, once the reader has finished the
	// client.
	rd        wsReader
	readMu    sync.Mutex
	readEnded bool
	poll      *poller // nil: readLoop reads
	pollID    uint64

	// Message rate limit, used by the reader only; nil means no limit.
	limit  *ratelimit.Bucket
	denied int // consecutive messages over the limit

	once sync.Once
}

// allow takes one token from the socket's bucket. Reader goroutine only.
func (cl *wsClient) allow() bool {
	if cl.limit == nil {
		return true
	}
	ok, _ := cl.limit.Allow()
	return ok
}

// serve registers the socket with the engine, writes its ack and starts
// its reader. The caller has taken a slot from h.conns; serve releases it
// when the socket ends. From then on the reader owns the connection. With
// events false the socket gets no user.status.changed messages: a
// keep-alive that does not read them should not cost N² deliveries.
func (h *Hub) serve(ctx context.Context, conn *websocket.Conn, r *http.Request, u presence.User, events bool, meta ConnMeta) {
	ack, _ := json.Marshal(map[string]any{"type": "connection.ack", "user_id": wireID(u.ID, u.PublicID)})
	// The ack is the first batch, which serve writes once the socket is
	// registered; writing is set so that nothing else writes before it.
	cl := &wsClient{hub: h, nc: conn.NetConn(), user: u, events: events,
		pend: net.Buffers{wsFrame(opText, ack)}, writing: true, wsem: make(chan struct{}, 1)}
	if sc, ok := cl.nc.(*net.TCPConn); ok {
		cl.raw, _ = sc.SyscallConn()
		if p, err := sharedPoller(); err == nil && cl.raw != nil {
			cl.poll = p
		}
	}
	h.describe(cl, r, meta)
	if h.rate > 0 {
		cl.limit = ratelimit.NewBucket(ratelimit.PerSecond(h.rate), int(h.burst), h.engine.Clock())
	}
	// Registered before the engine hears of it, so the socket receives the
	// events that its own connection causes (its user coming online).
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.conns.Release()
		closeWith(conn, closeGoingAway, ErrClosed.Error())
		return
	}
	h.clients[cl] = struct{}{}
	if events {
		// From the log's end: it is sent what happens from now on.
		cl.cursor.Store(h.log.head.Load())
		cl.slot = len(h.eventSockets)
		h.eventSockets = append(h.eventSockets, cl)
		h.nEventSockets.Add(1)
	}
	h.wg.Add(1)
	h.mu.Unlock()

	pc, err := h.engine.Connect(u, cl)
	if err != nil {
		code, reason := closeGoingAway, ErrClosed.Error()
		if errors.Is(err, presence.ErrTooManyConnections) {
			code, reason = closePolicy, "too many connections for this user"
		}
		cl.closeNow(code, reason)
		cl.finish()
		return
	}
	cl.pc = pc
	h.accepted.Add(1)
	if meta.Room != "" {
		// Checked by the handler: a bad name was refused before the upgrade.
		if pc.SetRoom(meta.Room) == nil {
			cl.room.Store(&meta.Room)
		}
	}
	// Signed out, or the token revoked: end the socket (at once if that
	// has already happened).
	cl.unwatch = context.AfterFunc(ctx, func() {
		h.revoked.Add(1)
		reason := reasonRevoked
		if errors.Is(context.Cause(ctx), ErrUserEnded) {
			reason = reasonUserEnded
		}
		cl.cut(closePolicy, reason)
	})
	if cl.poll == nil {
		cl.drain() // the ack, and anything queued behind it
		go cl.readLoop()
		return
	}
	// Watched before the ack is written: a write that fails (the client
	// is gone already) ends the socket through its reader.
	if err := cl.poll.add(cl); err != nil {
		if !errors.Is(err, net.ErrClosed) {
			h.logger.Error("websocket: cannot watch the socket", "err", err)
			cl.closeNow(websocket.CloseInternalServerErr, "server error")
		}
		cl.finish()
		return
	}
	cl.drain()
}

// DeviceKind implements presence.DeviceKinder: the kind of device of the
// socket's User-Agent, for history.
func (cl *wsClient) DeviceKind() string {
	if cl.device == nil {
		return presence.DeviceUnknown
	}
	return cl.device.kind
}

// Ping implements presence.Peer: the engine found the socket silent.
func (cl *wsClient) Ping() {
	cl.mu.Lock()
	if cl.done {
		cl.mu.Unlock()
		return
	}
	cl.pingDue = true
	start := !cl.writing
	cl.writing = true
	cl.mu.Unlock()
	if start {
		go cl.drain()
	}
}

// Kick implements presence.Peer: the socket missed its heartbeat deadline.
func (cl *wsClient) Kick() {
	cl.hub.kicked.Add(1)
	cl.end()
}

// cut stops queuing and writing to the socket and sends it a close frame
// with code and reason. It does not block. The connection is not closed
// here: as RFC 6455 §7.1.1 has it, the server waits for the client's own
// close frame, which ends the reader, which closes the connection (or the
// wait for it does, after closeGrace: endAfter). Closing at once, with messages
// from the client still unread, would make the kernel reset the
// connection, which can destroy the close frame before the client reads
// it, and the client would see 1006 instead of the reason.
func (cl *wsClient) cut(code int, reason string) {
	cl.mu.Lock()
	if cl.done {
		cl.mu.Unlock()
		return
	}
	cl.mu.Unlock()
	// The close is claimed here, so that of two cuts (a device signed out,
	// then the revocation of its token) the first one's code and reason
	// are sent; only the writing, which may wait, is left to a goroutine.
	// A close already being sent (closeMu held) is someone else's.
	if !cl.closeMu.TryLock() {
		return
	}
	if !cl.claimClose() {
		cl.closeMu.Unlock()
		return
	}
	go func() {
		defer cl.closeMu.Unlock()
		cl.writeClose(closeFrame(code, reason), time.Now().Add(closeGrace))
		cl.endAfter(closeGrace)
	}()
}

// enqueue adds a reply frame. It reports whether the caller must start
// writing (nobody is) and whether the socket is still usable.
func (cl *wsClient) enqueue(f []byte) (start, ok bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.done {
		return false, false
	}
	cl.extra = append(cl.extra, f)
	start = !cl.writing
	cl.writing = true
	return start, true
}

// finish releases everything the client holds. Only the first call acts.
func (cl *wsClient) finish() {
	cl.once.Do(func() {
		cl.mu.Lock()
		cl.done = true
		cl.mu.Unlock()
		if cl.unwatch != nil {
			cl.unwatch()
		}
		if cl.pc != nil {
			cl.pc.Close()
		}
		// A close frame on its way (a cut's, racing the peer's own close)
		// goes out before the connection closes under it.
		cl.closeMu.Lock()
		cl.closeMu.Unlock()
		if cl.poll != nil {
			cl.poll.remove(cl)
		}
		cl.nc.Close()
		h := cl.hub
		h.mu.Lock()
		delete(h.clients, cl)
		if cl.events {
			all := h.eventSockets
			last := all[len(all)-1]
			all[cl.slot], last.slot = last, cl.slot
			all[len(all)-1] = nil
			h.eventSockets = all[:len(all)-1]
			h.nEventSockets.Add(-1)
		}
		h.mu.Unlock()
		h.conns.Release()
		h.wg.Done()
	})
}

// end closes the connection; its reader then finishes the client. The
// poller hears nothing of a closed socket, so a polled one is read once
// more, which fails.
func (cl *wsClient) end() {
	cl.nc.Close()
	if cl.poll != nil {
		go cl.readReady()
	}
}

// endAfter ends the connection after d unless the client's close frame
// ends it first: the wait for the close handshake's reply.
func (cl *wsClient) endAfter(d time.Duration) {
	if cl.poll == nil {
		cl.nc.SetReadDeadline(time.Now().Add(d))
		return
	}
	time.AfterFunc(d, cl.end)
}

// readTurns are the buffers readReady reads into, lent for one turn.
var readTurns = sync.Pool{New: func() any { return newReadTurn() }}

// readChunk is how much one read takes: a client's largest message and
// its frame header.
const readChunk = maxMessageSize + 16

// readReady reads a polled socket until it holds nothing more, handles
// what came, and arms the poller again; it finishes the client when the
// socket ends. It runs in a goroutine the poller started, one at a time.
func (cl *wsClient) readReady() {
	cl.readMu.Lock()
	defer cl.readMu.Unlock()
	if cl.readEnded {
		return
	}
	turn := readTurns.Get().(*readTurn)
	defer readTurns.Put(turn)
	for {
		n, err := turn.tryRead(cl.raw)
		if errors.Is(err, errWouldBlock) {
			if cl.poll.rearm(cl) == nil {
				return
			}
		} else if err == nil && cl.consume(turn.buf[:n]) {
			continue
		}
		cl.readEnded = true
		cl.finish()
		return
	}
}

// readLoop is the reader of a socket the poller does not watch (TLS, or
// a system without one): a goroutine of its own, blocked in Read.
func (cl *wsClient) readLoop() {
	defer cl.finish()
	buf := make([]byte, 512)
	for {
		n, err := cl.nc.Read(buf)
		if n > 0 && !cl.consume(buf[:n]) {
			return
		}
		if err != nil {
			return
		}
	}
}

// consume handles bytes read from the client, and reports whether the
// socket goes on. A frame that breaks the protocol closes it with the
// code the protocol asks for.
func (cl *wsClient) consume(p []byte) bool {
	err := cl.rd.read(p, cl)
	if err == nil {
		return true
	}
	if pe, ok := err.(*protocolError); ok {
		cl.closeNow(pe.code, pe.reason)
	}
	return false
}

// onFrame handles one message or control frame from the client, and
// reports whether the socket goes on.
func (cl *wsClient) onFrame(op byte, data []byte) bool {
	switch op {
	case opPing:
		cl.control(wsFrame(opPong, data), time.Now().Add(cl.hub.writeWait))
		return true
	case opPong:
		cl.pc.Alive()
		return true
	case opClose:
		var payload []byte
		if code := closePayloadCode(data); code != websocket.CloseNoStatusReceived {
			payload = websocket.FormatCloseMessage(code, "")
		}
		// Our reply, unless our own close frame went first: then this
		// was the reply. Either way the handshake is over.
		cl.sendClose(wsFrame(opClose, payload), time.Now().Add(cl.hub.writeWait))
		return false
	}
	cl.hub.received.Add(1)
	if cl.closing.Load() {
		return true // being cut: nothing more is answered or counted as activity
	}
	cl.pc.Alive()
	if op != opText {
		cl.closeNow(closeUnsupported, "binary frames are not supported")
		return false
	}
	if !utf8.Valid(data) {
		cl.closeNow(closeBadData, "text frame is not valid UTF-8")
		return false
	}
	reply := msgRateLimited
	if cl.allow() {
		cl.denied = 0
		reply = cl.handle(data)
	} else {
		cl.hub.limited.Add(1)
		if cl.denied++; float64(cl.denied) > 2*cl.hub.burst {
			cl.closeNow(closePolicy, "message rate limit exceeded")
			return false
		}
	}
	// Replies are written by the reader itself when the socket is idle:
	// a client that sends faster than it reads is slowed down by TCP
	// backpressure, and one that never reads hits the write deadline.
	start, ok := cl.enqueue(replyFrame(reply))
	if !ok {
		// Being cut: its close frame is on its way and the client's
		// reply, or the wait for it, ends the socket. Ending now would
		// close first and could lose the frame.
		return true
	}
	if start {
		cl.drain()
	}
	return true
}

// handle answers one text message.
func (cl *wsClient) handle(data []byte) []byte {
	if bytes.Equal(data, msgPing) { // the hot path, without a JSON decode
		cl.pc.Activity()
		cl.activity()
		return msgPong
	}
	var m struct {
		Type string  `json:"type"`
		Room *string `json:"room"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return errorMessage("invalid JSON")
	}
	switch m.Type {
	case "ping":
		cl.pc.Activity()
		cl.activity()
		return msgPong
	case "room":
		if m.Room == nil {
			return errorMessage(`message "room" needs a "room" string ("" leaves the room)`)
		}
		return cl.moveTo(*m.Room)
	case "":
		return errorMessage(`message has no "type"`)
	default:
		return errorMessage("unknown message type")
	}
}

// Shutdown refuses new sockets, closes every open one with 1001 and waits,
// until ctx is done, for them to end; those still open then are cut.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	clients := make([]*wsClient, 0, len(h.clients))
	for cl := range h.clients {
		clients = append(clients, cl)
	}
	h.mu.Unlock()
	h.stopOnce.Do(func() { close(h.stop) }) // Shutdown may run twice at once
	<-h.done
	// Close frames go out concurrently, each with a short deadline: a peer
	// whose buffers are full must not hold up everyone else's, nor the
	// shutdown limit.
	var frames sync.WaitGroup
	f := closeFrame(closeGoingAway, "server shutting down")
	for _, cl := range clients {
		frames.Go(func() { cl.sendClose(f, time.Now().Add(closeGrace)) })
	}
	frames.Wait()
	// Give peers a moment to answer the close handshake, then cut.
	waited := make(chan struct{})
	go func() { h.wg.Wait(); close(waited) }()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-waited:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	for _, cl := range clients {
		cl.end()
	}
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeWith sends a close frame with code and reason, then closes.
func closeWith(c *websocket.Conn, code int, reason string) { closeWithin(c, code, reason, writeWait) }

// closeWithin is closeWith giving the close frame at most wait.
func closeWithin(c *websocket.Conn, code int, reason string, wait time.Duration) {
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(wait))
	c.Close()
}

// replyFrame frames a reply; the pong, the most frequent, is framed once.
func replyFrame(reply []byte) []byte {
	if len(reply) > 0 && &reply[0] == &msgPong[0] {
		return framePong
	}
	return wsFrame(opText, reply)
}

func errorMessage(detail string) []byte {
	b, _ := json.Marshal(map[string]string{"type": "error", "detail": detail})
	return b
}

// wireID is a user's id in WebSocket messages: always a JSON string, as
// the original app sent it (str(user.id)); a host user's id as the host
// gave it (docs/PROTOCOL.md, "User ids").
func wireID(id int64, public string) string {
	if public != "" {
		return public
	}
	return strconv.FormatInt(id, 10)
}

// statusJSON is the user.status.changed message.
type statusJSON struct {
	Type     string  `json:"type"`
	UserID   string  `json:"user_id"`
	Username string  `json:"username"`
	IsOnline bool    `json:"is_online"`
	LastSeen *string `json:"last_seen"`
	// Mode, StatusText and StatusEmoji came with issue 12: online, away,
	// dnd or offline (invisible only in a user's own events); the custom
	// status, empty when none.
	Mode        string `json:"mode"`
	StatusText  string `json:"status_text"`
	StatusEmoji string `json:"status_emoji"`
}

func statusMessage(ev presence.Event) []byte {
	b, _ := json.Marshal(statusJSON{
		Type: "user.status.changed", UserID: wireID(ev.UserID, ev.PublicID), Username: ev.Username,
		IsOnline: ev.Online, LastSeen: rfc3339(ev.LastSeen),
		Mode: string(ev.Mode), StatusText: ev.StatusText, StatusEmoji: ev.StatusEmoji,
	})
	return b
}

// Errors Accept and Broker.Serve return before taking over a connection.
var (
	// ErrClosed means the server is shutting down.
	ErrClosed = errors.New("server is shutting down")
	// ErrFull means the connection cap is reached.
	ErrFull = errors.New("server is at capacity")
)

// wsSendBuffer is the kernel send buffer of a WebSocket: hundreds of
// status events, far more than a reading peer ever has in flight.
const wsSendBuffer = 64 << 10

// Accept upgrades r to a presence WebSocket for u, whom the caller has
// authenticated (and whose Origin it has checked). With events false the
// socket gets no user.status.changed messages: a keep-alive that does not
// read them should not cost N² deliveries. When ctx is done (the
// credentials that opened the socket were revoked) the socket is closed
// with 1008; ctx must outlive the request, so not r.Context(). Before
// upgrading it returns ErrClosed or ErrFull, for the caller to answer;
// when the upgrade itself fails the upgrader has answered and Accept
// returns nil. Otherwise the hub owns the connection from then on.
func (h *Hub) Accept(ctx context.Context, w http.ResponseWriter, r *http.Request, u presence.User, events bool) error {
	return h.accept(ctx, w, r, u, events, ConnMeta{})
}

func (h *Hub) accept(ctx context.Context, w http.ResponseWriter, r *http.Request, u presence.User, events bool, meta ConnMeta) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !h.conns.Acquire() {
		return ErrFull
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.conns.Release()
		return nil // the upgrader has answered with an HTTP error
	}
	// A bounded kernel send buffer: a peer that stops reading pins at
	// most this much and is detected (queue full, 1013) after ~1,000
	// status events instead of after 4 MiB of auto-tuned buffer.
	if tc, ok := conn.NetConn().(*net.TCPConn); ok {
		tc.SetWriteBuffer(wsSendBuffer)
	}
	h.serve(ctx, conn, r, u, events, meta)
	return nil
}

// HubStats are the hub's counters since it started.
type HubStats struct {
	Open                                      int
	Accepted, Kicked, Received, Slow, Limited int64
	// Gaps counts the times the hub fell behind the bus and closed the
	// sockets that wanted events (1013); GapClosed counts those sockets.
	Gaps, GapClosed int64
	// Revoked counts sockets closed (1008) because their session ended
	// or their token was revoked.
	Revoked int64
	// ClosedByRequest counts sockets closed (1008) by CloseConnection or
	// CloseUser: signed out from the devices list, kicked by an
	// administrator.
	ClosedByRequest int64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{Open: h.Len(), Accepted: h.accepted.Load(), Kicked: h.kicked.Load(),
		Received: h.received.Load(), Slow: h.slow.Load(), Limited: h.limited.Load(), Gaps: h.gaps.Load(), GapClosed: h.gapClosed.Load(), Revoked: h.revoked.Load(),
		ClosedByRequest: h.closedByRequest.Load()}
}

// timeFormat is RFC 3339 in UTC with milliseconds, as the JSON API uses.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// rfc3339 formats t for JSON, or nil (null) for the zero time.
func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeFormat)
	return &s
}
