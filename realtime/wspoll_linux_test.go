package realtime

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestPoller_NoGoroutinePerSocket: on Linux a socket waiting for its
// client's next message holds no goroutine (wspoll_linux.go), and it
// still answers at once when a message comes.
func TestPoller_NoGoroutinePerSocket(t *testing.T) {
	s := startHub(t, 64)
	const n = 100
	socks := make([]*testSocket, n)
	socks[0] = s.dial(t, "id=0&events=0")
	socks[0].ping()
	runtime.GC()
	before := runtime.NumGoroutine()
	for i := 1; i < n; i++ {
		socks[i] = s.dial(t, "id=1&events=0")
	}
	settled := func() bool { return runtime.NumGoroutine() <= before+n+5 }
	waitFor(t, "the hub's goroutines to settle", 5*time.Second, settled)
	// The test's own reader of each socket is one goroutine; the server's
	// side adds none.
	if g := runtime.NumGoroutine() - before; g > n+5 {
		t.Fatalf("%d sockets added %d goroutines, want about %d (the test's readers)", n-1, g, n-1)
	}
	for _, c := range socks {
		c.ping()
	}
}

// TestPoller_CloseGrace: a socket cut with a close frame whose client
// never answers it is closed after closeGrace; one whose client is gone
// (no close frame, just the end of TCP) ends at once.
func TestPoller_CloseGrace(t *testing.T) {
	s := startHub(t, 64)
	// A raw client: it reads nothing after the upgrade and never answers.
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/?id=1&events=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitFor(t, "the socket to open", 5*time.Second, func() bool { return s.hub.Len() == 1 })
	for _, cl := range s.hub.Connections() {
		s.hub.CloseConnection(cl.ID, 1, "test")
	}
	start := time.Now()
	waitFor(t, "the unanswered socket to be closed", 5*time.Second, func() bool { return s.hub.Len() == 0 })
	if d := time.Since(start); d < closeGrace/2 {
		t.Fatalf("closed after %v: the close reply was not waited for", d)
	}

	gone, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/?id=2&events=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the socket to open", 5*time.Second, func() bool { return s.hub.Len() == 1 })
	gone.UnderlyingConn().(*net.TCPConn).SetLinger(0) // a reset, as a crashed client's kernel sends
	gone.Close()
	waitFor(t, "the reset socket to end", 5*time.Second, func() bool { return s.hub.Len() == 0 })
}

// TestPoller_ClientGoneAtOnce: clients that reset the connection right
// after asking for the upgrade, before or while the ack is written, end
// their sockets quietly: no error logged, nothing left open.
func TestPoller_ClientGoneAtOnce(t *testing.T) {
	s := startHub(t, 64)
	var logs lockedLog
	s.hub.logger = slog.New(slog.NewTextHandler(&logs, nil))
	addr := strings.TrimPrefix(s.URL, "http://")
	for i := range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /?id=%d&events=0 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", i%50+1, addr)
		for start, d := time.Now(), time.Duration(i%8)*50*time.Microsecond; time.Since(start) < d; {
		}
		c.(*net.TCPConn).SetLinger(0) // a reset
		c.Close()
	}
	waitFor(t, "every socket to end", 5*time.Second, func() bool { return s.hub.Len() == 0 })
	if out := logs.String(); out != "" {
		t.Fatalf("logged for clients that left:\n%s", out)
	}
}

// lockedLog is a log destination for several goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
