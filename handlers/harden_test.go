package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

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
