package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presencehq/presence/store"
)

// TestServe_FinalSaveAfterSlowRequest: a request still sending its body
// when SIGTERM arrives uses up the shutdown deadline; the final save (every
// user offline with last_seen) still gets its own time and lands.
func TestServe_FinalSaveAfterSlowRequest(t *testing.T) {
	t.Parallel()
	data := dataDir(t)
	p := startProcess(t, fastArgs(data, "--flush-interval", "50ms", "--shutdown-timeout", "1s"))
	tok := mustToken(t, p.base, "alice")
	mustDial(t, p.base, tok)
	db := openDB(t, data)
	eventually(t, "alice persisted online", 10*time.Second, func() bool { return persisted(t, db, "alice").IsOnline })

	slow, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "POST /api/auth/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	time.Sleep(100 * time.Millisecond) // let the server start reading the body

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		t.Logf("server exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	if u := persisted(t, db, "alice"); u.IsOnline || u.LastSeen.IsZero() {
		t.Fatalf("after a graceful stop: online=%v last_seen=%v, want offline with last_seen", u.IsOnline, u.LastSeen)
	}
}

// TestServe_WSMessageRateZero: --ws-message-rate 0 means no limit, as its
// help says, not the default 10 a second.
func TestServe_WSMessageRateZero(t *testing.T) {
	base, _ := inProcess(t, fastArgs(dataDir(t), "--ws-message-rate", "0", "--ws-message-burst", "1"))
	conn := mustDial(t, base, mustToken(t, base, "alice"))
	const n = 50
	for range n {
		if err := conn.WriteMessage(1, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < n; {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m["type"] == "user.status.changed" {
			continue
		}
		i++
		if m["type"] != "pong" {
			t.Fatalf("message %d = %v, want pong (no rate limit)", i, m)
		}
	}
}

// TestServe_BadTrustedProxies: a malformed --trusted-proxies is refused at
// start, naming the bad item.
func TestServe_BadTrustedProxies(t *testing.T) {
	_, err := runCmd(t, "", nil, "serve", "--data", t.TempDir(), "--trusted-proxies", "127.0.0.1/32,proxy.example")
	if err == nil || !strings.Contains(err.Error(), "proxy.example") {
		t.Fatalf("err = %v, want one naming proxy.example", err)
	}
	env := map[string]string{"PRESENCE_TRUSTED_PROXIES": "10.0.0.0/33"}
	if _, err := runCmd(t, "", env, "serve", "--data", t.TempDir()); err == nil {
		t.Fatal("a bad PRESENCE_TRUSTED_PROXIES was accepted")
	}
}

// getStatus GETs url and returns the status code and body.
func getStatus(tb testing.TB, url string, header http.Header) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
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

// TestServe_MetricsAddr: with --metrics-addr, /metrics is served on that
// listener only (the main one answers 404, even to loopback), and the
// metrics listener stops with the server.
func TestServe_MetricsAddr(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"PRESENCE_METRICS_ADDR": "127.0.0.1:0"}
	go func() {
		done <- run(ctx, fastArgs(dataDir(t)), func(k string) string { return env[k] }, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()
	sc := bufio.NewScanner(pr)
	var base, metrics string
	for base == "" && sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), "metrics at "); ok {
			metrics = a
		}
		if _, a, ok := strings.Cut(sc.Text(), "listening on "); ok {
			base = a
		}
	}
	go io.Copy(io.Discard, pr)
	if metrics == "" || base == "" {
		t.Fatalf("no metrics address announced (base %q)", base)
	}
	waitHealthy(t, base)
	mustDial(t, base, mustToken(t, base, "alice"))

	if code, body := getStatus(t, metrics, nil); code != 200 || !strings.Contains(body, "presence_users_online 1") {
		t.Fatalf("metrics listener: %d\n%s", code, body)
	}
	if code, _ := getStatus(t, base+"/metrics", nil); code != 404 {
		t.Fatalf("main listener /metrics with --metrics-addr: %d, want 404", code)
	}
	if code, _ := getStatus(t, strings.TrimSuffix(metrics, "/metrics")+"/healthz", nil); code != 404 {
		t.Fatalf("metrics listener serves more than /metrics: %d", code)
	}
	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := http.Get(metrics); err == nil {
		t.Fatal("metrics listener still answers after shutdown")
	}
}

// TestServe_MetricsDefault: without --metrics-addr, /metrics on the main
// listener answers a scraper on the same host, and 404 to anyone whose
// request came through a proxy (so a proxy on the same host does not make
// it public).
func TestServe_MetricsDefault(t *testing.T) {
	base, _ := inProcess(t, fastArgs(dataDir(t)))
	if code, body := getStatus(t, base+"/metrics", nil); code != 200 || !strings.Contains(body, "presence_users_online") {
		t.Fatalf("local scrape: %d", code)
	}
	for _, h := range []string{"X-Forwarded-For", "X-Real-IP", "Forwarded"} {
		if code, _ := getStatus(t, base+"/metrics", http.Header{h: {"203.0.113.9"}}); code != 404 {
			t.Fatalf("/metrics relayed by a proxy (%s): %d, want 404", h, code)
		}
	}
}

// TestUserTokens: embed tokens get their own lifetime (none by default,
// whatever PRESENCE_TOKEN_TTL says; --embed-token-ttl or
// PRESENCE_EMBED_TOKEN_TTL; --ttl for one token); `user tokens` lists a
// user's tokens without their secrets; `user revoke-token` takes a short
// id or the secret.
func TestUserTokens(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	env := map[string]string{"PRESENCE_DATA": data, "PRESENCE_TOKEN_TTL": "1h"}
	if _, err := runCmd(t, "s3cret-password\n", env, "user", "add", "alice"); err != nil {
		t.Fatal(err)
	}
	issue := func(env map[string]string, args ...string) string {
		t.Helper()
		out, err := runCmd(t, "", env, append([]string{"user"}, args...)...)
		if err != nil || !strings.HasPrefix(out, "prs_") {
			t.Fatalf("user %v: %q %v", args, out, err)
		}
		return strings.TrimSpace(out)
	}
	embedForever := issue(env, "embed-token", "alice")
	embed48h := issue(env, "embed-token", "--ttl", "48h", "alice")
	embedEnv := issue(map[string]string{"PRESENCE_DATA": data, "PRESENCE_EMBED_TOKEN_TTL": "24h"}, "embed-token", "alice")
	embedFlag := issue(env, "embed-token", "--embed-token-ttl", "12h", "alice")
	api := issue(env, "token", "alice")
	apiForever := issue(env, "token", "--ttl", "0", "alice")

	db := openDB(t, data)
	u := persisted(t, db, "alice")
	list, err := db.TokensOf(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	life := map[string]time.Duration{}
	for _, tok := range list {
		life[tok.ShortID] = -1
		if !tok.ExpiresAt.IsZero() {
			life[tok.ShortID] = tok.ExpiresAt.Sub(tok.CreatedAt)
		}
	}
	for _, c := range []struct {
		name, tok string
		want      time.Duration
	}{
		{"embed token by default (PRESENCE_TOKEN_TTL=1h set)", embedForever, -1},
		{"embed token --ttl 48h", embed48h, 48 * time.Hour},
		{"embed token PRESENCE_EMBED_TOKEN_TTL=24h", embedEnv, 24 * time.Hour},
		{"embed token --embed-token-ttl 12h", embedFlag, 12 * time.Hour},
		{"API token (PRESENCE_TOKEN_TTL=1h)", api, time.Hour},
		{"API token --ttl 0", apiForever, -1},
	} {
		if got, ok := life[store.TokenShortID(c.tok)]; !ok || got != c.want {
			t.Errorf("%s: lifetime %v (listed %v), want %v (-1 = never expires)", c.name, got, ok, c.want)
		}
	}

	out, err := runCmd(t, "", env, "user", "tokens", "alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("user tokens alice:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "ID") || strings.Contains(out, "prs_") {
		t.Fatalf("user tokens: want a header and 6 tokens, no secrets:\n%s", out)
	}
	for _, h := range []string{"KIND", "CREATED", "EXPIRES", "LAST USED", "REVOKED"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("no %s column", h)
		}
	}
	embedLine := lineWith(lines, store.TokenShortID(embedForever))
	if !strings.Contains(embedLine, "embed") || !strings.Contains(embedLine, "never") || !strings.HasSuffix(embedLine, "live") {
		t.Fatalf("embed token listed as %q", embedLine)
	}

	// Revoke by short id: only that token stops working.
	id := store.TokenShortID(embedForever)
	if out, err := runCmd(t, "", env, "user", "revoke-token", id); err != nil || !strings.Contains(out, "revoked embed token") {
		t.Fatalf("revoke-token %s: %q %v", id, out, err)
	}
	if _, err := db.UserByToken(context.Background(), store.TokenEmbed, embedForever); !errors.Is(err, store.ErrInvalidToken) {
		t.Fatalf("revoked by id, still valid: %v", err)
	}
	if _, err := db.UserByToken(context.Background(), store.TokenEmbed, embed48h); err != nil {
		t.Fatalf("another embed token was revoked too: %v", err)
	}
	out, _ = runCmd(t, "", env, "user", "tokens", "alice")
	if l := lineWith(strings.Split(out, "\n"), id); !strings.HasSuffix(l, "revoked") {
		t.Fatalf("after revoking, listed as %q", l)
	}
	// The secret still works as before.
	if out, err := runCmd(t, "", env, "user", "revoke-token", api); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke by secret: %q %v", out, err)
	}
	if _, err := db.UserByToken(context.Background(), store.TokenAPI, api); !errors.Is(err, store.ErrInvalidToken) {
		t.Fatal("revoked by secret, still valid")
	}
	if _, err := runCmd(t, "", env, "user", "revoke-token", "0123456789"); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := runCmd(t, "", env, "user", "tokens", "nobody"); err == nil {
		t.Fatal("tokens of an unknown user")
	}
	// PRESENCE_TTL does not exist: --ttl is for one token only.
	tok := issue(map[string]string{"PRESENCE_DATA": data, "PRESENCE_TTL": "1h"}, "embed-token", "alice")
	list, _ = db.TokensOf(context.Background(), u.ID)
	for _, l := range list {
		if l.ShortID == store.TokenShortID(tok) && !l.ExpiresAt.IsZero() {
			t.Fatal("PRESENCE_TTL was applied")
		}
	}
}

// lineWith returns the first line containing s.
func lineWith(lines []string, s string) string {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
