package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/cluster/clustertest"
	"github.com/presencehq/presence/store/storetest"
)

// TestServe_ThreeNodes: three server processes on one PostgreSQL database
// and one Redis. Users connected to different nodes see each other in the
// API, the WebSocket events and the widget of every node; a user with a tab
// on two nodes is one user. kill -9 of a node takes its users offline on
// the others within 15 s, except one still connected elsewhere. Redis
// restarted mid-run (it keeps nothing): within 5 s the nodes have put
// their edges back and changes flow again. At the end nobody is left
// online.
func TestServe_ThreeNodes(t *testing.T) {
	dbURL := storetest.URL(t)
	r := clustertest.MustStart(t)
	keys := filepath.Join(t.TempDir(), "session.keys")
	args := func(id string) []string {
		return fastArgs(dataDir(t), "--database-url", dbURL, "--redis", r.URL(), "--node-id", id,
			"--session-keys", keys, "--grace", "300ms", "--flush-interval", "20ms")
	}
	n1 := startProcess(t, args("n1")) // makes the session keys the others share
	n2, n3 := startProcess(t, args("n2")), startProcess(t, args("n3"))
	nodes := []*process{n1, n2, n3}

	tok := map[string]string{}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin", "viewer"} {
		tok[name] = mustToken(t, n1.base, name)
	}
	watch := mustDial(t, n3.base, tok["viewer"]) // the original protocol's events, on n3
	alice := mustDial(t, n1.base, tok["alice"])
	bob := mustDial(t, n2.base, tok["bob"])
	mustDial(t, n3.base, tok["carol"])
	mustDial(t, n3.base, tok["erin"]) // erin has a tab on n3 and one on n1
	mustDial(t, n1.base, tok["erin"])

	want := []string{"alice", "bob", "carol", "erin"}
	for _, p := range nodes {
		eventually(t, "every node lists the users of every node", 10*time.Second, func() bool {
			return slices.Equal(onlineNames(t, p.base, tok["dave"]), append(want, "viewer"))
		})
	}
	// WebSocket: the watcher on n3 heard alice (on n1) and bob (on n2)
	// come online, and erin only once.
	heard := readEvents(t, watch, 2*time.Second)
	for _, name := range []string{"alice", "bob", "carol"} {
		if heard[name+":true"] != 1 {
			t.Errorf("the socket on n3 heard %s come online %d times, want 1 (heard %v)", name, heard[name+":true"], heard)
		}
	}
	if heard["erin:true"] != 1 {
		t.Errorf("erin, with a tab on two nodes, came online %d times on n3's socket, want 1", heard["erin:true"])
	}
	// Rooms: alice (n1) and bob (n2) in one room, as every node sees it.
	for _, c := range []*websocket.Conn{alice, bob} {
		if err := c.WriteJSON(map[string]string{"type": "room", "room": "/docs/plan"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range nodes {
		eventually(t, "alice and bob in the room on every node", 10*time.Second, func() bool {
			return slices.Equal(roomNames(t, p.base, tok["dave"], "/docs/plan"), []string{"alice", "bob"})
		})
	}
	// The widget of n2 shows the users of n1 and n3.
	out, err := runCmd(t, "", map[string]string{"PRESENCE_DATABASE_URL": dbURL}, "user", "embed-token", "--data", t.TempDir(), "viewer")
	if err != nil {
		t.Fatalf("embed-token: %q %v", out, err)
	}
	list := widgetList(t, n2.base, strings.TrimSpace(out))
	for _, name := range want {
		if !strings.Contains(list, ">"+name+"<") {
			t.Errorf("n2's widget list lacks %s", name)
		}
	}

	// kill -9 of n3: carol (only there) goes offline everywhere within
	// 15 s; erin, still on n1, stays.
	if err := n3.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n3.cmd.Wait()
	killed := time.Now()
	for _, p := range []*process{n1, n2} {
		eventually(t, "carol offline after her node died", 15*time.Second, func() bool {
			return slices.Equal(onlineNames(t, p.base, tok["dave"]), []string{"alice", "bob", "erin"})
		})
	}
	t.Logf("n3's users offline on n1 and n2 %v after kill -9", time.Since(killed).Round(100*time.Millisecond))

	// Redis restarts and keeps nothing: the nodes put their edges back.
	r.Restart()
	restarted := time.Now()
	rdb := r.Client()
	eventually(t, "the edges of alice, bob and erin back in Redis", 5*time.Second, func() bool {
		n, _ := rdb.SCard(context.Background(), "presence:online").Result()
		return n == 3
	})
	// And changes cross nodes again: dave comes online on n2, bob leaves.
	mustDial(t, n2.base, tok["dave"])
	bob.Close()
	eventually(t, "n1 sees dave come and bob go", 5*time.Second, func() bool {
		return slices.Equal(onlineNames(t, n1.base, tok["viewer"]), []string{"alice", "dave", "erin"})
	})
	t.Logf("truth back on n1 %v after Redis restarted", time.Since(restarted).Round(100*time.Millisecond))
	for _, p := range []*process{n1, n2} {
		eventually(t, "healthy again", 5*time.Second, func() bool {
			code, h := getHealth(t, p.base)
			return code == 200 && h.Status == "ok" && h.Checks["redis"] == "ok"
		})
	}
}

// roomNames returns the usernames /api/rooms/online/ lists for room.
func roomNames(tb testing.TB, base, token, room string) []string {
	tb.Helper()
	req, _ := http.NewRequest("GET", base+"/api/rooms/online/?room="+url.QueryEscape(room), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct{ Username string }
	json.NewDecoder(resp.Body).Decode(&list)
	names := []string{}
	for _, u := range list {
		names = append(names, u.Username)
	}
	return names
}

// readEvents reads user.status.changed messages for d and counts them by
// "username:is_online".
func readEvents(tb testing.TB, conn *websocket.Conn, d time.Duration) map[string]int {
	tb.Helper()
	heard := map[string]int{}
	conn.SetReadDeadline(time.Now().Add(d))
	defer conn.SetReadDeadline(time.Time{})
	for {
		var m struct {
			Type     string `json:"type"`
			Username string `json:"username"`
			IsOnline bool   `json:"is_online"`
		}
		_, b, err := conn.ReadMessage()
		if err != nil {
			return heard
		}
		if json.Unmarshal(b, &m) == nil && m.Type == "user.status.changed" {
			heard[m.Username+":"+map[bool]string{true: "true", false: "false"}[m.IsOnline]]++
		}
	}
}

// widgetList fetches the widget's list fragment with an embed token.
func widgetList(tb testing.TB, base, embed string) string {
	tb.Helper()
	resp, err := testClient.Get(base + "/widgets/online-users/list?embed_token=" + embed)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("widget list: %s", resp.Status)
	}
	return string(b)
}

// TestServe_RedisFlags: PRESENCE_REDIS_URL is --redis, which needs a
// shared PostgreSQL database, and is refused by the demo.
func TestServe_RedisFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"ErrDatabaseRequired", []string{"serve", "--data", t.TempDir()}, map[string]string{"PRESENCE_REDIS_URL": "redis://127.0.0.1:6379"}, "--redis needs --database-url"},
		{"ErrDemo", []string{"serve", "--demo", "--redis", "redis://127.0.0.1:6379"}, nil, "--demo runs alone"},
		{"ErrBadURL", []string{"serve", "--data", t.TempDir(), "--database-url", "postgres://x/y", "--redis", "http://nope"}, nil, "--redis:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCmd(t, "", tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error()+out, tc.want) {
				t.Fatalf("err = %v, out = %q; want %q", err, out, tc.want)
			}
		})
	}
}
