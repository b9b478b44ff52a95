package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/store/storetest"
)

var ctx = context.Background()

// onPostgres is set by TestMain for its second run of the suite: every
// test that opens its database with MustOpenDB or NewOpener then runs on
// PostgreSQL (a fresh schema each), and SQLite-only tests skip.
var onPostgres bool

// TestMain runs the store tests on SQLite, then again on PostgreSQL when
// it answers at PRESENCE_TEST_DATABASE_URL (skipped with a message when it
// does not, failed when CI=true).
func TestMain(m *testing.M) {
	code := m.Run()
	if err := storetest.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "store tests on PostgreSQL:", storetest.Unavailable(err))
		if storetest.Required() {
			fmt.Fprintln(os.Stderr, "FAIL: CI=true requires PostgreSQL")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "SKIP: store tests on PostgreSQL")
		os.Exit(code)
	}
	fmt.Println("=== store tests again, on PostgreSQL")
	onPostgres = true
	if pg := m.Run(); pg != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: store tests on PostgreSQL")
		code = pg
	}
	os.Exit(code)
}

// NewOpener returns a function that opens (without migrating) a new handle
// on one fresh database, closed at cleanup: a file in a temp dir, or a
// fresh PostgreSQL schema on the PostgreSQL run. Two handles are two
// processes (or nodes) sharing the database.
//
// On PostgreSQL, params (key=value) are added to the database URL.
func NewOpener(tb testing.TB, params ...string) func() *store.DB {
	tb.Helper()
	var open func() (*store.DB, error)
	if onPostgres {
		url := storetest.URL(tb)
		for _, p := range params {
			url += "&" + p
		}
		open = func() (*store.DB, error) { return store.OpenPostgres(ctx, url) }
	} else {
		path := filepath.Join(tb.TempDir(), "presence.db")
		open = func() (*store.DB, error) { return store.Open(path) }
	}
	return func() *store.DB {
		tb.Helper()
		db, err := open()
		if err != nil {
			tb.Fatal(err)
		}
		db.BcryptCost = bcrypt.MinCost
		tb.Cleanup(func() { db.Close() })
		return db
	}
}

// SQLiteOnly skips the rest of a test on the PostgreSQL run: it tests
// something only SQLite has (its file, its locks, its query planner).
func SQLiteOnly(tb testing.TB, why string) {
	tb.Helper()
	if onPostgres {
		tb.Skip("SQLite only: " + why)
	}
}

// MustOpenDB opens and migrates a fresh database (SQLite in a temp dir,
// or a PostgreSQL schema on the PostgreSQL run), closed at cleanup.
func MustOpenDB(tb testing.TB) *store.DB {
	tb.Helper()
	db := NewOpener(tb)()
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return db
}

// MustOpenDBPath is MustOpenDB on SQLite that also returns the database
// file's path. Tests that use it are SQLite only.
func MustOpenDBPath(tb testing.TB) (*store.DB, string) {
	tb.Helper()
	SQLiteOnly(tb, "uses the database file")
	path := filepath.Join(tb.TempDir(), "presence.db")
	db, err := store.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	db.BcryptCost = bcrypt.MinCost
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, path
}

func MustCreateUser(tb testing.TB, db *store.DB, name string) store.User {
	tb.Helper()
	u, err := db.CreateUser(ctx, name, "correct horse")
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestMigrate(t *testing.T) {
	db := NewOpener(t)()
	applied, err := db.Migrate(ctx)
	// Every embedded migration, in name order: the runner sorts by name.
	want, globErr := store.MigrationNames()
	if globErr != nil || len(want) < 6 || want[0] != "0001_init.sql" {
		t.Fatalf("embedded migrations = %v, %v", want, globErr)
	}
	if err != nil || !slices.Equal(applied, want) {
		t.Fatalf("first migrate = %v, %v", applied, err)
	}
	applied, err = db.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate = %v, %v; want nothing applied", applied, err)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMigrate_Concurrent: nodes starting together on one database each
// migrate it; every migration is applied once and none fails.
func TestMigrate_Concurrent(t *testing.T) {
	open := NewOpener(t)
	const n = 3
	var wg sync.WaitGroup
	applied := make([][]string, n)
	errs := make([]error, n)
	for i := range n {
		db := open()
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = db.Migrate(ctx)
		}()
	}
	wg.Wait()
	want, _ := store.MigrationNames()
	var all []string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		all = append(all, applied[i]...)
	}
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Fatalf("applied %v altogether, want each of %v once", all, want)
	}
}

func TestCreateUser(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db := MustOpenDB(t)
		u := MustCreateUser(t, db, "Alice")
		got, err := db.UserByName(ctx, "alice")
		if err != nil || got.ID != u.ID || got.Username != "Alice" || got.IsOnline {
			t.Fatalf("UserByName = %+v, %v", got, err)
		}
	})
	t.Run("ErrUsernameTaken", func(t *testing.T) {
		db := MustOpenDB(t)
		MustCreateUser(t, db, "alice")
		if _, err := db.CreateUser(ctx, "ALICE", "correct horse"); !errors.Is(err, store.ErrUsernameTaken) {
			t.Fatalf("err = %v, want ErrUsernameTaken", err)
		}
	})
	t.Run("ErrInvalidUsername", func(t *testing.T) {
		db := MustOpenDB(t)
		for _, name := range []string{"", "ab", "<img src=x onerror=alert(1)>", "a b c", "x\xffy", "abcdefghijklmnopqrstuvwxyz0123456789"} {
			if _, err := db.CreateUser(ctx, name, "correct horse"); !errors.Is(err, store.ErrInvalidUsername) {
				t.Errorf("CreateUser(%q) err = %v, want ErrInvalidUsername", name, err)
			}
		}
		if _, err := db.CreateUser(ctx, "zoë.o_k-1", "correct horse"); err != nil {
			t.Errorf("unicode name refused: %v", err)
		}
	})
	t.Run("ErrInvalidPassword", func(t *testing.T) {
		db := MustOpenDB(t)
		for _, pw := range []string{"", "short", string(make([]byte, 73))} {
			if _, err := db.CreateUser(ctx, "bob", pw); !errors.Is(err, store.ErrInvalidPassword) {
				t.Errorf("password len %d: err = %v, want ErrInvalidPassword", len(pw), err)
			}
		}
	})
}

func TestAuthenticate(t *testing.T) {
	db := MustOpenDB(t)
	u := MustCreateUser(t, db, "alice")
	if got, err := db.Authenticate(ctx, "ALICE", "correct horse"); err != nil || got.ID != u.ID {
		t.Fatalf("OK: %+v, %v", got, err)
	}
	if _, err := db.Authenticate(ctx, "alice", "wrong horse"); !errors.Is(err, store.ErrInvalidLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := db.Authenticate(ctx, "nobody", "correct horse"); !errors.Is(err, store.ErrInvalidLogin) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestTokens(t *testing.T) {
	db := MustOpenDB(t)
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	u := MustCreateUser(t, db, "alice")

	t.Run("OK", func(t *testing.T) {
		tok, err := db.CreateToken(ctx, u.ID, store.TokenAPI, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.UserByToken(ctx, store.TokenAPI, tok); err != nil || got.ID != u.ID {
			t.Fatalf("UserByToken = %+v, %v", got, err)
		}
	})
	t.Run("Embed", func(t *testing.T) {
		tok, err := db.CreateToken(ctx, u.ID, store.TokenEmbed, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.UserByToken(ctx, store.TokenEmbed, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UserByToken(ctx, store.TokenAPI, tok); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("embed token accepted as API token: %v", err)
		}
	})
	t.Run("WrongKind", func(t *testing.T) {
		tok, _ := db.CreateToken(ctx, u.ID, store.TokenSession, 0)
		if _, err := db.UserByToken(ctx, store.TokenAPI, tok); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("session token accepted as API token: %v", err)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		tok, _ := db.CreateToken(ctx, u.ID, store.TokenAPI, time.Hour)
		now = now.Add(time.Hour)
		if _, err := db.UserByToken(ctx, store.TokenAPI, tok); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("expired token accepted: %v", err)
		}
	})
	t.Run("Revoked", func(t *testing.T) {
		tok, _ := db.CreateToken(ctx, u.ID, store.TokenAPI, 0)
		if err := db.RevokeToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UserByToken(ctx, store.TokenAPI, tok); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("revoked token accepted: %v", err)
		}
	})
	t.Run("Garbage", func(t *testing.T) {
		for _, s := range []string{"", "prs_nope", "Bearer x", string(make([]byte, 5000))} {
			if _, err := db.UserByToken(ctx, store.TokenAPI, s); !errors.Is(err, store.ErrInvalidToken) {
				t.Fatalf("%q: %v", s, err)
			}
		}
	})
	t.Run("LastUsedThrottled", func(t *testing.T) {
		tok, _ := db.CreateToken(ctx, u.ID, store.TokenAPI, 0)
		before := db.Stats().WriteTxs
		for range 50 {
			if _, err := db.UserByToken(ctx, store.TokenAPI, tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := db.Stats().WriteTxs - before; n != 1 {
			t.Fatalf("50 uses wrote %d times, want 1", n)
		}
	})
}

func TestPresence(t *testing.T) {
	db := MustOpenDB(t)
	a, b, c := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")
	t1 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	err := db.SavePresence(ctx, []presence.Record{
		{UserID: a.ID, HasStatus: true, Online: true, LastActivity: t1},
		{UserID: b.ID, HasStatus: true, Online: true},
		{UserID: c.ID, HasStatus: true, Online: false, LastSeen: t1},
		{UserID: 999, HasStatus: true, Online: true}, // deleted user: ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Stats(); got.WriteRows < 3 {
		t.Fatalf("rows written = %d", got.WriteRows)
	}
	// Activity alone leaves is_online alone.
	if err := db.SavePresence(ctx, []presence.Record{{UserID: a.ID, LastActivity: t1.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	got, _ := db.UserByID(ctx, a.ID)
	if !got.IsOnline || !got.LastActivity.Equal(t1.Add(time.Minute)) || !got.LastSeen.IsZero() {
		t.Fatalf("alice = %+v", got)
	}

	// After a crash: ResetPresence takes everyone offline.
	t2 := t1.Add(time.Hour)
	n, err := db.ResetPresence(ctx, t2)
	if err != nil || n != 2 {
		t.Fatalf("ResetPresence = %d, %v; want 2", n, err)
	}
	users, err := db.UsersByIDs(ctx, []int64{a.ID, b.ID, c.ID})
	if err != nil {
		t.Fatal(err)
	}
	if u := users[a.ID]; u.IsOnline || !u.LastSeen.Equal(t1.Add(time.Minute)) {
		t.Errorf("alice after reset = %+v, want offline, last seen = last activity", u)
	}
	if u := users[b.ID]; u.IsOnline || !u.LastSeen.Equal(t2) {
		t.Errorf("bob after reset = %+v, want offline, last seen = reset time", u)
	}
	if u := users[c.ID]; !u.LastSeen.Equal(t1) {
		t.Errorf("carol after reset = %+v, want untouched", u)
	}
}

// TestConcurrentWrites shows the single-writer setup never fails with
// "database is locked" while readers run.
func TestConcurrentWrites(t *testing.T) {
	db := MustOpenDB(t)
	u := MustCreateUser(t, db, "alice")
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				if i%2 == 0 {
					errs <- db.SavePresence(ctx, []presence.Record{{UserID: u.ID, LastActivity: time.UnixMilli(int64(j + 1))}})
				} else {
					_, err := db.UserByID(ctx, u.ID)
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
