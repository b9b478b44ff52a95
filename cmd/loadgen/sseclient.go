package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// sseConn is one widget stream (Server-Sent Events), read by the worker's
// reader like the WebSockets (reactor_linux.go) and handed on line by
// line.
type sseConn struct {
	*readConn

	// onLine gets each line of the stream, without its end; valid only
	// during the call. Called by the reader.
	onLine func(line []byte)

	part []byte // a line not yet ended
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
	rc, head, rest, err := dialHTTP(ctx, d, u.Host, "GET "+u.RequestURI()+" HTTP/1.1\r\nHost: "+u.Host+
		"\r\nAccept: text/event-stream\r\nAuthorization: "+auth+"\r\n\r\n", time.Now().Add(timeout))
	if err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	nc := rc.nc
	status, _, _ := bytes.Cut(head, []byte("\r\n"))
	if _, code, _ := bytes.Cut(status, []byte(" ")); !bytes.HasPrefix(code, []byte("200 ")) {
		nc.Close()
		return nil, statusError{string(code)}
	}
	// The server writes a stream's bytes as they are: over HTTP/1.1 it
	// ends the response by closing the connection, never with chunks.
	// Refuse what this reader would misread.
	if headerValue(head, "Transfer-Encoding") != "" {
		nc.Close()
		return nil, errors.New("sse: a chunked stream; this reader takes only a plain one")
	}
	nc.SetDeadline(time.Time{})
	rc.onEnd = onEnd
	c := &sseConn{readConn: rc, onLine: onLine}
	if err := c.ingest(rest, 0, 0); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// start hands c to its reader. Set up whatever onLine and onEnd need
// before: from now on they may run.
func (c *sseConn) start() error { return c.startAs(c) }

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
