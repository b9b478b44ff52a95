package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// The tabs' WebSockets are the loadgen's own minimal RFC 6455 client:
// reading is a parser fed with whatever bytes arrived, so that one reader
// (reactor_linux.go) can serve every socket of a worker with one read
// system call per arrival, where a goroutine per socket costs a wake-up,
// the read, and a second read that finds nothing before it parks. The
// loadgen shares the machine's cores with the server it measures; what
// it spends reading is taken from the server's fan-out (docs/PERFORMANCE.md,
// issue 16).

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxClientMessage bounds what the client buffers for one message.
const maxClientMessage = 16 << 20

// wsConn is one client WebSocket. Its reader alone touches the parser's
// state; writes take wmu.
type wsConn struct {
	*readConn

	// onMessage gets each text or binary message with when it was read
	// (unix ns). Called by the reader; msg is valid only during the call.
	onMessage func(c *wsConn, msg []byte, now int64)

	part []byte // the bytes of a frame not yet complete
	frag []byte // the payloads of a fragmented message so far
	rx   atomic.Int64
	// closeCode is the status code of the server's close frame (0: none
	// came, or it had no code).
	closeCode atomic.Uint32

	wmu sync.Mutex
}

var errServerClosed = errors.New("websocket: closed by the server")

// ingest keeps the read's kernel stamp, 0 when it had none (never an
// earlier read's, which would make a message seem to arrive early). A
// read that takes several segments carries the last one's stamp: late,
// never early, for the messages of the first.
func (c *wsConn) ingest(p []byte, now, stamp int64) error {
	c.rx.Store(stamp)
	return c.feed(p, now)
}

// acceptKey is Sec-WebSocket-Accept for key (RFC 6455, 4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// dialWS opens a WebSocket to rawURL (ws://), sends hello as a text
// message unless it is empty (for protocols where the client speaks
// first), reads the server's first message and checks it contains want;
// every later message goes to onMessage, from the reader that start
// starts. Messages that came with the first one are handed on before
// dialWS returns. timeout bounds the handshake and the first message.
// Caller must call start (or Close).
func dialWS(ctx context.Context, d *net.Dialer, rawURL string, timeout time.Duration, hello, want []byte, onMessage func(*wsConn, []byte, int64), onEnd func()) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "ws" {
		return nil, fmt.Errorf("ws dial: bad url %q", rawURL)
	}
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	rc, head, rest, err := dialHTTP(ctx, d, u.Host, "GET "+u.RequestURI()+" HTTP/1.1\r\nHost: "+u.Host+
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "+key+
		"\r\nSec-WebSocket-Version: 13\r\n\r\n", time.Now().Add(timeout))
	if err != nil {
		return nil, fmt.Errorf("ws dial: %w", err)
	}
	nc := rc.nc
	if status, _, _ := bytes.Cut(head, []byte("\r\n")); !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) || headerValue(head, "Sec-WebSocket-Accept") != acceptKey(key) {
		nc.Close()
		return nil, fmt.Errorf("ws dial: handshake: %q", status)
	}
	enableRxStamps(rc.raw)
	rc.onEnd = onEnd
	c := &wsConn{readConn: rc}
	if len(hello) > 0 {
		if err := c.WriteText(hello); err != nil {
			nc.Close()
			return nil, fmt.Errorf("ws dial: hello: %w", err)
		}
	}

	// The first message, then onMessage for the rest (which may have
	// come in the same read).
	var first []byte
	gotFirst := false
	c.onMessage = func(_ *wsConn, msg []byte, now int64) {
		first, gotFirst = append([]byte(nil), msg...), true
		c.onMessage = onMessage
	}
	if err := c.feed(rest, time.Now().UnixNano()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("ws dial: %w", err)
	}
	buf := make([]byte, 4096)
	for !gotFirst {
		n, err := nc.Read(buf)
		if err == nil {
			err = c.feed(buf[:n], time.Now().UnixNano())
		}
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("ws dial: first message: %w", err)
		}
	}
	if !bytes.Contains(first, want) {
		nc.Close()
		return nil, fmt.Errorf("ws dial: first message %q, want %q", first, want)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// start hands c to its reader. Set up whatever onMessage and onEnd need
// before: from now on they may run.
func (c *wsConn) start() error { return c.startAs(c) }

// parseFrame parses the frame at the start of b, which comes from a
// server and so is unmasked. n is 0 when b holds only part of it.
func parseFrame(b []byte) (fin bool, op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return false, 0, nil, 0, nil
	}
	if b[0]&0x70 != 0 {
		return false, 0, nil, 0, errors.New("websocket: reserved bits set")
	}
	if b[1]&0x80 != 0 {
		return false, 0, nil, 0, errors.New("websocket: masked frame from the server")
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0f
	size, h := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return false, 0, nil, 0, nil
		}
		size, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return false, 0, nil, 0, nil
		}
		size, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	if size > maxClientMessage {
		return false, 0, nil, 0, fmt.Errorf("websocket: frame of %d bytes", size)
	}
	if op >= opClose && (!fin || size > 125) {
		return false, 0, nil, 0, errors.New("websocket: bad control frame")
	}
	if uint64(len(b)-h) < size {
		return false, 0, nil, 0, nil
	}
	end := h + int(size)
	return fin, op, b[h:end], end, nil
}

// feed parses the bytes that arrived at now and hands on each complete
// message. An error (a protocol error, or the server's close frame) ends
// the connection.
func (c *wsConn) feed(data []byte, now int64) error {
	b := data
	if len(c.part) > 0 {
		c.part = append(c.part, data...)
		b = c.part
	}
	for {
		fin, op, payload, n, err := parseFrame(b)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		b = b[n:]
		switch op {
		case opText, opBinary, opContinuation:
			if op != opContinuation && c.frag != nil {
				return errors.New("websocket: new message inside a fragmented one")
			}
			if op == opContinuation && c.frag == nil {
				return errors.New("websocket: continuation without a message")
			}
			if fin && c.frag == nil {
				c.onMessage(c, payload, now)
				continue
			}
			if len(c.frag)+len(payload) > maxClientMessage {
				return errors.New("websocket: message too large")
			}
			c.frag = append(c.frag, payload...)
			if c.frag == nil {
				c.frag = []byte{} // an empty first fragment still starts a message
			}
			if fin {
				c.onMessage(c, c.frag, now)
				c.frag = nil
			}
		case opPing:
			p := append([]byte(nil), payload...)
			go c.writeFrame(opPong, p)
		case opPong:
		case opClose:
			if len(payload) >= 2 {
				c.closeCode.Store(uint32(binary.BigEndian.Uint16(payload)))
			}
			c.replyClose()
			return errServerClosed
		default:
			return fmt.Errorf("websocket: opcode %d", op)
		}
	}
	// Keep what is left of an unfinished frame (b may alias part: append
	// copies with memmove); give back a large frame's buffer once done.
	if len(b) == 0 && cap(c.part) > 64<<10 {
		c.part = nil
		return nil
	}
	c.part = append(c.part[:0], b...)
	return nil
}

// replyClose answers the server's close frame if it can at once: the
// reader serves many sockets and must not wait behind a writer of this
// one, nor for a peer that stopped reading.
func (c *wsConn) replyClose() {
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.nc.Write([]byte{0x80 | opClose, 0x80, 0, 0, 0, 0}) // empty, masked with zeros
}

// WriteText sends p as one text message.
func (c *wsConn) WriteText(p []byte) error { return c.writeFrame(opText, p) }

// writeFrame sends one masked frame, as a client must.
func (c *wsConn) writeFrame(op byte, p []byte) error {
	f := make([]byte, 0, 14+len(p))
	f = append(f, 0x80|op)
	switch {
	case len(p) < 126:
		f = append(f, 0x80|byte(len(p)))
	case len(p) <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(len(p)))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(len(p)))
	}
	var mask [4]byte
	rand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, b := range p {
		f = append(f, b^mask[i&3])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(f)
	return err
}
