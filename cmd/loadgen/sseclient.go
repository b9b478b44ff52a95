package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// sseConn is one widget stream (Server-Sent Events), read by the worker's
// reader like the WebSockets (reactor_linux.go) and handed on line by
// line.
type sseConn struct {
	nc  *net.TCPConn
	raw syscall.RawConn

	// onLine gets each line of the stream, without its end; valid only
	// during the call. Called by the reader.
	onLine func(line []byte)
	// onEnd is called once when the server or the network ended the
	// stream (not after Close).
	onEnd func()

	part    []byte // a line not yet ended
	closed  atomic.Bool
	endOnce sync.Once
	id      atomic.Uint64
}

// maxSSELine bounds a line of the stream.
const maxSSELine = 1 << 20

// dialSSE opens the stream at rawURL (http://) with the Authorization
// header auth. A status other than 200 is a statusError. timeout bounds
// the request until the response's header. Lines that came with the
// header are handed on before dialSSE returns. Caller must call start
// (or Close).
func dialSSE(ctx context.Context, d *net.Dialer, rawURL, auth string, timeout time.Duration, onLine func([]byte), onEnd func()) (*sseConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("sse: bad url %q", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c0, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	nc := c0.(*net.TCPConn)
	raw, err := nc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("sse: %w", err)
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAccept: text/event-stream\r\nAuthorization: " + auth + "\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("sse: %w", err)
	}
	buf := make([]byte, 4096)
	var head []byte
	for {
		n, err := nc.Read(buf)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("sse: response: %w", err)
		}
		head = append(head, buf[:n]...)
		i := bytes.Index(head, []byte("\r\n\r\n"))
		if i < 0 {
			if len(head) > 16<<10 {
				nc.Close()
				return nil, errors.New("sse: response header too long")
			}
			continue
		}
		status, _, _ := bytes.Cut(head, []byte("\r\n"))
		if _, code, _ := bytes.Cut(status, []byte(" ")); !bytes.HasPrefix(code, []byte("200 ")) {
			nc.Close()
			return nil, statusError{string(code)}
		}
		// The server writes a stream's bytes as they are: over HTTP/1.1
		// it ends the response by closing the connection, never with
		// chunks. Refuse what this reader would misread.
		if bytes.Contains(bytes.ToLower(head[:i]), []byte("\r\ntransfer-encoding:")) {
			nc.Close()
			return nil, errors.New("sse: a chunked stream; this reader takes only a plain one")
		}
		head = head[i+4:]
		break
	}
	nc.SetDeadline(time.Time{})
	c := &sseConn{nc: nc, raw: raw, onLine: onLine, onEnd: onEnd}
	if err := c.ingest(head, 0, 0); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// start hands c to its reader. Set up whatever onLine and onEnd need
// before: from now on they may run.
func (c *sseConn) start() error {
	if err := startReading(c, &c.id); err != nil {
		c.nc.Close()
		return fmt.Errorf("sse: %w", err)
	}
	return nil
}

func (c *sseConn) rawConn() syscall.RawConn { return c.raw }
func (c *sseConn) netConn() net.Conn        { return c.nc }

// ingest hands on every line p ends (a line ends at LF; a CR before it
// is dropped).
func (c *sseConn) ingest(p []byte, _, _ int64) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(c.part)+len(p) > maxSSELine {
				return errors.New("sse: line too long")
			}
			c.part = append(c.part, p...)
			return nil
		}
		line := p[:i]
		if len(c.part) > 0 {
			c.part = append(c.part, line...)
			line = c.part
		}
		c.onLine(bytes.TrimSuffix(line, []byte("\r")))
		c.part = c.part[:0]
		p = p[i+1:]
	}
	return nil
}

// Close closes the stream. onEnd is not called.
func (c *sseConn) Close() error {
	c.closed.Store(true)
	stopReading(&c.id, c.raw)
	return c.nc.Close()
}

func (c *sseConn) end() {
	c.endOnce.Do(func() {
		stopReading(&c.id, c.raw)
		c.nc.Close()
		if !c.closed.Load() && c.onEnd != nil {
			c.onEnd()
		}
	})
}
