package main

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of the given size (in mount's syntax, "8m") on a
// new directory and unmounts it when the test ends. It needs CAP_SYS_ADMIN:
// without it the test is skipped, unless PRESENCE_REQUIRE_MOUNT is set
// (.ci/run sets it where a probe mount succeeds).
func mountTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("PRESENCE_REQUIRE_MOUNT") == "" && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)) {
			tb.Skipf("mounting a small filesystem needs CAP_SYS_ADMIN: %v", err)
		}
		tb.Fatalf("mount tmpfs: %v", err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes path until the filesystem is full and returns how many
// bytes it took.
func fillDisk(tb testing.TB, path string) int64 {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, size := range []int{1 << 16, 1 << 12, 1 << 9} {
		buf := make([]byte, size)
		for {
			m, err := f.Write(buf)
			n += int64(m)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	return n
}

// TestServe_DiskFull runs the server on a real filesystem that fills up: the
// failing presence writes are logged and shown on /healthz, presence keeps
// working in memory, and once space is freed the pending writes land and
// /healthz is ok again. The database stays intact throughout.
func TestServe_DiskFull(t *testing.T) {
	t.Parallel()
	data := filepath.Join(mountTmpfs(t, "8m"), "data")
	var logs syncBuffer
	base, stop := inProcessLog(t, fastArgs(data, "--flush-interval", "20ms", "--grace", "50ms"), &logs)
	tokA, tokB := mustToken(t, base, "alice"), mustToken(t, base, "bob")
	mustDial(t, base, tokA)
	db := openDB(t, data)
	eventually(t, "alice persisted online", 10*time.Second, func() bool {
		return persisted(t, db, "alice").IsOnline
	})

	filler := filepath.Join(filepath.Dir(data), "filler")
	t.Logf("filled the disk with %d KiB", fillDisk(t, filler)>>10)

	bob := mustDial(t, base, tokB)
	eventually(t, "/healthz to report failing writes", 10*time.Second, func() bool {
		code, h := getHealth(t, base)
		return code == 200 && h.Status == "degraded" && h.Checks["persistence"] == "failing; retrying"
	})
	if !strings.Contains(logs.String(), "full") {
		t.Fatalf("log does not name the failure:\n%s", logs.String())
	}
	if _, h := getHealth(t, base); strings.Contains(strings.Join(slices.Collect(maps.Values(h.Checks)), " "), "full") {
		t.Fatalf("/healthz shows internals: %+v", h)
	}
	// Signing in needs a write: a clear, retryable refusal without internals.
	resp, err := http.Post(base+"/api/auth/token/", "application/json",
		strings.NewReader(`{"username":"alice","password":"password1"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "temporarily unavailable") || strings.Contains(string(body), "full") {
		t.Fatalf("sign-in while disk full = %s %q (Retry-After %q)", resp.Status, body, resp.Header.Get("Retry-After"))
	}
	// Presence works in memory while nothing can be written (the API
	// leaves out the requester).
	if got := onlineNames(t, base, tokA); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("online while disk full = %v", got)
	}
	if err := bob.WriteJSON(map[string]string{"type": "ping"}); err != nil {
		t.Fatal(err)
	}
	for {
		var msg map[string]any
		if err := bob.ReadJSON(&msg); err != nil {
			t.Fatalf("no pong while disk full: %v", err)
		}
		if msg["type"] == "pong" {
			break
		}
	}
	if persisted(t, db, "bob").IsOnline {
		t.Fatal("precondition: bob's online status was written although the disk is full")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "writes to resume", 10*time.Second, func() bool {
		code, h := getHealth(t, base)
		return code == 200 && h.Status == "ok" && persisted(t, db, "bob").IsOnline
	})
	bob.Close()
	eventually(t, "bob's logout to be written", 10*time.Second, func() bool {
		u := persisted(t, db, "bob")
		return !u.IsOnline && !u.LastSeen.IsZero()
	})
	if !strings.Contains(logs.String(), "resumed") {
		t.Fatalf("log does not say writes resumed:\n%s", logs.String())
	}
	if err := stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
}
