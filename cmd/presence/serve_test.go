package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/store"
)

func openDB(tb testing.TB, data string) *store.DB {
	tb.Helper()
	db, err := store.Open(filepath.Join(data, "presence.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func persisted(tb testing.TB, db *store.DB, name string) store.User {
	tb.Helper()
	u, err := db.UserByName(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// TestServe_HardKill: SIGKILL a server with users connected and persisted
// online; on restart nobody is shown online, last_seen is set, and the
// database is intact.
func TestServe_HardKill(t *testing.T) {
	data := dataDir(t)
	p := startProcess(t, fastArgs(data, "--flush-interval", "20ms"))
	tokA, tokB := mustToken(t, p.base, "alice"), mustToken(t, p.base, "bob")
	mustDial(t, p.base, tokA)
	mustDial(t, p.base, tokB)
	db := openDB(t, data)
	eventually(t, "both persisted online", 10*time.Second, func() bool {
		return persisted(t, db, "alice").IsOnline && persisted(t, db, "bob").IsOnline
	})

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	if !persisted(t, db, "alice").IsOnline {
		t.Fatal("precondition: a crash leaves is_online set in the database")
	}

	p2 := startProcess(t, fastArgs(data))
	if got := onlineNames(t, p2.base, tokA); len(got) != 0 {
		t.Fatalf("after restart online = %v, want nobody", got)
	}
	for _, name := range []string{"alice", "bob"} {
		u := persisted(t, db, name)
		if u.IsOnline || u.LastSeen.IsZero() {
			t.Fatalf("%s after restart: online=%v last_seen=%v", name, u.IsOnline, u.LastSeen)
		}
	}
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestServe_GracefulShutdown: on cancel every socket gets 1001, everyone is
// recorded offline, and pending writes (a ping inside a long flush
// interval) are flushed before run returns.
func TestServe_GracefulShutdown(t *testing.T) {
	data := dataDir(t)
	base, stop := inProcess(t, fastArgs(data, "--flush-interval", "1h"))
	tok := mustToken(t, base, "alice")
	conn := mustDial(t, base, tok)
	conn.WriteJSON(map[string]string{"type": "ping"})
	for {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "pong" {
			break
		}
	}
	closed := make(chan int, 1)
	go readUntilClosed(conn, closed)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if code := <-closed; code != websocket.CloseGoingAway {
		t.Fatalf("close code = %d, want 1001", code)
	}
	t.Logf("shutdown took %v", time.Since(start))

	u := persisted(t, openDB(t, data), "alice")
	if u.IsOnline || u.LastSeen.IsZero() || u.LastActivity.IsZero() {
		t.Fatalf("after shutdown: %+v, want offline with last_seen and last_activity", u)
	}
}

// TestServe_DeadPeerRealClock: the heartbeat deadline works with the real
// clock: a socket whose peer stops answering pings is dropped.
func TestServe_DeadPeerRealClock(t *testing.T) {
	base, _ := inProcess(t, fastArgs(dataDir(t), "--heartbeat-deadline", "600ms", "--ping-interval", "200ms", "--grace", "200ms"))
	tokA, tokB := mustToken(t, base, "alice"), mustToken(t, base, "bob")
	dead := mustDial(t, base, tokB)
	dead.SetPingHandler(func(string) error { return nil }) // a vanished peer never pongs
	go func() {
		for {
			if _, _, err := dead.ReadMessage(); err != nil {
				return
			}
		}
	}()
	eventually(t, "bob online", 5*time.Second, func() bool { return slices.Contains(onlineNames(t, base, tokA), "bob") })
	eventually(t, "bob dropped and offline", 10*time.Second, func() bool { return len(onlineNames(t, base, tokA)) == 0 })
}

// TestOriginalClient speaks the original app's protocol exactly, against the
// default timings: ack, a ping every 30 s, status events. It takes about a
// minute of real time, so it runs in parallel and is skipped with -short.
func TestOriginalClient(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time 30 s ping cadence")
	}
	t.Parallel()
	base, _ := inProcess(t, fastArgs(dataDir(t), "--grace", "1s"))
	tokA, tokB := mustToken(t, base, "alice"), mustToken(t, base, "bob")
	alice := mustDial(t, base, tokA)

	type msg struct {
		Type     string  `json:"type"`
		UserID   string  `json:"user_id"`
		Username string  `json:"username"`
		IsOnline bool    `json:"is_online"`
		LastSeen *string `json:"last_seen"`
	}
	msgs := make(chan msg, 64)
	go func() {
		defer close(msgs)
		for {
			_, data, err := alice.ReadMessage()
			if err != nil {
				return
			}
			var m msg
			if json.Unmarshal(data, &m) == nil {
				msgs <- m
			}
		}
	}()
	expect := func(what string, ok func(msg) bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m, open := <-msgs:
				if !open {
					t.Fatalf("socket closed while waiting for %s", what)
				}
				if ok(m) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s", what)
			}
		}
	}

	bob := mustDial(t, base, tokB)
	go func() { // a live tab reads, so it answers the server's ping frames
		for {
			if _, _, err := bob.ReadMessage(); err != nil {
				return
			}
		}
	}()
	expect("bob online", func(m msg) bool { return m.Type == "user.status.changed" && m.Username == "bob" && m.IsOnline })

	// The original client pings every 30 s; over two intervals the server
	// must neither drop it nor miss a pong.
	for range 2 {
		time.Sleep(30 * time.Second)
		if err := alice.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		expect("pong", func(m msg) bool {
			if m.Type == "user.status.changed" {
				t.Fatalf("unexpected %+v while both are connected", m)
			}
			return m.Type == "pong"
		})
	}
	bob.Close()
	expect("bob offline", func(m msg) bool {
		return m.Type == "user.status.changed" && m.Username == "bob" && !m.IsOnline && m.LastSeen != nil
	})
}

// TestServe_Slowloris: a client that trickles its request headers is cut
// off at --read-header-timeout, and the server keeps serving others.
func TestServe_Slowloris(t *testing.T) {
	base, _ := inProcess(t, fastArgs(dataDir(t), "--read-header-timeout", "300ms"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() { // one header byte every 100 ms, forever
		defer close(closed)
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		for range 100 {
			if _, err := conn.Write([]byte("X")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	buf := make([]byte, 1024)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("slow client still connected after 5 s")
			}
			break // the server closed it
		}
	}
	waitHealthy(t, base) // others are served
}

// TestServe_GracefulShutdownUnderLoad: with many sockets open, some of them
// never reading, SIGTERM-style cancellation returns within the shutdown
// limit, every reading socket gets 1001, and everyone is recorded offline.
func TestServe_GracefulShutdownUnderLoad(t *testing.T) {
	data := dataDir(t)
	base, stop := inProcess(t, fastArgs(data, "--shutdown-timeout", "3s", "--register-limit", "0"))
	const users, stalled = 30, 5
	codes := make(chan int, users)
	for i := range users {
		conn := mustDial(t, base, mustToken(t, base, fmt.Sprintf("user%02d", i)))
		if i < stalled {
			continue // never reads again
		}
		go readUntilClosed(conn, codes)
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if took := time.Since(start); took > 3*time.Second+time.Second {
		t.Fatalf("shutdown took %v with a 3 s limit", took)
	}
	for range users - stalled {
		if code := <-codes; code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	db := openDB(t, data)
	for i := range users {
		if u := persisted(t, db, fmt.Sprintf("user%02d", i)); u.IsOnline || u.LastSeen.IsZero() {
			t.Fatalf("user%02d after shutdown: %+v", i, u)
		}
	}
}

// readUntilClosed reads conn until it ends and sends the close code (-1 when
// the connection ended without a close frame).
func readUntilClosed(conn *websocket.Conn, codes chan<- int) {
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			code := -1
			if ce, ok := err.(*websocket.CloseError); ok {
				code = ce.Code
			}
			codes <- code
			return
		}
	}
}

// TestServe_StatusSurvivesRestart: a chosen mode, custom status and
// visibility are written through the batcher and loaded at the next start.
func TestServe_StatusSurvivesRestart(t *testing.T) {
	data := dataDir(t)
	base, stop := inProcess(t, fastArgs(data, "--flush-interval", "1h"))
	tok := mustToken(t, base, "alice")
	req, _ := http.NewRequest("PUT", base+"/api/users/me/status/", strings.NewReader(`{"mode":"dnd","text":"deep work","emoji":"🎧","expires_in":3600,"visibility":"nobody"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := stop(); err != nil { // the final flush writes it
		t.Fatal(err)
	}

	base, _ = inProcess(t, fastArgs(data))
	req, _ = http.NewRequest("GET", base+"/api/users/me/status/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if m["mode"] != "dnd" || m["text"] != "deep work" || m["emoji"] != "🎧" || m["visibility"] != "nobody" || m["expires_at"] == nil {
		t.Fatalf("after restart: %v", m)
	}
}
