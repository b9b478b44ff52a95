package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// TestDB_Unavailable: failures of the database itself are marked
// ErrUnavailable (so the server can answer 503 and retry), keep their cause,
// and leave the database usable once the fault clears.
func TestDB_Unavailable(t *testing.T) {
	t.Run("Full", func(t *testing.T) {
		SQLiteOnly(t, "fills the database with a SQLite pragma")
		db := MustOpenDB(t)
		alice := MustCreateUser(t, db, "alice")
		if err := store.SetWriterPragma(db, "max_page_count = 1"); err != nil { // never below the current size
			t.Fatal(err)
		}
		var err error
		for i := 0; err == nil && i < 1000; i++ {
			_, err = db.CreateUser(ctx, fmt.Sprintf("user%04d-%s", i, strings.Repeat("x", 20)), "password1")
		}
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "full") {
			t.Fatalf("err = %v, want ErrUnavailable naming the cause", err)
		}
		err = db.SavePresence(ctx, []presence.Record{{UserID: alice.ID, HasStatus: true, Online: true}})
		if err != nil && !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("SavePresence on a full database: %v", err)
		}
		if _, err := db.UserByName(ctx, "alice"); err != nil {
			t.Fatalf("reads on a full database: %v", err)
		}

		if err := store.SetWriterPragma(db, "max_page_count = 1073741823"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateUser(ctx, "bob", "password1"); err != nil {
			t.Fatalf("after space came back: %v", err)
		}
		if err := db.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Locked", func(t *testing.T) {
		db, path := MustOpenDBPath(t)
		if err := store.SetWriterPragma(db, "busy_timeout = 50"); err != nil {
			t.Fatal(err)
		}
		release := holdWriteLock(t, path)
		_, err := db.CreateUser(ctx, "alice", "password1")
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "locked") {
			t.Fatalf("err = %v, want ErrUnavailable naming the lock", err)
		}
		release()
		if _, err := db.CreateUser(ctx, "alice", "password1"); err != nil {
			t.Fatalf("after the lock was released: %v", err)
		}
	})

	t.Run("TokenUseWhileLocked", func(t *testing.T) {
		db, path := MustOpenDBPath(t) // the default 5 s busy timeout
		alice := MustCreateUser(t, db, "alice")
		secret, err := db.CreateToken(ctx, alice.ID, store.TokenAPI, 0)
		if err != nil {
			t.Fatal(err)
		}
		holdWriteLock(t, path)
		start := time.Now()
		u, err := db.UserByToken(ctx, store.TokenAPI, secret)
		if err != nil || u.ID != alice.ID {
			t.Fatalf("UserByToken while locked = %+v, %v", u, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("UserByToken waited %v for the lock to record the token's use", took)
		}
	})

	t.Run("OtherErrorsUnmarked", func(t *testing.T) {
		db := MustOpenDB(t)
		MustCreateUser(t, db, "alice")
		_, err := db.CreateUser(ctx, "alice", "password1")
		if !errors.Is(err, store.ErrUsernameTaken) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("duplicate username: %v", err)
		}
	})
}

// holdWriteLock takes SQLite's write lock on the database at path from
// another connection, as a backup or an admin's sqlite3 shell would. The
// returned function releases it; cleanup does too.
func holdWriteLock(tb testing.TB, path string) (release func()) {
	tb.Helper()
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		tb.Fatal(err)
	}
	lock, err := other.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			lock.ExecContext(ctx, "ROLLBACK")
			lock.Close()
			other.Close()
		})
	}
	tb.Cleanup(release)
	return release
}

// TestPostgres_Unavailable: a PostgreSQL that does not answer is
// ErrUnavailable, and connections the server drops are replaced without
// the caller seeing an error.
func TestPostgres_Unavailable(t *testing.T) {
	if !onPostgres {
		t.Skip("PostgreSQL only (runs in the PostgreSQL pass)")
	}
	t.Run("NothingListening", func(t *testing.T) {
		_, err := store.OpenPostgres(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Fatalf("open = %v, want ErrUnavailable naming the host", err)
		}
	})
	t.Run("Locked", func(t *testing.T) {
		open := NewOpener(t, "lock_timeout=200ms")
		db := open()
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		// Another node's long write transaction; a deployment in another
		// schema of the same database does not wait for it.
		release, err := store.HoldWriteLock(ctx, open())
		if err != nil {
			t.Fatal(err)
		}
		elsewhere := MustOpenDB(t)
		if _, err := elsewhere.CreateUser(ctx, "bob", "password1"); err != nil {
			t.Fatalf("another schema waited for the lock: %v", err)
		}
		start := time.Now()
		_, err = db.CreateUser(ctx, "alice", "password1")
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "lock") {
			t.Fatalf("create while locked = %v, want ErrUnavailable naming the lock timeout", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("waited %v for the lock, want about lock_timeout", took)
		}
		release()
		if _, err := db.CreateUser(ctx, "alice", "password1"); err != nil {
			t.Fatalf("after the lock was released: %v", err)
		}
	})
	t.Run("ConnectionsDropped", func(t *testing.T) {
		app := fmt.Sprintf("presence_drop_%d", time.Now().UnixNano())
		db := NewOpener(t, "application_name="+app)()
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		alice := MustCreateUser(t, db, "alice")
		other := NewOpener(t)()
		n, err := store.TerminateBackends(ctx, other, app)
		if err != nil || n == 0 {
			t.Fatalf("terminated %d backends, %v", n, err)
		}
		if u, err := db.UserByID(ctx, alice.ID); err != nil || u.Username != "alice" {
			t.Fatalf("read after the connections were dropped = %+v, %v", u, err)
		}
		if err := db.SavePresence(ctx, []presence.Record{{UserID: alice.ID, HasStatus: true, Online: true, LastActivity: time.Now()}}); err != nil {
			t.Fatalf("write after the connections were dropped: %v", err)
		}
	})
}
