package handlers_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
)

// browserAccept is what Chromium sends when a page navigates.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

// TestShutdownRetryAfter: a handshake or stream refused because the server
// is shutting down gets 503 with Retry-After, as PROTOCOL.md says.
func TestShutdownRetryAfter(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tok := ts.MustCreateUser(t, "alice")
	if err := ts.Handler.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tok), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("upgrade after shutdown: %v %v, want 503", err, respStatus(resp))
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Fatalf("503 at shutdown without Retry-After: %v", resp.Header)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/widgets/online-users/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("stream after shutdown: %d Retry-After=%q, want 503 with it", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestJSONErrorsWhateverAccept: /ws/ and /api/ answer errors with
// {"detail": ...} even to a browser that asks for HTML first.
func TestJSONErrorsWhateverAccept(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tok := ts.MustCreateUser(t, "alice")
	h := http.Header{"Accept": {browserAccept}}
	for _, tc := range []struct {
		path string
		code int
		hdr  http.Header
	}{
		{"/ws/user-status/", 401, h},                // no credentials
		{"/ws/user-status/?token=prs_nope", 401, h}, // bad token
		{"/ws/user-status/", 403, http.Header{"Accept": {browserAccept}, "Origin": {"https://evil.example"}}}, // foreign origin
		{"/ws/nothing-here", 404, h},
		{"/api/users/online/", 401, h},
		{"/api/nothing-here/", 404, h},
		{"/ws/user-status/?token=" + tok, 400, http.Header{"Accept": {browserAccept}, "Connection": {"keep-alive"}}}, // not an upgrade
	} {
		req, _ := http.NewRequest("GET", ts.URL+tc.path, nil)
		for k, v := range tc.hdr {
			req.Header[k] = v
		}
		if req.Header.Get("Connection") == "" {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || derr != nil || body["detail"] == nil ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s: %d %s %v %v, want %d with JSON {\"detail\"}", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, derr, tc.code)
		}
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.2, ...): a distinct client address to the server.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// tryLogin asks for a token from client and returns the status and
// Retry-After.
func tryLogin(tb testing.TB, client *http.Client, base, name, password string) (int, string) {
	tb.Helper()
	resp, err := client.Post(base+"/api/auth/token/", "application/json",
		strings.NewReader(`{"username":"`+name+`","password":"`+password+`"}`))
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestLoginLockout: failures count per (account, address), so an attacker
// hammering alice's name from one address is refused while alice, from an
// address with no failures, signs in; a guessing attack spread over many
// addresses still hits the account's global brake. Time is the fake clock.
func TestLoginLockout(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	attacker, owner := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	for i := range 10 {
		if code, _ := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 401 {
			t.Fatalf("attacker attempt %d: %d, want 401", i, code)
		}
	}
	if code, ra := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 429 || ra == "" {
		t.Fatalf("attacker's 11th attempt: %d Retry-After=%q, want 429 with it", code, ra)
	}
	if code, _ := tryLogin(t, attacker, ts.URL, "alice", "password1"); code != 429 {
		t.Fatalf("attacker with the right password while locked: %d, want 429", code)
	}
	// The owner, from her own address, is not locked out; right passwords
	// do not count, however many.
	for i := range 15 {
		if code, _ := tryLogin(t, owner, ts.URL, "ALICE", "password1"); code != 200 {
			t.Fatalf("owner's sign-in %d from a fresh address while alice's name is hammered elsewhere: %d, want 200", i, code)
		}
	}
	// The form login shares the budget: attacker still refused, owner in.
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if code, _ := do(t, attacker, "POST", ts.URL+"/login", "username=alice&password=password1", form); code != 429 {
		t.Fatalf("attacker's form login: %d, want 429", code)
	}
	// A minute later the attacker has one more guess, no more.
	ts.Clock.Advance(time.Minute)
	if code, _ := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 401 {
		t.Fatalf("attacker after a minute: %d, want 401", code)
	}
	if code, _ := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 429 {
		t.Fatalf("attacker's second guess after a minute: %d, want 429", code)
	}

	// Distributed: ten failures from each of many addresses. The brake
	// stops the attack after at most its burst of failures in all.
	failures, braked := 11, ""
	for i := 10; i < 60 && braked == ""; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		c := clientFrom(ip)
		for range 10 {
			code, ra := tryLogin(t, c, ts.URL, "alice", "guess-guess")
			if code == 429 {
				if ra == "" {
					t.Fatal("429 without Retry-After")
				}
				braked = ip
				break
			}
			if code != 401 {
				t.Fatalf("from %s: %d", ip, code)
			}
			failures++
		}
	}
	if braked == "" {
		t.Fatalf("%d failures from 50 addresses and no brake", failures)
	}
	if failures > 210 {
		t.Fatalf("the brake let %d failures through", failures)
	}
	t.Logf("global brake after %d failures in all, at %s", failures, braked)
	// Another account is not affected.
	ts.MustCreateUser(t, "bob")
	if code, _ := tryLogin(t, clientFrom(braked), ts.URL, "bob", "password1"); code != 200 {
		t.Fatalf("bob from the braked address: %d, want 200", code)
	}
	// The brake refills: an hour on, alice signs in from a fresh address.
	ts.Clock.Advance(time.Hour)
	if code, _ := tryLogin(t, clientFrom("127.0.0.99"), ts.URL, "alice", "password1"); code != 200 {
		t.Fatalf("alice an hour later: %d, want 200", code)
	}
}
