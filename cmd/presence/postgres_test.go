package main

import (
	"bytes"
	"context"
	"database/sql"
	"image/color"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/store/storetest"
)

// openPostgres opens the database at url as another process would, closed
// at cleanup.
func openPostgres(tb testing.TB, url string) *store.DB {
	tb.Helper()
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestServe_Postgres: the real server (run) on --database-url: register,
// token, WebSocket online (persisted in PostgreSQL, no SQLite file made),
// then a restart on the same database: the account and its token are
// still there, and the user was recorded offline.
func TestServe_Postgres(t *testing.T) {
	url := storetest.URL(t)
	data := dataDir(t)
	args := fastArgs(data, "--database-url", url, "--flush-interval", "20ms")
	base, stop := inProcess(t, args)
	tokA, tokB := mustToken(t, base, "alice"), mustToken(t, base, "bob")
	mustDial(t, base, tokA)
	eventually(t, "alice online", 10*time.Second, func() bool {
		return slices.Contains(onlineNames(t, base, tokB), "alice")
	})
	db := openPostgres(t, url)
	eventually(t, "alice persisted online in PostgreSQL", 10*time.Second, func() bool {
		return persisted(t, db, "alice").IsOnline
	})
	if _, err := os.Stat(filepath.Join(data, "presence.db")); err == nil {
		t.Fatal("a SQLite database was made beside --database-url")
	}
	if err := stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if u := persisted(t, db, "alice"); u.IsOnline || u.LastSeen.IsZero() {
		t.Fatalf("after shutdown: %+v, want offline with last_seen", u)
	}

	base2, _ := inProcess(t, args)
	if got := onlineNames(t, base2, tokB); len(got) != 0 { // the old token still works
		t.Fatalf("after restart online = %v, want nobody", got)
	}
	if tok := mustToken(t, base2, "alice"); tok == "" { // the password still works
		t.Fatal("no token")
	}
	mustDial(t, base2, tokA)
	eventually(t, "alice online again", 10*time.Second, func() bool {
		return slices.Contains(onlineNames(t, base2, tokB), "alice")
	})
}

// TestServe_PostgresTwoNodes: two servers (two data dirs) on one
// PostgreSQL database: an account made on one signs in on the other, an
// API token issued by one is honoured by the other (and, revoked, ends its
// socket there), and an embed token works on both.
func TestServe_PostgresTwoNodes(t *testing.T) {
	url := storetest.URL(t)
	a, _ := inProcess(t, fastArgs(dataDir(t), "--database-url", url))
	b, _ := inProcess(t, fastArgs(dataDir(t), "--database-url", url))
	tok := mustToken(t, a, "alice")
	if got := onlineNames(t, b, tok); got == nil {
		t.Fatal("no answer")
	}
	if code, m := postJSON(t, b+"/api/auth/token/", `{"username":"alice","password":"password1"}`); code != 200 {
		t.Fatalf("sign in on the other node: %d %v", code, m)
	}
	ws := mustDial(t, b, tok)

	// An embed token made with the CLI works on both nodes.
	out, err := runCmd(t, "", map[string]string{"PRESENCE_DATABASE_URL": url}, "user", "embed-token", "--data", t.TempDir(), "alice")
	if err != nil || !strings.HasPrefix(out, "prs_") {
		t.Fatalf("embed-token: %q %v", out, err)
	}
	embed := strings.TrimSpace(out)
	for _, base := range []string{a, b} {
		resp, err := testClient.Get(base + "/widgets/online-users/list?embed_token=" + embed)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("widget with the embed token on %s: %s", base, resp.Status)
		}
	}

	// Revoking the API token node a issued ends its socket on node b.
	closed := make(chan int, 1)
	go readUntilClosed(ws, closed)
	if out, err := runCmd(t, "", map[string]string{"PRESENCE_DATABASE_URL": url}, "user", "revoke-token", "--data", t.TempDir(), tok); err != nil {
		t.Fatalf("revoke-token: %q %v", out, err)
	}
	select {
	case code := <-closed:
		if code != websocket.ClosePolicyViolation {
			t.Fatalf("socket on node b closed with %d, want 1008", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("socket on node b still open 10 s after its token was revoked")
	}
}

// TestCommands_Postgres: the commands that open the database take
// --database-url (or PRESENCE_DATABASE_URL); backup and restore refuse it
// and point to pg_dump.
func TestCommands_Postgres(t *testing.T) {
	t.Run("BackupRestoreRefuse", func(t *testing.T) {
		env := map[string]string{"PRESENCE_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
		for _, cmd := range []string{"backup", "restore"} {
			out, err := runCmd(t, "", env, cmd, "--data", t.TempDir(), filepath.Join(t.TempDir(), "x.db"))
			if err == nil || !strings.Contains(err.Error(), "pg_dump") {
				t.Fatalf("%s on PostgreSQL = %q, %v; want a refusal naming pg_dump", cmd, out, err)
			}
		}
	})
	t.Run("NotPostgres", func(t *testing.T) {
		_, err := runCmd(t, "", nil, "migrate", "--database-url", "mysql://x@y/z")
		if err == nil || !strings.Contains(err.Error(), "postgres://") {
			t.Fatalf("migrate with a mysql URL: %v", err)
		}
	})
	t.Run("DemoRefuses", func(t *testing.T) {
		_, err := runCmd(t, "", nil, "serve", "--demo", "--database-url", "postgres://x@127.0.0.1/z")
		if err == nil || !strings.Contains(err.Error(), "--demo") {
			t.Fatalf("demo with a database url: %v", err)
		}
	})
	t.Run("CopyFrom", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "d")
		if out, err := runCmd(t, "password1\n", nil, "user", "add", "--data", data, "alice"); err != nil {
			t.Fatalf("user add on SQLite = %q, %v", out, err)
		}
		file := filepath.Join(data, "presence.db")
		if _, err := runCmd(t, "", nil, "migrate", "--copy-from", file); err == nil || !strings.Contains(err.Error(), "--database-url") {
			t.Fatalf("copy without a target: %v", err)
		}
		url := storetest.URL(t)
		out, err := runCmd(t, "", nil, "migrate", "--database-url", url, "--copy-from", file)
		if err != nil || !strings.Contains(out, "copied 1 rows of users") {
			t.Fatalf("copy = %q, %v", out, err)
		}
		if u := persisted(t, openPostgres(t, url), "alice"); !u.IsAdmin {
			t.Fatalf("alice in PostgreSQL = %+v", u)
		}
		if _, err := runCmd(t, "", nil, "migrate", "--database-url", url, "--copy-from", file); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("second copy: %v", err)
		}
	})
	t.Run("MigrateUserApikey", func(t *testing.T) {
		url := storetest.URL(t)
		env := map[string]string{"PRESENCE_DATABASE_URL": url}
		data := filepath.Join(t.TempDir(), "d")
		out, err := runCmd(t, "", env, "migrate", "--data", data)
		if err != nil || !strings.Contains(out, "applied 0001_init.sql") {
			t.Fatalf("migrate = %q, %v", out, err)
		}
		if out, err := runCmd(t, "", env, "migrate", "--data", data); err != nil || !strings.Contains(out, "up to date") {
			t.Fatalf("second migrate = %q, %v", out, err)
		}
		if out, err := runCmd(t, "password1\n", env, "user", "add", "--data", data, "carol"); err != nil {
			t.Fatalf("user add = %q, %v", out, err)
		}
		if out, err := runCmd(t, "", env, "apikey", "create", "--data", data, "backend"); err != nil || !strings.Contains(out, "psk_") && !strings.Contains(out, "backend") {
			t.Fatalf("apikey create = %q, %v", out, err)
		}
		if _, err := os.Stat(filepath.Join(data, "presence.db")); err == nil {
			t.Fatal("a SQLite database was made beside --database-url")
		}
		if u := persisted(t, openPostgres(t, url), "carol"); !u.IsAdmin {
			t.Fatalf("carol = %+v; want the first account, an administrator", u)
		}
	})
}

// TestServe_SessionAcrossNodes: a browser signed in on one node is signed
// in on another when both are given the same --session-keys file (and,
// without it, is not: each node then makes its own keys). The cookie jar
// plays the load balancer: cookies go to 127.0.0.1 whatever the port.
func TestServe_SessionAcrossNodes(t *testing.T) {
	dbURL := storetest.URL(t)
	keys := filepath.Join(t.TempDir(), "session.keys")
	a, _ := inProcess(t, fastArgs(dataDir(t), "--database-url", dbURL, "--session-keys", keys))
	b, _ := inProcess(t, fastArgs(dataDir(t), "--database-url", dbURL, "--session-keys", keys))
	c, _ := inProcess(t, fastArgs(dataDir(t), "--database-url", dbURL)) // its own keys
	mustToken(t, a, "alice")                                            // registers alice

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(a+"/login", url.Values{"username": {"alice"}, "password": {"password1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in on node a: %s", resp.Status)
	}
	settings := func(base string) int {
		t.Helper()
		resp, err := client.Get(base + "/settings")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, base := range map[string]string{"a": a, "b": b} {
		if code := settings(base); code != http.StatusOK {
			t.Fatalf("/settings on node %s with the session of node a: %d, want 200", name, code)
		}
	}
	if code := settings(c); code == http.StatusOK {
		t.Fatal("node c, with other keys, accepted node a's session")
	}

	// Signing out on node a ends the session on node b too: the cookie,
	// replayed, names a session the database has revoked.
	au, _ := url.Parse(a)
	old := jar.Cookies(au)
	replay, _ := cookiejar.New(nil)
	replay.SetCookies(au, old)
	client.Jar = replay
	if code := settings(b); code != http.StatusOK {
		t.Fatalf("the replayed cookie before signing out: %d, want 200", code)
	}
	client.Jar = jar
	req, _ := http.NewRequest("POST", a+"/logout", nil)
	req.Header.Set("Origin", a)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out on node a: %s", resp.Status)
	}
	replay, _ = cookiejar.New(nil)
	replay.SetCookies(au, old)
	client.Jar = replay
	if code := settings(b); code == http.StatusOK {
		t.Fatal("node b still accepts a session signed out on node a")
	}
}

// TestServe_PostgresLocked: another node holding the database's write lock
// (a long write transaction) makes presence writes fail after
// lock_timeout, shown on /healthz, while presence keeps working in
// memory; once released, the pending writes land.
func TestServe_PostgresLocked(t *testing.T) {
	dbURL := storetest.URL(t)
	var logs syncBuffer
	base, stop := inProcessLog(t, fastArgs(dataDir(t), "--database-url", dbURL+"&lock_timeout=300ms",
		"--flush-interval", "20ms", "--grace", "50ms"), &logs)
	tokA, tokB := mustToken(t, base, "alice"), mustToken(t, base, "bob")
	mustDial(t, base, tokA)
	bob := mustDial(t, base, tokB)
	db := openPostgres(t, dbURL)
	eventually(t, "both persisted online", 10*time.Second, func() bool {
		return persisted(t, db, "alice").IsOnline && persisted(t, db, "bob").IsOnline
	})

	other, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const key = "SELECT %s(1886545267, hashtext(current_schema()))" // store's write lock
	if _, err := lock.ExecContext(context.Background(), strings.Replace(key, "%s", "pg_advisory_lock", 1)); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			lock.ExecContext(context.Background(), strings.Replace(key, "%s", "pg_advisory_unlock", 1))
			lock.Close()
		}
	}
	defer release()

	bob.Close()
	eventually(t, "bob offline in memory", 5*time.Second, func() bool {
		return len(onlineNames(t, base, tokA)) == 0
	})
	eventually(t, "/healthz to report failing writes", 15*time.Second, func() bool {
		code, h := getHealth(t, base)
		return code == 200 && h.Status == "degraded" && h.Checks["persistence"] == "failing; retrying"
	})
	if !strings.Contains(logs.String(), "lock timeout") {
		t.Fatalf("log does not name the failure:\n%s", logs.String())
	}
	if !persisted(t, db, "bob").IsOnline {
		t.Fatal("precondition: bob's going offline was written through the lock")
	}
	mustDial(t, base, tokA) // still served

	release()
	eventually(t, "writes to resume", 15*time.Second, func() bool {
		code, h := getHealth(t, base)
		return code == 200 && h.Status == "ok" && !persisted(t, db, "bob").IsOnline
	})
	if err := stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
}

// TestServe_PostgresHardKill: SIGKILL a server on PostgreSQL with users
// persisted online; on restart nobody is shown online and last_seen is set.
func TestServe_PostgresHardKill(t *testing.T) {
	dbURL := storetest.URL(t)
	args := fastArgs(dataDir(t), "--database-url", dbURL, "--flush-interval", "20ms")
	p := startProcess(t, args)
	tok := mustToken(t, p.base, "alice")
	mustDial(t, p.base, tok)
	db := openPostgres(t, dbURL)
	eventually(t, "alice persisted online", 10*time.Second, func() bool {
		return persisted(t, db, "alice").IsOnline
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	if !persisted(t, db, "alice").IsOnline {
		t.Fatal("precondition: a crash leaves is_online set in the database")
	}
	p2 := startProcess(t, args)
	if got := onlineNames(t, p2.base, tok); len(got) != 0 {
		t.Fatalf("after restart online = %v, want nobody", got)
	}
	if u := persisted(t, db, "alice"); u.IsOnline || u.LastSeen.IsZero() {
		t.Fatalf("alice after restart: online=%v last_seen=%v", u.IsOnline, u.LastSeen)
	}
}

// TestServe_PostgresSharedLimitsAndAvatars: two nodes on one PostgreSQL
// database, no shared disk and no stickiness: a login brake reached on
// node a holds on node b; an avatar uploaded on node a is served, with the
// same bytes and caching, by node b, and removing it on node b ends it on
// node a; the upload limit per user counts uploads on both nodes.
func TestServe_PostgresSharedLimitsAndAvatars(t *testing.T) {
	dbURL := storetest.URL(t)
	a, _ := inProcess(t, fastArgs(dataDir(t), "--database-url", dbURL))
	b, _ := inProcess(t, fastArgs(dataDir(t), "--database-url", dbURL))
	tokB := mustToken(t, a, "bob")
	mustToken(t, a, "alice")

	t.Run("LoginBrake", func(t *testing.T) {
		login := func(base, password string) int {
			t.Helper()
			code, _ := postJSON(t, base+"/api/auth/token/", `{"username":"alice","password":"`+password+`"}`)
			return code
		}
		for i := range 10 { // the failures one address may make against one account
			if code := login(a, "wrong"); code != http.StatusUnauthorized {
				t.Fatalf("failure %d on node a = %d, want 401", i+1, code)
			}
		}
		if code := login(b, "wrong"); code != http.StatusTooManyRequests {
			t.Fatalf("the 11th failure, on node b = %d, want 429: node a's brake holds there", code)
		}
		if code := login(b, "password1"); code != http.StatusTooManyRequests {
			t.Fatalf("the right password on node b while braked = %d, want 429", code)
		}
	})

	t.Run("Avatars", func(t *testing.T) {
		data := portrait(color.RGBA{14, 165, 233, 255}, color.RGBA{30, 58, 138, 255}, color.RGBA{254, 215, 170, 255})
		client := signInClient(t, a, "bob")
		if code := uploadAvatar(t, client, a, data); code != http.StatusSeeOther {
			t.Fatalf("upload on node a = %d", code)
		}
		mustDial(t, a, tokB) // who is online is each node's own (until part 2): ask node a
		url := onlineAvatar(t, a, mustToken(t, b, "carol"))
		if !strings.HasPrefix(url, a+"/avatars/") {
			t.Fatalf("avatar on node a = %q", url)
		}
		url = strings.Replace(url, a, b, 1) // the same path on node b
		codeA, fromA := getBytes(t, strings.Replace(url, b, a, 1))
		codeB, fromB := getBytes(t, url)
		if codeA != 200 || codeB != 200 || !bytes.Equal(fromA, fromB) || len(fromB) == 0 {
			t.Fatalf("node a %d (%d bytes), node b %d (%d bytes)", codeA, len(fromA), codeB, len(fromB))
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("ETag") == "" {
			t.Fatalf("node b's caching headers: %v", resp.Header)
		}
		clientB := signInClient(t, b, "bob")
		req, _ := http.NewRequest("POST", b+"/settings/avatar/remove", nil)
		req.Header.Set("Origin", b)
		resp, err = clientB.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if code, _ := getBytes(t, strings.Replace(url, b, a, 1)); code != http.StatusNotFound {
			t.Fatalf("removed on node b, still served by node a: %d", code)
		}

		// Ten uploads at first (then 60 an hour): the one above and nine
		// more, on both nodes; then neither node takes another.
		for i := range 9 {
			node, c := a, client
			if i%2 == 0 {
				node, c = b, clientB
			}
			if code := uploadAvatar(t, c, node, data); code != http.StatusSeeOther {
				t.Fatalf("upload %d = %d", i+2, code)
			}
		}
		for _, node := range []struct {
			base string
			c    *http.Client
		}{{a, client}, {b, clientB}} {
			if code := uploadAvatar(t, node.c, node.base, data); code != http.StatusTooManyRequests {
				t.Fatalf("the 11th upload on %s = %d, want 429", node.base, code)
			}
		}
	})
}

// signInClient signs name (password1) in through node base's login form
// and returns the browser-like client holding the session.
func signInClient(tb testing.TB, base, name string) *http.Client {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(base+"/login", url.Values{"username": {name}, "password": {"password1"}})
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		tb.Fatalf("sign %s in on %s: %s", name, base, resp.Status)
	}
	return client
}

// uploadAvatar posts data as the signed-in client's avatar on node base
// and returns the status.
func uploadAvatar(tb testing.TB, client *http.Client, base string, data []byte) int {
	tb.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("avatar", "me.png")
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/settings/avatar", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", base)
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
