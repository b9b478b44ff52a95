package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestServe_DatabaseLocked has another connection hold SQLite's write lock
// (as a backup or an admin's sqlite3 shell would): presence writes fail
// with "database is locked" after the busy timeout, which is logged and
// shown on /healthz while presence keeps working in memory; when the lock is
// released the pending writes land.
func TestServe_DatabaseLocked(t *testing.T) {
	t.Parallel()
	data := dataDir(t)
	var logs syncBuffer
	base, stop := inProcessLog(t, fastArgs(data, "--flush-interval", "20ms", "--grace", "50ms"), &logs)
	tokA, tokB := mustToken(t, base, "alice"), mustToken(t, base, "bob")
	tokC := mustToken(t, base, "carol") // not used yet: its first use is recorded
	mustDial(t, base, tokA)
	bob := mustDial(t, base, tokB)
	db := openDB(t, data)
	eventually(t, "both persisted online", 10*time.Second, func() bool {
		return persisted(t, db, "alice").IsOnline && persisted(t, db, "bob").IsOnline
	})

	other, err := sql.Open("sqlite", "file:"+filepath.Join(data, "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			lock.ExecContext(context.Background(), "ROLLBACK")
			lock.Close()
		}
	}
	defer release()

	bob.Close()
	// Bob's going offline is known at once, although it cannot be written.
	eventually(t, "bob offline in memory", 5*time.Second, func() bool {
		return len(onlineNames(t, base, tokA)) == 0
	})
	eventually(t, "/healthz to report failing writes", 15*time.Second, func() bool {
		code, h := getHealth(t, base)
		return code == 200 && h.Status == "degraded" && h.Checks["persistence"] == "failing; retrying"
	})
	if !strings.Contains(logs.String(), "database is locked") {
		t.Fatalf("log does not name the failure:\n%s", logs.String())
	}
	if !persisted(t, db, "bob").IsOnline {
		t.Fatal("precondition: bob's going offline was written through the lock")
	}
	// Other people are still served: new sockets and the API. Recording
	// carol's first token use cannot be written, and must not hold her up
	// for the busy timeout.
	mustDial(t, base, tokA)
	start := time.Now()
	carol := mustDial(t, base, tokC)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("connecting took %v while the database was locked", took)
	} else {
		t.Logf("connected in %v while the database was locked", took.Round(time.Millisecond))
	}
	carol.Close()
	if got := onlineNames(t, base, tokB); !slices.Equal(got, []string{"alice"}) && !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("online while locked = %v", got)
	}

	release()
	eventually(t, "writes to resume", 15*time.Second, func() bool {
		code, h := getHealth(t, base)
		return code == 200 && h.Status == "ok" && !persisted(t, db, "bob").IsOnline
	})
	if !strings.Contains(logs.String(), "presence: writes resumed") {
		t.Fatalf("log does not say writes resumed:\n%s", logs.String())
	}
	if err := stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// tab is a WebSocket client that behaves like presence.js: it pings on an
// interval and, if reconnect is set, dials again with a short backoff
// whenever its connection ends, until ctx is done.
type tab struct {
	base, token string
	every       time.Duration
	reconnect   bool
	// hold, when set, closes each connection after this long (churn).
	hold time.Duration
}

func (tb tab) run(ctx context.Context) {
	u := "ws" + strings.TrimPrefix(tb.base, "http") + "/ws/user-status/?events=0&token=" + url.QueryEscape(tb.token)
	for ctx.Err() == nil {
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
		held := err == nil && tb.session(ctx, conn)
		if !tb.reconnect && !held {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(20+rand.IntN(60)) * time.Millisecond):
		}
	}
}

// session pings over conn until it ends, ctx is done or hold has passed,
// and reports whether it was hold.
func (tb tab) session(ctx context.Context, conn *websocket.Conn) bool {
	defer conn.Close()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	var until <-chan time.Time
	if tb.hold > 0 {
		until = time.After(tb.hold)
	}
	ping := time.NewTicker(tb.every)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-ended:
			return false
		case <-until:
			conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			return true
		case <-ping.C:
			if conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) != nil {
				return false
			}
		}
	}
}

// TestServe_HardKillUnderLoad SIGKILLs the server while 60 reconnecting
// tabs ping and 40 more connect and disconnect in a loop, so presence
// writes are in flight. The database must pass integrity_check; after a
// restart on the same address nobody from before is shown online unless
// they reconnect, last_seen is set for everyone, and the reconnecting tabs
// converge to exactly the online list.
func TestServe_HardKillUnderLoad(t *testing.T) {
	t.Parallel()
	data := dataDir(t)
	addr := freeAddr(t) // the restart must come back on the same address
	args := fastArgs(data, "--addr", addr, "--flush-interval", "20ms", "--grace", "100ms",
		"--register-limit", "0", "--login-limit", "0")
	p := startProcess(t, args)
	const live, churn = 60, 40
	tokens := make([]string, live+churn)
	for i := range tokens {
		tokens[i] = mustToken(t, p.base, fmt.Sprintf("user%03d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	churnCtx, cancelChurn := context.WithCancel(ctx)
	var reconnecting, churning sync.WaitGroup
	defer func() { cancel(); reconnecting.Wait(); churning.Wait() }()
	for i, tok := range tokens {
		tb := tab{base: p.base, token: tok, every: 100 * time.Millisecond}
		if i < live {
			tb.reconnect = true
			reconnecting.Go(func() { tb.run(ctx) })
		} else {
			tb.hold = time.Duration(20+rand.IntN(80)) * time.Millisecond
			churning.Go(func() { tb.run(churnCtx) })
		}
	}
	db := openDB(t, data)
	eventually(t, "load to be persisted", 20*time.Second, func() bool {
		return persisted(t, db, "user000").IsOnline && persisted(t, db, fmt.Sprintf("user%03d", live-1)).IsOnline
	})
	time.Sleep(time.Second) // churn and pings keep the writer busy

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	// The churning tabs are closed while the server is down (a dial in
	// flight would otherwise reach the new server by SYN retry).
	cancelChurn()
	churning.Wait()
	ghosts := 0
	for i := range tokens {
		if persisted(t, db, fmt.Sprintf("user%03d", i)).IsOnline {
			ghosts++
		}
	}
	if ghosts < live {
		t.Fatalf("precondition: %d users left online in the database by the crash, want at least %d", ghosts, live)
	}
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatalf("after SIGKILL under load: %v", err)
	}
	startProcess(t, args)
	viewer := tokens[0]
	want := []string{}
	for i := 1; i < live; i++ {
		want = append(want, fmt.Sprintf("user%03d", i))
	}
	var got []string
	start := time.Now()
	for !slices.Equal(got, want) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("reconnecting tabs did not converge: online = %v", got)
		}
		time.Sleep(20 * time.Millisecond)
		got = onlineNames(t, p.base, viewer)
		slices.Sort(got)
	}
	t.Logf("converged %v after the restart", time.Since(start).Round(time.Millisecond))
	// No ghosts: the churning tabs ended with the old server and stay
	// offline, with a last_seen, in the API and in the database.
	for range 10 {
		got := onlineNames(t, p.base, viewer)
		if len(got) != live-1 {
			t.Fatalf("online = %d users (%v), want the %d reconnecting tabs", len(got), got, live-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := live; i < live+churn; i++ {
		if u := persisted(t, db, fmt.Sprintf("user%03d", i)); u.IsOnline || u.LastSeen.IsZero() {
			t.Fatalf("user%03d after restart: online=%v last_seen=%v", i, u.IsOnline, u.LastSeen)
		}
	}
	eventually(t, "reconnected tabs persisted online", 10*time.Second, func() bool {
		return persisted(t, db, "user001").IsOnline
	})
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestServe_SIGTERMUnderLoad sends SIGTERM to a real server process holding
// 30 WebSockets (5 of them never reading) and 10 widget streams, with every
// presence change still pending (--flush-interval 1h). The process must exit
// 0 within --shutdown-timeout, send 1001 to every socket that reads, end
// every stream, and have written everyone offline with a last_seen.
func TestServe_SIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	data := dataDir(t)
	p := startProcess(t, fastArgs(data, "--shutdown-timeout", "3s", "--flush-interval", "1h", "--register-limit", "0", "--login-limit", "0"))
	const users, stalled, streams = 30, 5, 10
	codes := make(chan int, users)
	ended := make(chan error, streams)
	for i := range users {
		tok := mustToken(t, p.base, fmt.Sprintf("user%02d", i))
		conn := mustDial(t, p.base, tok)
		if i < streams {
			req, _ := http.NewRequest("GET", p.base+"/widgets/online-users/stream", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("stream: %v %v", err, resp)
			}
			go func() {
				_, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ended <- err
			}()
		}
		if i >= users-stalled {
			continue // never reads again
		}
		go readUntilClosed(conn, codes)
	}

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-time.After(3*time.Second + 2*time.Second):
		t.Fatal("no exit within the 3 s shutdown timeout (+2 s)")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	for range users - stalled {
		if code := <-codes; code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	for range streams {
		if err := <-ended; err != nil {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
	}
	db := openDB(t, data)
	for i := range users {
		if u := persisted(t, db, fmt.Sprintf("user%02d", i)); u.IsOnline || u.LastSeen.IsZero() {
			t.Fatalf("user%02d after SIGTERM: online=%v last_seen=%v", i, u.IsOnline, u.LastSeen)
		}
	}
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
}
