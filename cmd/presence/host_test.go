package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

const testJWTSecret = "the-host-sites-shared-secret-32-bytes+"

// djangoToken signs an access token exactly as djangorestframework-
// simplejwt's defaults do: HS256 over token_type, exp, iat, jti, user_id.
func djangoToken(tb testing.TB, userID int) string {
	tb.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "access",
		"exp":        now.Add(5 * time.Minute).Unix(),
		"iat":        now.Unix(),
		"jti":        "0b5bd2a0c3f04b1b9a4f7f7d2f1c9e11",
		"user_id":    userID,
	}).SignedString([]byte(testJWTSecret))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// dialAck dials the presence socket with ?token= and returns it with its ack.
func dialAck(tb testing.TB, base, token string) (*websocket.Conn, map[string]any) {
	tb.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws/user-status/?token=" + url.QueryEscape(token)
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		tb.Fatalf("dial: %v %v", err, resp)
	}
	tb.Cleanup(func() { conn.Close() })
	var ack map[string]any
	if err := conn.ReadJSON(&ack); err != nil || ack["type"] != "connection.ack" {
		tb.Fatalf("ack = %v, %v", ack, err)
	}
	return conn, ack
}

func httpDo(tb testing.TB, method, url, body string, h http.Header) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// TestServe_HostSite runs the real binary as a host site would use it: the
// secret from PRESENCE_JWT_SECRET, the original frontend's flow with its
// own simplejwt token, a server key from `presence apikey create`, the
// server API ending a user's socket, and CORS for the app's origin.
func TestServe_HostSite(t *testing.T) {
	data := dataDir(t)
	const app = "https://app.example.com"
	p := startProcess(t, fastArgs(data, "--allowed-origins", app), "PRESENCE_JWT_SECRET="+testJWTSecret)
	base := p.base

	alice, ack := dialAck(t, base, djangoToken(t, 42))
	if ack["user_id"] != "42" {
		t.Fatalf("ack = %v, want user_id \"42\" (the host's id, a string as the original sent)", ack)
	}
	bobTok := djangoToken(t, 7)
	dialAck(t, base, bobTok)
	for {
		var m map[string]any
		if err := alice.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "user.status.changed" && m["user_id"] == "7" && m["is_online"] == true {
			break
		}
	}
	// The original OnlineUsers, from the app's origin with its token.
	code, body := httpDo(t, "GET", base+"/api/auth/online/", "", http.Header{"Authorization": {"Bearer " + bobTok}, "Origin": {app}})
	if code != 200 || !strings.HasPrefix(body, `[{"id":42,`) {
		t.Fatalf("online list: %d %s", code, body)
	}

	out, err := runCmd(t, "", nil, "apikey", "create", "--data", data, "backend")
	key := strings.SplitN(out, "\n", 2)[0]
	if err != nil || !strings.HasPrefix(key, "prsk_") {
		t.Fatalf("apikey create: %q %v", out, err)
	}
	if code, body := httpDo(t, "PUT", base+"/api/server/users/42/", `{"username":"alice"}`, bearerHeader(key)); code != 200 || !strings.Contains(body, `"username":"alice"`) {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, _ := httpDo(t, "PUT", base+"/api/server/users/42/", `{}`, bearerHeader(bobTok)); code != 403 {
		t.Fatalf("user token on the server API: %d, want 403", code)
	}
	code, body = httpDo(t, "POST", base+"/api/server/presence/query/", `{"user_ids":[42,7,99]}`, bearerHeader(key))
	var q struct {
		Users []map[string]any `json:"users"`
	}
	if json.Unmarshal([]byte(body), &q); code != 200 || len(q.Users) != 3 || q.Users[0]["is_online"] != true || q.Users[2]["is_online"] != false {
		t.Fatalf("query: %d %s", code, body)
	}
	if code, _ := httpDo(t, "POST", base+"/api/server/users/42/disconnect/", "", bearerHeader(key)); code != 204 {
		t.Fatalf("disconnect: %d", code)
	}
	alice.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := alice.ReadMessage()
		if ce, ok := err.(*websocket.CloseError); ok {
			if ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("close = %v, want 1008", ce)
			}
			break
		}
		if err != nil {
			t.Fatalf("socket ended with %v, want a close frame", err)
		}
	}

	out, err = runCmd(t, "", nil, "apikey", "list", "--data", data)
	if err != nil || !strings.Contains(out, "backend") || !strings.Contains(out, "live") {
		t.Fatalf("apikey list: %q %v", out, err)
	}
	if out, err := runCmd(t, "", nil, "apikey", "revoke", "--data", data, "backend"); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("apikey revoke: %q %v", out, err)
	}
	if code, _ := httpDo(t, "PUT", base+"/api/server/users/42/", `{}`, bearerHeader(key)); code != 401 {
		t.Fatalf("revoked key: %d, want 401", code)
	}
}

// TestServe_HostFlags: --jwt-public-key reads a PEM file (ES256 here);
// --local-accounts=false turns sign-up off, and refuses to start with no
// host key.
func TestServe_HostFlags(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	keyFile := filepath.Join(t.TempDir(), "host.pub")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)

	base, _ := inProcess(t, fastArgs(dataDir(t), "--jwt-public-key", keyFile, "--local-accounts=false"))
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"exp": time.Now().Add(time.Minute).Unix(), "sub": "u-1", "preferred_username": "ada",
	}).SignedString(priv)
	if _, ack := dialAck(t, base, tok); ack["user_id"] != "u-1" {
		t.Fatalf("ack = %v", ack)
	}
	if code, _ := postJSON(t, base+"/api/auth/register/", `{"username":"bob","password":"password1"}`); code != 404 {
		t.Fatalf("register with local accounts off: %d, want 404", code)
	}
	if err := run(t.Context(), fastArgs(dataDir(t), "--local-accounts=false"), func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--jwt-secret") {
		t.Fatalf("--local-accounts=false alone: %v, want an error naming --jwt-secret", err)
	}
}
