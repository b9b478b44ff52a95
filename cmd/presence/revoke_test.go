package main

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestServe_RevokeTokenFromCLI: `presence user revoke-token`, a separate
// run writing the same database, ends the token's WebSocket (1008) and an
// embed token's widget streams, with the real clock: the server finds the
// revocation at its next poll (every 500 ms).
func TestServe_RevokeTokenFromCLI(t *testing.T) {
	data := dataDir(t)
	base, _ := inProcess(t, fastArgs(data))
	tok := mustToken(t, base, "alice")
	conn := mustDial(t, base, tok)
	closed := make(chan int, 1)
	go readUntilClosed(conn, closed)
	other := mustDial(t, base, mustToken(t, base, "bob"))

	out, err := runCmd(t, "", nil, "user", "revoke-token", "--data", data, tok)
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke-token: %q %v", out, err)
	}
	start := time.Now()
	select {
	case code := <-closed:
		if code != websocket.ClosePolicyViolation {
			t.Fatalf("close code = %d, want 1008", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("socket still open 5 s after the token was revoked")
	}
	t.Logf("API token: socket closed %v after revoke-token returned", time.Since(start))
	other.WriteJSON(map[string]string{"type": "ping"})
	for {
		var m map[string]any
		if err := other.ReadJSON(&m); err != nil {
			t.Fatalf("bob's socket: %v", err)
		}
		if m["type"] == "pong" {
			break
		}
	}

	// An embed token: every visitor's stream ends.
	embed, err := runCmd(t, "", nil, "user", "embed-token", "--data", data, "alice")
	if err != nil {
		t.Fatal(err)
	}
	embed = strings.TrimSpace(embed)
	ended := make(chan struct{}, 2)
	for range 2 {
		resp, err := http.Get(base + "/widgets/online-users/stream?embed_token=" + url.QueryEscape(embed))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", err, resp)
		}
		t.Cleanup(func() { resp.Body.Close() })
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
			}
			ended <- struct{}{}
		}()
	}
	if out, err := runCmd(t, "", nil, "user", "revoke-token", "--data", data, embed); err != nil {
		t.Fatalf("revoke-token: %q %v", out, err)
	}
	start = time.Now()
	for range 2 {
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("embed stream still open 5 s after the token was revoked")
		}
	}
	t.Logf("embed token: both streams ended %v after revoke-token returned", time.Since(start))
}
