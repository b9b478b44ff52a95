package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
	// Other people are still served: a new socket for alice and the API.
	mustDial(t, base, tokA)
	if got := onlineNames(t, base, tokB); !slices.Equal(got, []string{"alice"}) {
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
