package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// source is a connection the worker's reader reads (reactor_linux.go;
// elsewhere a goroutine per connection).
type source interface {
	rawConn() syscall.RawConn
	netConn() net.Conn
	// ingest takes bytes read at now (unix ns) that the kernel stamped
	// as received at stamp (0: no stamp). An error ends the connection.
	ingest(p []byte, now, stamp int64) error
	// end closes the connection after a read failed or ingest refused.
	end()
}

// readConn is what the tabs' WebSocket and stream clients share: a TCP
// connection opened with one HTTP/1.1 request, then handed to the
// worker's reader, and how it ends.
type readConn struct {
	nc  *net.TCPConn
	raw syscall.RawConn
	// onEnd is called once when the server or the network ended the
	// connection (not after Close).
	onEnd func()

	closed  atomic.Bool
	endOnce sync.Once
	id      atomic.Uint64 // the reader's key (startReading)
}

// dialHTTP connects to host, sends req (a whole HTTP/1.1 request) and
// reads the response's head. It returns the head (status line and
// headers, without the blank line) and the bytes that came after it. The
// connection keeps the deadline until the caller clears it; on error it
// is closed.
func dialHTTP(ctx context.Context, d *net.Dialer, host, req string, deadline time.Time) (c *readConn, head, rest []byte, err error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c0, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, nil, err
	}
	nc := c0.(*net.TCPConn)
	raw, err := nc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	nc.SetDeadline(deadline)
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		if err != nil {
			nc.Close()
			return nil, nil, nil, fmt.Errorf("response: %w", err)
		}
		head = append(head, buf[:n]...)
		if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
			return &readConn{nc: nc, raw: raw}, head[:i], head[i+4:], nil
		}
		if len(head) > 16<<10 {
			nc.Close()
			return nil, nil, nil, errors.New("response header too long")
		}
	}
}

// headerValue returns the value of the header name in an HTTP response
// head (status line and header lines), matching the name in any case.
func headerValue(head []byte, name string) string {
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), name) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

func (c *readConn) rawConn() syscall.RawConn { return c.raw }
func (c *readConn) netConn() net.Conn        { return c.nc }

// startAs hands s, whose connection c is, to the worker's reader. Set up
// whatever its callbacks need before: from now on they may run.
func (c *readConn) startAs(s source) error {
	if err := startReading(s, &c.id); err != nil {
		c.nc.Close()
		return err
	}
	return nil
}

// Close closes the connection without a goodbye, as a tab that is killed
// does. onEnd is not called.
func (c *readConn) Close() error {
	c.closed.Store(true)
	stopReading(&c.id, c.raw)
	return c.nc.Close()
}

// end is the reader's: the connection is over.
func (c *readConn) end() {
	c.endOnce.Do(func() {
		stopReading(&c.id, c.raw)
		c.nc.Close()
		if !c.closed.Load() && c.onEnd != nil {
			c.onEnd()
		}
	})
}
