package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestMain lets the test binary act as the presence binary, so the crash
// and signal tests can SIGKILL or SIGTERM a real server process without a
// separate build. The child runs exactly what main runs.
func TestMain(m *testing.M) {
	if args := os.Getenv("PRESENCE_TEST_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		if n := os.Getenv("PRESENCE_TEST_NOFILE"); n != "" {
			setFileLimit(n)
		}
		os.Exit(runProcess(argv))
	}
	os.Exit(m.Run())
}

// fastArgs keep tests quick; the test's data dir comes first.
func fastArgs(data string, extra ...string) []string {
	return append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--bcrypt-cost", "4", "--log-level", "warn"}, extra...)
}

// waitListening reads the server's stdout until it says where it listens.
func waitListening(tb testing.TB, r io.Reader) string {
	tb.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if _, addr, ok := strings.Cut(sc.Text(), "listening on "); ok {
				found <- addr
				break
			}
		}
		io.Copy(io.Discard, r)
	}()
	select {
	case addr := <-found:
		waitHealthy(tb, addr)
		return addr
	case <-time.After(20 * time.Second):
		tb.Fatal("server did not start")
	}
	return ""
}

// waitHealthy polls /healthz until it answers 200.
func waitHealthy(tb testing.TB, base string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := testClient.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatal("server never became healthy")
}

// inProcess runs the server through run() and returns its base URL and a
// stop function that cancels it and returns run's error.
func inProcess(tb testing.TB, args []string) (string, func() error) {
	tb.Helper()
	return inProcessLog(tb, args, io.Discard)
}

// inProcessLog is inProcess with the server's log written to stderr.
func inProcessLog(tb testing.TB, args []string, stderr io.Writer) (string, func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, strings.NewReader(""), pw, stderr)
		pw.Close()
	}()
	base := waitListening(tb, pr)
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				tb.Fatal("run did not return after cancel")
			}
		}
		return runErr
	}
	tb.Cleanup(func() { stop() })
	return base, stop
}

// process is the server in a child process.
type process struct {
	cmd  *exec.Cmd
	base string
}

func startProcess(tb testing.TB, args []string, env ...string) *process {
	tb.Helper()
	argv, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PRESENCE_TEST_ARGS="+string(argv))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &process{cmd: cmd, base: waitListening(tb, out)}
}

func postJSON(tb testing.TB, url, body string) (int, map[string]any) {
	tb.Helper()
	resp, err := testClient.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// mustToken registers name (if needed) and returns an API token.
func mustToken(tb testing.TB, base, name string) string {
	tb.Helper()
	creds := `{"username":"` + name + `","password":"password1"}`
	postJSON(tb, base+"/api/auth/register/", creds)
	code, m := postJSON(tb, base+"/api/auth/token/", creds)
	if code != 200 {
		tb.Fatalf("token for %s: %d %v", name, code, m)
	}
	return m["access"].(string)
}

func mustDial(tb testing.TB, base, token string) *websocket.Conn {
	tb.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws/user-status/?token=" + url.QueryEscape(token)
	conn, _, err := testDialer.Dial(u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	var ack map[string]any
	if err := conn.ReadJSON(&ack); err != nil || ack["type"] != "connection.ack" {
		tb.Fatalf("ack = %v, %v", ack, err)
	}
	return conn
}

// onlineNames returns the usernames /api/users/online/ lists for token.
func onlineNames(tb testing.TB, base, token string) []string {
	tb.Helper()
	req, _ := http.NewRequest("GET", base+"/api/users/online/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("online users: %s", resp.Status)
	}
	var list []struct{ Username string }
	json.NewDecoder(resp.Body).Decode(&list)
	names := []string{}
	for _, u := range list {
		names = append(names, u.Username)
	}
	return names
}

func eventually(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dataDir(tb testing.TB) string { return filepath.Join(tb.TempDir(), "data") }

// syncBuffer is a bytes.Buffer safe for a logger writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// health is the body of /healthz.
type health struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// getHealth fetches /healthz and returns its status code and body.
func getHealth(tb testing.TB, base string) (int, health) {
	tb.Helper()
	resp, err := testClient.Get(base + "/healthz")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		tb.Fatalf("healthz body: %v", err)
	}
	return resp.StatusCode, h
}
