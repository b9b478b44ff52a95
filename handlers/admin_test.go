package handlers_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/store"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var routeParam = regexp.MustCompile(`:[a-z]+|\*`)

// Everything under /admin, every route the server has there (walked from
// its route table, so a new one is covered without editing this test) and
// paths that are none, answers 403 to anonymous visitors, to signed-in
// users who are not administrators (cookie or Bearer) and to a demoted
// administrator, streams included; an administrator gets through.
func TestAdmin_ForbiddenToNonAdmins(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	root, rootTok := ts.MustCreateUser(t, "root")
	if !root.IsAdmin {
		t.Fatal("the first account is not an administrator")
	}
	_, aliceTok := ts.MustCreateUser(t, "alice")
	alice := signedIn(t, ts, "alice")
	admin := signedIn(t, ts, "root")

	var paths [][2]string
	for _, r := range ts.Handler.Routes() {
		method, path, _ := strings.Cut(r, " ")
		if path != "/admin" && !strings.HasPrefix(path, "/admin/") {
			continue
		}
		paths = append(paths, [2]string{method, routeParam.ReplaceAllString(path, "x")})
	}
	if len(paths) < 10 {
		t.Fatalf("only %d /admin routes found: %v", len(paths), paths)
	}
	paths = append(paths, [2]string{"GET", "/admin/no-such-page"}, [2]string{"DELETE", "/admin/users/root"})
	type who struct {
		name   string
		client *http.Client
		h      http.Header
	}
	// A stream let through would never end: bound every request.
	alice.Timeout = 5 * time.Second
	quick := &http.Client{Timeout: 5 * time.Second}
	for _, w := range []who{{"anonymous", quick, nil}, {"alice (session)", alice, nil}, {"alice (bearer)", quick, bearer(aliceTok)}} {
		for _, p := range paths {
			code, body := do(t, w.client, p[0], ts.URL+p[1], "", w.h)
			if code != http.StatusForbidden {
				t.Errorf("%s: %s %s = %d, want 403 (%.80s)", w.name, p[0], p[1], code, body)
			}
		}
	}
	// The stream too, read as a stream.
	req, _ := http.NewRequest("GET", ts.URL+"/admin/stream", nil)
	req.Header.Set("Authorization", "Bearer "+aliceTok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("alice's admin stream: %v %v", err, respStatus(resp))
	}
	// An administrator gets every page.
	for _, p := range []string{"/admin", "/admin/figures", "/admin/users/alice"} {
		if code, body := do(t, admin, "GET", ts.URL+p, "", nil); code != 200 {
			t.Errorf("admin GET %s = %d %.200s", p, code, body)
		}
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/admin", "", bearer(rootTok)); code != 200 {
		t.Errorf("admin by bearer: %d", code)
	}
	// Promote alice: she gets in; demoted, she is out again.
	if err := ts.DB.SetAdmin(ctx, mustUser(t, ts, "alice").ID, true); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, alice, "GET", ts.URL+"/admin", "", nil); code != 200 {
		t.Fatalf("promoted alice: %d", code)
	}
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/alice/demote", "", nil); code != http.StatusSeeOther {
		t.Fatalf("demote: %d", code)
	}
	if code, _ := do(t, alice, "GET", ts.URL+"/admin", "", nil); code != 403 {
		t.Fatalf("demoted alice: %d", code)
	}
}

func mustUser(tb testing.TB, ts *testServer, name string) store.User {
	tb.Helper()
	u, err := ts.DB.UserByName(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// Every admin action, through HTTP: it does what it says, is logged and
// is recorded in the audit table.
func TestAdmin_Actions(t *testing.T) {
	logs := &lockedBuffer{}
	ts := MustStartServerWithLog(t, handlers.Config{}, slog.New(slog.NewTextHandler(logs, nil)))
	ts.MustCreateUser(t, "root")
	_, aliceTok := ts.MustCreateUser(t, "alice")
	ts.MustCreateUser(t, "bob")
	_, carolTok := ts.MustCreateUser(t, "carol")
	admin := signedIn(t, ts, "root")

	aliceWS := ts.MustDialHeader(t, "?token="+aliceTok, http.Header{"User-Agent": {chromeLinux}})
	bobBrowser := signedIn(t, ts, "bob")
	bobWS1 := ts.MustDialHeader(t, "?events=0", sessionHeader(t, ts, bobBrowser, firefoxWindows))
	bobWS2 := ts.MustDialHeader(t, "?events=0", sessionHeader(t, ts, bobBrowser, firefoxWindows))
	bobStream := ts.openStream(t, "/widgets/online-users/stream", http.Header{"Cookie": sessionHeader(t, ts, bobBrowser, "")["Cookie"]})
	carolWS := ts.MustDial(t, carolTok)
	eventually(t, "everyone online", func() bool { n, _ := ts.Engine.Counts(); return n == 3 })

	// The page lists online users with their connections and devices.
	code, body := do(t, admin, "GET", ts.URL+"/admin", "", nil)
	doc := mustDoc(t, body)
	if code != 200 || doc.Find(`[data-testid="admin-user"]`).Length() != 3 || doc.Find(`[data-testid="admin-conn"]`).Length() != 4 {
		t.Fatalf("/admin: %d, %d users, %d conns", code, doc.Find(`[data-testid="admin-user"]`).Length(), doc.Find(`[data-testid="admin-conn"]`).Length())
	}
	if !strings.Contains(body, "Chrome on Linux") || !strings.Contains(body, "Firefox on Windows") || !strings.Contains(body, "—") {
		t.Fatal("/admin does not show devices and the room column")
	}
	_, frag := do(t, admin, "GET", ts.URL+"/admin/connections", "", nil)
	if n := mustDoc(t, frag).Find(`[data-testid="admin-conn"]`).Length(); n != 4 {
		t.Fatalf("/admin/connections lists %d connections, want 4", n)
	}
	aliceConn, _ := doc.Find(`[data-testid="admin-user"][data-username="alice"] + [data-testid="admin-conn"]`).Attr("data-conn-id")
	if aliceConn == "" {
		t.Fatal("no connection id for alice")
	}

	// Kick one connection: closed with 1008, and its token revoked (a
	// browser would reconnect at once otherwise).
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/connections/"+aliceConn+"/kick", "", nil); code != http.StatusSeeOther {
		t.Fatalf("kick connection: %d", code)
	}
	aliceWS.expectEnded("disconnected by an administrator")
	if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(aliceTok)); code != 401 {
		t.Fatalf("kicked alice's token still works: %d", code)
	}
	// The client has its close frame; the server lets go of the socket
	// when the client's reply comes.
	eventually(t, "the kicked socket to end", func() bool { return ts.Handler.WebSockets() == 3 })
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/connections/"+aliceConn+"/kick", "", nil); code != 404 {
		t.Fatalf("kicking a gone connection: %d, want 404", code)
	}

	// Kick a user: every socket and stream, and their sessions.
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/bob/kick", "", nil); code != http.StatusSeeOther {
		t.Fatalf("kick user: %d", code)
	}
	bobWS1.expectEnded("disconnected by an administrator")
	bobWS2.expectEnded("disconnected by an administrator")
	bobStream.ended(t)
	if code, _ := do(t, bobBrowser, "GET", ts.URL+"/online", "", nil); code != http.StatusSeeOther {
		t.Fatalf("kicked bob's session still works: %d", code)
	}
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/root/kick", "", nil); code != 400 {
		t.Fatalf("kicking oneself: %d, want 400", code)
	}
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/nobody/kick", "", nil); code != 404 {
		t.Fatalf("kicking nobody: %d, want 404", code)
	}

	// Revoke a token by its short id, from the user's page.
	short := store.TokenShortID(carolTok)
	_, body = do(t, admin, "GET", ts.URL+"/admin/users/carol", "", nil)
	if !strings.Contains(body, short) {
		t.Fatalf("carol's page does not list her token %s", short)
	}
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/tokens/"+short+"/revoke", "", nil); code != http.StatusSeeOther {
		t.Fatalf("revoke: %d", code)
	}
	carolWS.expectRevoked()
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/tokens/revoke", "id=ffffffffff", formHeader); code != 404 {
		t.Fatalf("revoking an unknown token: %d, want 404", code)
	}
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/tokens/revoke", "id=zz", formHeader); code != 404 {
		t.Fatalf("revoking a malformed id: %d, want 404", code)
	}

	// Promote and demote.
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/carol/promote", "", nil); code != http.StatusSeeOther || !mustUser(t, ts, "carol").IsAdmin {
		t.Fatalf("promote: %d", code)
	}
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/carol/demote", "", nil); code != http.StatusSeeOther || mustUser(t, ts, "carol").IsAdmin {
		t.Fatalf("demote: %d", code)
	}
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/root/demote", "", nil); code != 400 || !mustUser(t, ts, "root").IsAdmin {
		t.Fatalf("demoting oneself: %d, want 400", code)
	}
	// A cross-site post is refused, as everywhere.
	if code, _ := do(t, admin, "POST", ts.URL+"/admin/users/carol/promote", "", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); code != 403 || mustUser(t, ts, "carol").IsAdmin {
		t.Fatalf("cross-site promote: %d", code)
	}

	// Every action is in the audit table and the log, and on the page.
	acts, err := ts.DB.AdminActions(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range acts {
		if a.AdminName != "root" {
			t.Fatalf("audit record by %q", a.AdminName)
		}
		got = append(got, a.Action+" "+a.Target)
	}
	want := []string{"demote carol", "promote carol", "revoke-token " + short, "kick-user bob", "kick-connection alice"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("audit = %q, want %q", got, want)
	}
	for _, w := range want {
		action, target, _ := strings.Cut(w, " ")
		if !strings.Contains(logs.String(), "action="+action+" target="+target) {
			t.Errorf("log lacks %q:\n%s", w, logs.String())
		}
	}
	_, body = do(t, admin, "GET", ts.URL+"/admin", "", nil)
	if mustDoc(t, body).Find(`[data-testid="admin-audit"] li`).Length() != len(want) {
		t.Fatal("the page does not show the audit log")
	}
}

// The figures stream pushes the figures and chart every sample while an
// administrator watches.
func TestAdmin_FiguresStream(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, rootTok := ts.MustCreateUser(t, "root")
	_, aliceTok := ts.MustCreateUser(t, "alice")
	ts.MustDial(t, aliceTok)
	s := ts.openStream(t, "/admin/stream", bearer(rootTok))
	eventually(t, "the stream registered", func() bool {
		code, body := do(t, nil, "GET", ts.URL+"/admin/figures", "", bearer(rootTok))
		return code == 200 && strings.Contains(body, "figures-chart")
	})
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var event, data bool
	for !(event && data) {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatal("stream ended")
			}
			event = event || line == "event: figures"
			data = data || strings.Contains(line, `data-testid="fig-conns">1<`)
		case <-tick.C:
			ts.Clock.Advance(2 * time.Second)
		case <-deadline:
			t.Fatalf("no figures event (event=%v data=%v)", event, data)
		}
	}
}
