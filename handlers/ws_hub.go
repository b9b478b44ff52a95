package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

const (
	// writeWait is how long one write to a peer may take.
	writeWait = 10 * time.Second
	// maxMessageSize is the largest frame a client may send; larger ones
	// close the socket with 1009.
	maxMessageSize = 4 << 10
	// replyBuffer is how many replies (pong, error) may wait for the
	// writer before the reader stops reading.
	replyBuffer = 16
	// eventBuffer is how many status events may wait for the writer; a
	// client that falls further behind is cut off with 1013 and resyncs
	// when it reconnects.
	eventBuffer = 64
	// closeGrace is how long the server waits for the peer's close reply.
	closeGrace = time.Second
)

// Close codes used by the server (RFC 6455 §7.4.1).
const (
	closeGoingAway   = websocket.CloseGoingAway               // 1001: server shutting down
	closeUnsupported = websocket.CloseUnsupportedData         // 1003: binary frame
	closeBadData     = websocket.CloseInvalidFramePayloadData // 1007: invalid UTF-8
	closePolicy      = websocket.ClosePolicyViolation         // 1008: too many connections, flooding
	closeTryLater    = websocket.CloseTryAgainLater           // 1013: too slow to keep up
)

var (
	msgPong         = []byte(`{"type":"pong"}`)
	errHubClosed    = errors.New("server is shutting down")
	upgraderBuffers = &sync.Pool{}
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	WriteBufferPool: upgraderBuffers,
	// Origins are checked before the upgrade by originPolicy.
	CheckOrigin: func(*http.Request) bool { return true },
}

// wsHub holds every open WebSocket so they can be counted and closed
// cleanly on shutdown.
type wsHub struct {
	engine       *presence.Engine
	log          *slog.Logger
	pingInterval time.Duration

	mu      sync.Mutex
	clients map[*wsClient]struct{}
	closed  bool
	wg      sync.WaitGroup

	accepted, kicked, received atomic.Int64
}

func newWSHub(e *presence.Engine, log *slog.Logger, ping time.Duration) *wsHub {
	return &wsHub{engine: e, log: log, pingInterval: ping, clients: map[*wsClient]struct{}{}}
}

func (h *wsHub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// wsClient is one open WebSocket. Its reader goroutine handles incoming
// frames; its writer goroutine is the only one that writes data frames.
type wsClient struct {
	hub     *wsHub
	conn    *websocket.Conn
	user    store.User
	pc      *presence.Conn
	sub     *presence.Subscription
	replies chan []byte
	done    chan struct{}
	once    sync.Once
}

// serve registers the socket with the engine and starts its goroutines.
// It returns at once: the goroutines own the connection from then on.
// With events false the socket gets no user.status.changed messages: a
// keep-alive that does not read them should not cost N² deliveries.
func (h *wsHub) serve(conn *websocket.Conn, u store.User, events bool) {
	cl := &wsClient{
		hub:     h,
		conn:    conn,
		user:    u,
		replies: make(chan []byte, replyBuffer),
		done:    make(chan struct{}),
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		closeWith(conn, closeGoingAway, errHubClosed.Error())
		return
	}
	h.clients[cl] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()

	if events {
		cl.sub = h.engine.Bus().Subscribe(eventBuffer)
	}
	pc, err := h.engine.Connect(presence.User{ID: u.ID, Username: u.Username}, cl.kick)
	if err != nil {
		code, reason := closeGoingAway, errHubClosed.Error()
		if errors.Is(err, presence.ErrTooManyConnections) {
			code, reason = closePolicy, "too many connections for this user"
		}
		closeWith(conn, code, reason)
		cl.finish()
		return
	}
	cl.pc = pc
	h.accepted.Add(1)
	go cl.writeLoop()
	go cl.readLoop()
}

// kick is called by the engine when the peer missed its heartbeat deadline.
func (cl *wsClient) kick() {
	cl.hub.kicked.Add(1)
	cl.conn.Close()
}

// finish releases everything the client holds. It is safe to call from both
// goroutines; only the first call acts.
func (cl *wsClient) finish() {
	cl.once.Do(func() {
		close(cl.done)
		if cl.pc != nil {
			cl.pc.Close()
		}
		if cl.sub != nil {
			cl.sub.Close()
		}
		cl.conn.Close()
		h := cl.hub
		h.mu.Lock()
		delete(h.clients, cl)
		h.mu.Unlock()
		h.wg.Done()
	})
}

// reply queues a message for the writer. When the queue is full the reader
// waits: a client that sends faster than it reads is slowed down by TCP
// backpressure, and one that never reads is cut off by the writer's
// deadline. It reports false once the client is finished.
func (cl *wsClient) reply(msg []byte) bool {
	select {
	case cl.replies <- msg:
		return true
	case <-cl.done:
		return false
	}
}

func (cl *wsClient) readLoop() {
	defer cl.finish()
	c := cl.conn
	c.SetReadLimit(maxMessageSize)
	c.SetPongHandler(func(string) error { cl.pc.Alive(); return nil })
	for {
		mt, data, err := c.ReadMessage()
		if err != nil {
			// Oversized frames: gorilla has already sent 1009.
			return
		}
		cl.hub.received.Add(1)
		cl.pc.Alive()
		if mt != websocket.TextMessage {
			closeWith(c, closeUnsupported, "binary frames are not supported")
			return
		}
		if !utf8.Valid(data) {
			closeWith(c, closeBadData, "text frame is not valid UTF-8")
			return
		}
		if !cl.reply(cl.handle(data)) {
			return
		}
	}
}

// handle answers one text message.
func (cl *wsClient) handle(data []byte) []byte {
	var m struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return errorMessage("invalid JSON")
	}
	switch m.Type {
	case "ping":
		cl.pc.Activity()
		return msgPong
	case "":
		return errorMessage(`message has no "type"`)
	default:
		return errorMessage("unknown message type")
	}
}

func (cl *wsClient) writeLoop() {
	defer cl.finish()
	c := cl.conn
	ticker := time.NewTicker(cl.hub.pingInterval)
	defer ticker.Stop()
	var events <-chan presence.Event // nil (never ready) without a subscription
	if cl.sub != nil {
		events = cl.sub.C
	}
	write := func(msg []byte) bool {
		c.SetWriteDeadline(time.Now().Add(writeWait))
		return c.WriteMessage(websocket.TextMessage, msg) == nil
	}
	ack, _ := json.Marshal(map[string]any{"type": "connection.ack", "user_id": cl.user.ID})
	if !write(ack) {
		return
	}
	for {
		select {
		case msg := <-cl.replies:
			if !write(msg) {
				return
			}
		case ev, ok := <-events:
			if !ok {
				if cl.sub.Dropped() {
					closeWith(c, closeTryLater, "too slow to keep up; reconnect")
				}
				return
			}
			if !write(statusMessage(ev)) {
				return
			}
		case <-ticker.C:
			if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) != nil {
				return
			}
		case <-cl.done:
			return
		}
	}
}

// shutdown closes every socket with 1001 and waits for them to end.
func (h *wsHub) shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	clients := make([]*wsClient, 0, len(h.clients))
	for cl := range h.clients {
		clients = append(clients, cl)
	}
	h.mu.Unlock()
	for _, cl := range clients {
		cl.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(closeGoingAway, "server shutting down"), time.Now().Add(writeWait))
	}
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
		cl.conn.Close()
	}
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeWith sends a close frame with code and reason, then closes.
func closeWith(c *websocket.Conn, code int, reason string) {
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(writeWait))
	c.Close()
}

func errorMessage(detail string) []byte {
	b, _ := json.Marshal(map[string]string{"type": "error", "detail": detail})
	return b
}

// statusJSON is the user.status.changed message.
type statusJSON struct {
	Type     string  `json:"type"`
	UserID   int64   `json:"user_id"`
	Username string  `json:"username"`
	IsOnline bool    `json:"is_online"`
	LastSeen *string `json:"last_seen"`
}

func statusMessage(ev presence.Event) []byte {
	b, _ := json.Marshal(statusJSON{
		Type: "user.status.changed", UserID: ev.UserID, Username: ev.Username,
		IsOnline: ev.Online, LastSeen: jsonTime(ev.LastSeen),
	})
	return b
}
