package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/webhook"
)

const testWebhookSecret = "a-webhook-secret-for-tests"

// hookReceiver is a host's webhook endpoint on a real socket that can be
// taken down and brought back on the same address.
type hookReceiver struct {
	addr string
	mu   sync.Mutex
	srv  *http.Server
	got  []map[string]any // verified deliveries, in arrival order
	bad  []string         // requests whose signature did not verify
}

func newHookReceiver(t *testing.T) *hookReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{addr: ln.Addr().String()}
	r.serve(ln)
	t.Cleanup(r.stop)
	return r
}

func (r *hookReceiver) url() string { return "http://" + r.addr + "/hooks/presence" }

func (r *hookReceiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		err := webhook.Verify(testWebhookSecret, req.Header.Get("X-Presence-Timestamp"), req.Header.Get("X-Presence-Signature"), body, time.Now(), 5*time.Minute)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil || req.Method != "POST" || req.URL.Path != "/hooks/presence" {
			r.bad = append(r.bad, fmt.Sprintf("%s %s: %v: %s", req.Method, req.URL.Path, err, body))
			w.WriteHeader(401)
			return
		}
		var p map[string]any
		json.Unmarshal(body, &p)
		r.got = append(r.got, p)
		w.WriteHeader(204)
	})}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// stop takes the receiver down: connections are refused from now on.
func (r *hookReceiver) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// start brings it back on the same address.
func (r *hookReceiver) start(t *testing.T) {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.serve(ln)
}

// events returns "username type" of each distinct event received (a
// redelivery of an id already seen is dropped, as a receiver dedupes).
func (r *hookReceiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[any]bool{}
	var out []string
	for _, p := range r.got {
		if seen[p["id"]] {
			continue
		}
		seen[p["id"]] = true
		out = append(out, fmt.Sprintf("%v %v", p["username"], p["type"]))
	}
	return out
}

func (r *hookReceiver) has(what ...string) bool {
	got := strings.Join(r.events(), ",")
	for _, w := range what {
		if !strings.Contains(got, w) {
			return false
		}
	}
	return true
}

// TestServe_WebhooksAcrossRestart runs the real server with webhooks set
// from the environment and a real receiver: deliveries are signed; while
// the receiver is down they are stored and retried; the server is
// restarted on the same data dir; once the receiver is back every event
// arrives, each user's in order, and `presence webhook log` and /metrics
// say so.
func TestServe_WebhooksAcrossRestart(t *testing.T) {
	rcv := newHookReceiver(t)
	data := dataDir(t)
	env := []string{"PRESENCE_WEBHOOK_URLS=" + rcv.url(), "PRESENCE_WEBHOOK_SECRET=" + testWebhookSecret, "PRESENCE_JWT_SECRET=" + testJWTSecret}
	args := fastArgs(data, "--grace", "300ms", "--flush-interval", "50ms")
	p1 := startProcess(t, args, env...)

	alice := mustDial(t, p1.base, mustToken(t, p1.base, "alice"))
	eventually(t, "alice's user.online", 10*time.Second, func() bool { return rcv.has("alice user.online") })
	rcv.mu.Lock()
	first := rcv.got[0]
	rcv.mu.Unlock()
	if id, _ := first["user_id"].(string); !strings.HasPrefix(id, "local:") || first["at"] == nil || first["last_seen"] == nil || !strings.HasPrefix(first["id"].(string), "evt_") {
		t.Fatalf("payload = %v (a local account beside host users is \"local:N\")", first)
	}
	// A host user (the host's simplejwt token) is known by the host's id,
	// a number as in the JSON API.
	host, _ := dialAck(t, p1.base, djangoToken(t, 42))
	host.Close()
	eventually(t, "the host user's online and offline", 10*time.Second, func() bool { return rcv.has("42 user.online", "42 user.offline") })
	rcv.mu.Lock()
	for _, p := range rcv.got {
		if p["username"] == "42" && p["user_id"] != float64(42) {
			t.Errorf("host user's payload = %v, want user_id 42", p)
		}
	}
	rcv.mu.Unlock()

	// The receiver goes down; alice leaves, bob comes and goes, carol
	// comes and is still online when the server stops.
	rcv.stop()
	alice.Close()
	bob := mustDial(t, p1.base, mustToken(t, p1.base, "bob"))
	time.Sleep(100 * time.Millisecond)
	bob.Close()
	mustDial(t, p1.base, mustToken(t, p1.base, "carol"))
	db := openDB(t, data)
	eventually(t, "failed attempts stored", 10*time.Second, func() bool {
		ds, err := db.WebhookLog(context.Background(), store.WebhookPending, 100)
		if err != nil {
			t.Fatal(err)
		}
		tried := 0
		for _, d := range ds {
			if d.Attempts > 0 && d.LastError != "" {
				tried++
			}
		}
		return len(ds) == 4 && tried >= 3 // alice off, bob on (bob off waits behind it), carol on
	})
	if got := metric(t, p1.base, "presence_webhook_deliveries_pending"); got != 4 {
		t.Errorf("pending metric = %v, want 4", got)
	}
	if got := metric(t, p1.base, "presence_webhook_attempts_failed_total"); got < 3 {
		t.Errorf("failed attempts metric = %v, want ≥ 3", got)
	}
	out, err := runCmd(t, "", nil, "webhook", "log", "--data", data, "--status", "pending")
	if err != nil || !strings.HasPrefix(out, "4 pending") || !regexp.MustCompile(`(?m)^\d+ +evt_\w+ +user\.offline +\S+ +http://\S+ +pending +[1-9]\d* .*(refused|connect)`).MatchString(out) {
		t.Fatalf("webhook log while the receiver is down: %v\n%s", err, out)
	}

	// Restart the server on the same data dir; then the receiver returns.
	if err := p1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p1.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	p2 := startProcess(t, args, env...)
	rcv.start(t)
	want := []string{"alice user.offline", "bob user.online", "bob user.offline", "carol user.online", "carol user.offline"}
	eventually(t, "every event delivered after the restart", 40*time.Second, func() bool { return rcv.has(want...) })

	got := rcv.events()
	index := map[string]int{}
	for i, e := range got {
		index[e] = i
	}
	if index["bob user.online"] > index["bob user.offline"] || index["carol user.online"] > index["carol user.offline"] ||
		index["42 user.online"] > index["42 user.offline"] || index["alice user.online"] != 0 {
		t.Errorf("out of order: %v", got)
	}
	if len(got) != 8 {
		t.Errorf("events = %v, want 8", got)
	}
	rcv.mu.Lock()
	if len(rcv.bad) > 0 {
		t.Errorf("requests that failed verification: %v", rcv.bad)
	}
	rcv.mu.Unlock()
	eventually(t, "nothing pending", 10*time.Second, func() bool {
		return metric(t, p2.base, "presence_webhook_deliveries_pending") == 0
	})
	if got := metric(t, p2.base, "presence_webhook_deliveries_succeeded_total"); got < 5 {
		t.Errorf("succeeded metric after restart = %v, want ≥ 5", got)
	}
	out, err = runCmd(t, "", nil, "webhook", "log", "--data", data)
	if err != nil || !strings.HasPrefix(out, "0 pending") || strings.Count(out, " delivered ") != 8 ||
		!regexp.MustCompile(`(?m)user\.offline +\S+ +http://\S+ +delivered +[2-9]\d* .* HTTP 204 +-$`).MatchString(out) {
		t.Fatalf("webhook log after the restart: %v\n%s", err, out)
	}
}

// TestWebhookFlags: the flags and their environment variables, validation,
// help and redaction.
func TestWebhookFlags(t *testing.T) {
	env := map[string]string{"PRESENCE_WEBHOOK_URLS": "https://a.example.com/h, https://ops:hunter2@b.example.com/h", "PRESENCE_WEBHOOK_SECRET": testWebhookSecret}
	out, err := runCmd(t, "", env, "config")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^--webhook-url +https://a\.example\.com/h,https://ops:\[redacted\]@b\.example\.com/h +PRESENCE_WEBHOOK_URLS$`),
		regexp.MustCompile(`(?m)^--webhook-secret +\[redacted\] +PRESENCE_WEBHOOK_SECRET$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("config lacks %v:\n%s", want, out)
		}
	}
	if strings.Contains(out, testWebhookSecret) || strings.Contains(out, "hunter2") {
		t.Errorf("a secret is printed:\n%s", out)
	}
	out, _ = runCmd(t, "", nil, "serve", "--help")
	for _, want := range []string{"--webhook-url URL", "(PRESENCE_WEBHOOK_URLS, default none)", "(PRESENCE_WEBHOOK_SECRET, default none)"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--webhook-url", "https://h.example.com/"}, "needs --webhook-secret"},
		{[]string{"--webhook-url", "https://h.example.com/", "--webhook-secret", "short"}, "at least 16 bytes"},
		{[]string{"--webhook-url", "ftp://h.example.com/", "--webhook-secret", testWebhookSecret}, "not an http"},
		{[]string{"--webhook-url", "/relative", "--webhook-secret", testWebhookSecret}, "not an http"},
	} {
		_, err := runCmd(t, "", nil, append([]string{"serve", "--data", t.TempDir()}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := runCmd(t, "", nil, "webhook", "log", "--data", t.TempDir(), "--status", "lost"); err == nil {
		t.Error("webhook log --status lost: no error")
	}
	if _, err := runCmd(t, "", nil, "webhook"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("webhook without a subcommand: %v", err)
	}
}
