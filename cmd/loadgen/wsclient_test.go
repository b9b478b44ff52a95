package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// messages collects what a wsConn hands on.
type messages struct {
	mu   sync.Mutex
	got  []string
	more chan struct{}
}

func newMessages() *messages { return &messages{more: make(chan struct{}, 1024)} }

func (m *messages) add(_ *wsConn, msg []byte, _ int64) {
	m.mu.Lock()
	m.got = append(m.got, string(msg))
	m.mu.Unlock()
	m.more <- struct{}{}
}

// wait returns the first n messages, or fails after 5 s.
func (m *messages) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		m.mu.Lock()
		if len(m.got) >= n {
			got := append([]string(nil), m.got[:n]...)
			m.mu.Unlock()
			return got
		}
		m.mu.Unlock()
		select {
		case <-m.more:
		case <-deadline:
			t.Fatalf("got %d messages, want %d", len(m.got), n)
		}
	}
}

// TestWSClient runs the loadgen's client against gorilla's server, over
// real loopback sockets, with every frame length encoding, fragments,
// pings and both sides' closes.
func TestWSClient(t *testing.T) {
	serverConns := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{WriteBufferSize: 256}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection.ack"}`))
		serverConns <- c
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/?token=x"

	dial := func(t *testing.T) (*wsConn, *websocket.Conn, *messages, chan struct{}) {
		t.Helper()
		m, ended := newMessages(), make(chan struct{})
		c, err := dialWS(context.Background(), &net.Dialer{}, url, 5*time.Second, nil, []byte("connection.ack"), m.add, func() { close(ended) })
		if err == nil {
			err = c.start()
		}
		if err != nil {
			t.Fatal(err)
		}
		return c, <-serverConns, m, ended
	}

	t.Run("OK", func(t *testing.T) {
		c, s, m, ended := dial(t)
		defer c.Close()
		var want []string
		for _, n := range []int{0, 5, 125, 126, 200, 65535, 65536, 70000} {
			msg := fmt.Sprintf("%d:", n) + strings.Repeat("x", n)
			want = append(want, msg)
			if err := s.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		// Fragments: gorilla sends a message larger than its write buffer
		// in several frames, and a ping may come between them.
		w, _ := s.NextWriter(websocket.TextMessage)
		w.Write([]byte(strings.Repeat("f", 300)))
		w.Write([]byte(strings.Repeat("g", 700)))
		w.Close()
		want = append(want, strings.Repeat("f", 300)+strings.Repeat("g", 700))
		if got := m.wait(t, len(want)); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("got %d messages, not the ones sent", len(got))
		}

		// A ping is answered; a text message arrives masked and whole.
		pong := make(chan string, 1)
		s.SetPongHandler(func(p string) error { pong <- p; return nil })
		read := make(chan string, 1)
		go func() {
			_, p, _ := s.ReadMessage() // runs the pong handler, then reads the text
			read <- string(p)
		}()
		s.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second))
		select {
		case p := <-pong:
			if p != "are you there" {
				t.Fatalf("pong %q", p)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no pong")
		}
		if err := c.WriteText([]byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if p := <-read; p != `{"type":"ping"}` {
			t.Fatalf("server read %q", p)
		}

		// The server's close ends the connection.
		s.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"))
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("the server's close did not end the connection")
		}
	})

	t.Run("ServerGone", func(t *testing.T) {
		c, s, _, ended := dial(t)
		defer c.Close()
		s.NetConn().Close()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("a reset did not end the connection")
		}
	})

	t.Run("Close", func(t *testing.T) {
		c, s, _, ended := dial(t)
		c.Close()
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := s.ReadMessage(); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("server still connected after Close: %v", err)
		}
		select {
		case <-ended:
			t.Fatal("Close called onEnd")
		case <-time.After(50 * time.Millisecond):
		}
	})

	t.Run("ErrNoAck", func(t *testing.T) {
		if _, err := dialWS(context.Background(), &net.Dialer{}, url, 5*time.Second, nil, []byte("something else"), newMessages().add, nil); err == nil {
			t.Fatal("dialled without the first message wanted")
		}
		(<-serverConns).Close()
	})
}

// TestWSClient_Hello: for a protocol where the client speaks first (as
// Centrifugo's, centrifugo.go), dialWS sends hello after the handshake and
// before it waits for the server's first message.
func TestWSClient_Hello(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		c.WriteMessage(websocket.TextMessage, append([]byte("reply to "), msg...))
		c.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	c, err := dialWS(context.Background(), &net.Dialer{}, "ws"+strings.TrimPrefix(srv.URL, "http")+"/", 5*time.Second,
		[]byte(`{"id":1,"connect":{}}`), []byte(`reply to {"id":1,"connect":{}}`), newMessages().add, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestParseFrame feeds a stream of frames split at every point into two
// reads, and checks every message comes out whole and in order.
func TestParseFrame(t *testing.T) {
	frame := func(fin bool, op byte, p string) []byte {
		b := []byte{op}
		if fin {
			b[0] |= 0x80
		}
		switch {
		case len(p) < 126:
			b = append(b, byte(len(p)))
		case len(p) <= 0xffff:
			b = append(b, 126, byte(len(p)>>8), byte(len(p)))
		}
		return append(b, p...)
	}
	var stream []byte
	stream = append(stream, frame(true, opText, "one")...)
	stream = append(stream, frame(false, opText, "tw")...)
	stream = append(stream, frame(true, opPong, "")...)
	stream = append(stream, frame(true, opContinuation, "o")...)
	stream = append(stream, frame(true, opText, strings.Repeat("3", 300))...)
	stream = append(stream, frame(true, opText, "")...)
	want := "one|two|" + strings.Repeat("3", 300) + "|"
	for i := range len(stream) + 1 {
		var got []string
		c := &wsConn{onMessage: func(_ *wsConn, m []byte, _ int64) { got = append(got, string(m)) }}
		if err := c.feed(bytes.Clone(stream[:i]), 0); err != nil {
			t.Fatalf("split at %d: %v", i, err)
		}
		if err := c.feed(bytes.Clone(stream[i:]), 0); err != nil {
			t.Fatalf("split at %d: %v", i, err)
		}
		if strings.Join(got, "|") != want || len(c.part) != 0 {
			t.Fatalf("split at %d: got %q, %d bytes left", i, got, len(c.part))
		}
	}

	t.Run("Errors", func(t *testing.T) {
		for name, b := range map[string][]byte{
			"Masked":          {0x81, 0x81, 1, 2, 3, 4, 'x'},
			"Reserved":        {0xC1, 0x00},
			"LongControl":     append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...),
			"BareContinue":    {0x80, 0x00},
			"UnknownOpcode":   {0x83, 0x00},
			"TextInFragments": {0x01, 0x01, 'a', 0x81, 0x01, 'b'},
		} {
			c := &wsConn{onMessage: func(*wsConn, []byte, int64) {}}
			if err := c.feed(b, 0); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}

// TestSSEClient reads a stream the way the server sends one (its own
// bytes after the header, the connection's end ending it), with lines
// split across writes, and refuses what it cannot read.
func TestSSEClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/denied":
			http.Error(w, "no", http.StatusUnauthorized)
			return
		case "/chunked":
			w.Write([]byte("data: x\n\n"))
			w.(http.Flusher).Flush()
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		conn, brw, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nretry: 1500\n\nevent: presence\ndata: <p data-presence")
		brw.Flush()
		time.Sleep(20 * time.Millisecond)
		brw.WriteString("-total=\"7\">\r\n\n: keep-alive\n\n")
		brw.Flush()
	}))
	defer srv.Close()

	t.Run("OK", func(t *testing.T) {
		var mu sync.Mutex
		var lines []string
		ended := make(chan struct{})
		c, err := dialSSE(context.Background(), &net.Dialer{}, srv.URL+"/stream", "Bearer tok", 5*time.Second,
			func(l []byte) { mu.Lock(); lines = append(lines, string(l)); mu.Unlock() }, func() { close(ended) })
		if err == nil {
			err = c.start()
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("the stream's end was not seen")
		}
		mu.Lock()
		defer mu.Unlock()
		want := []string{"retry: 1500", "", "event: presence", `data: <p data-presence-total="7">`, "", ": keep-alive", ""}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Fatalf("lines %q, want %q", lines, want)
		}
	})

	t.Run("ErrStatus", func(t *testing.T) {
		_, err := dialSSE(context.Background(), &net.Dialer{}, srv.URL+"/denied", "", 5*time.Second, func([]byte) {}, nil)
		var se statusError
		if !errors.As(err, &se) || !strings.HasPrefix(se.status, "401") {
			t.Fatalf("err %v, want a 401 statusError", err)
		}
	})

	t.Run("ErrChunked", func(t *testing.T) {
		if _, err := dialSSE(context.Background(), &net.Dialer{}, srv.URL+"/chunked", "", 5*time.Second, func([]byte) {}, nil); err == nil {
			t.Fatal("read a chunked response as a plain stream")
		}
	})
}

func TestHeaderValue(t *testing.T) {
	head := []byte("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nSEC-WEBSOCKET-ACCEPT:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX: a:b")
	if v := headerValue(head, "Sec-WebSocket-Accept"); v != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("accept = %q", v)
	}
	if v := headerValue(head, "X"); v != "a:b" {
		t.Errorf("X = %q", v)
	}
	if v := headerValue(head, "HTTP/1.1 101 Switching Protocols"); v != "" {
		t.Errorf("the status line read as a header: %q", v)
	}
	if acceptKey("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455, 1.3
		t.Error("acceptKey differs from the RFC's example")
	}
}
