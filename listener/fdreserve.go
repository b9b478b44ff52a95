// Package listener holds net.Listener wrappers for the server: today the
// one that keeps a file descriptor in reserve so that a process out of
// descriptors still answers 503 instead of leaving clients hanging.
package listener

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// refusal is what a client accepted on the reserve descriptor is told.
var refusal = func() string {
	body := `{"detail":"server at capacity, try again soon"}`
	return "HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json\r\n" +
		"Retry-After: 5\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// fdReserveListener keeps one file descriptor in reserve. When accept fails
// because the process has none left (EMFILE, ENFILE), it frees the reserve,
// accepts the waiting client and, if descriptors are still short, answers
// it 503 with Retry-After and closes it. Clients get a clear refusal
// instead of hanging in the kernel's accept queue, and connections already
// held are not touched. --max-conns normally refuses long-lived connections
// before this; the reserve covers what the cap does not count (ordinary
// requests, a cap set too high).
type fdReserveListener struct {
	net.Listener
	log *slog.Logger

	mu     sync.Mutex
	spare  *os.File // nil while used or when it could not be reopened
	closed bool

	shed    *atomic.Int64 // clients refused for lack of descriptors
	lastLog atomic.Int64  // unix ns of the last warning
}

// WithFDReserve wraps ln so that when the process runs out of file
// descriptors, clients waiting to connect are answered 503 with Retry-After
// instead of hanging in the accept queue; each one is counted in shed.
// Closing the returned listener closes ln.
func WithFDReserve(ln net.Listener, log *slog.Logger, shed *atomic.Int64) net.Listener {
	l := &fdReserveListener{Listener: ln, log: log, shed: shed}
	l.restoreSpare()
	return l
}

// Accept implements net.Listener.
func (l *fdReserveListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.restoreSpare()
			return c, nil
		}
		if !outOfFiles(err) {
			return nil, err
		}
		c, ok := l.acceptOnReserve()
		if !ok {
			if l.restoreSpare() {
				continue // a descriptor came free: use it as the reserve
			}
			// No reserve to free: http.Server logs, backs off and retries.
			return nil, err
		}
		if c != nil {
			return c, nil
		}
	}
}

// acceptOnReserve frees the reserve and accepts one client. It returns the
// client if descriptors turned out to be available again (the reserve is
// back), or nil after refusing it; ok is false when there was no reserve.
func (l *fdReserveListener) acceptOnReserve() (c net.Conn, ok bool) {
	l.mu.Lock()
	spare := l.spare
	l.spare = nil
	l.mu.Unlock()
	if spare == nil {
		return nil, false
	}
	spare.Close()
	c, err := l.Listener.Accept()
	if err != nil {
		l.restoreSpare()
		return nil, true
	}
	if l.restoreSpare() {
		return c, true // load dropped meanwhile: serve it
	}
	l.shed.Add(1)
	if now := time.Now().UnixNano(); now-l.lastLog.Load() > int64(10*time.Second) {
		l.lastLog.Store(now)
		l.log.Warn("out of file descriptors: refusing new connections with 503",
			"refused_total", l.shed.Load())
	}
	go l.refuse(c)
	return nil, true
}

// refuse reads the client's request head (so closing does not reset the
// connection before the answer is read), answers 503 and closes.
func (l *fdReserveListener) refuse(c net.Conn) {
	defer l.restoreSpare()
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	br := bufio.NewReaderSize(io.LimitReader(c, 8<<10), 512)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil || len(line) <= 2 { // blank line ends the head
			break
		}
	}
	io.WriteString(c, refusal)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// restoreSpare reopens the reserve if it is missing and reports whether it
// is held.
func (l *fdReserveListener) restoreSpare() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.spare == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return false
		}
		l.spare = f
	}
	return true
}

// Close closes the listener and the reserve.
func (l *fdReserveListener) Close() error {
	l.mu.Lock()
	l.closed = true
	if l.spare != nil {
		l.spare.Close()
		l.spare = nil
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
