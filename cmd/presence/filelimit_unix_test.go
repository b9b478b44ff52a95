//go:build unix

package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// setFileLimit lowers the process's file limit (soft and hard) to n; the
// child server of TestServe_OutOfFiles calls it before run.
func setFileLimit(n string) {
	v, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		panic(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: v, Max: v}); err != nil {
		panic(err)
	}
}

// fillUntilRefused opens WebSockets for token until the server refuses one
// and returns the open ones and the refusal.
func fillUntilRefused(t *testing.T, base, token string, max int) ([]*websocket.Conn, *http.Response, []byte) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws/user-status/?events=0&token=" + token
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	var open []*websocket.Conn
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	for range max {
		c, resp, err := d.Dial(u, nil)
		if err != nil {
			if resp == nil {
				t.Fatalf("after %d sockets: %v, want an HTTP refusal", len(open), err)
			}
			body, _ := io.ReadAll(resp.Body)
			return open, resp, body
		}
		if _, _, err := c.ReadMessage(); err != nil { // the ack
			t.Fatalf("after %d sockets: ack: %v", len(open), err)
		}
		open = append(open, c)
	}
	t.Fatalf("%d sockets and no refusal", max)
	return nil, nil, nil
}

// pingOK sends a ping on c and waits for the pong.
func pingOK(t *testing.T, c *websocket.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("held socket: %v", err)
		}
		if strings.Contains(string(msg), `"pong"`) {
			return
		}
	}
}

// TestServe_OutOfFiles runs the server with a file limit of 128. With the
// default cap, long-lived connections are refused (503) below the limit;
// with the cap off, the process really runs out of descriptors and the
// listener's reserve descriptor still answers 503. Either way held sockets
// keep working and new ones are accepted once some close.
func TestServe_OutOfFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		metric string
	}{
		{"DefaultCap", nil, "presence_connections_refused_at_capacity_total"},
		{"Exhausted", []string{"--max-conns", "0"}, "presence_connections_refused_no_fds_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := fastArgs(dataDir(t), append([]string{"--max-conns-per-user", "0", "--log-level", "error"}, tc.args...)...)
			p := startProcess(t, args, "PRESENCE_TEST_NOFILE=128")
			tok := mustToken(t, p.base, "alice")

			open, resp, body := fillUntilRefused(t, p.base, tok, 200)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("refusal after %d sockets: %s (Retry-After %q) %s", len(open), resp.Status, resp.Header.Get("Retry-After"), body)
			}
			t.Logf("refused with %s after %d sockets: %s", resp.Status, len(open), body)
			pingOK(t, open[0])
			pingOK(t, open[len(open)-1])

			for _, c := range open[:32] {
				c.Close()
			}
			open = open[32:]
			eventually(t, "a new socket to be accepted", 10*time.Second, func() bool {
				c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(p.base, "http")+"/ws/user-status/?events=0&token="+tok, nil)
				if err != nil {
					return false
				}
				c.Close()
				return true
			})
			if n := metric(t, p.base, tc.metric); n < 1 {
				t.Fatalf("%s = %v, want ≥ 1", tc.metric, n)
			}
		})
	}
}
