package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presencehq/presence/store"
)

// tableDump returns cols of every row of table, ordered by its first column, as text.
func tableDump(tb testing.TB, path, table, cols string) []string {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT " + cols + " FROM " + table + " ORDER BY 1")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	names, _ := rows.Columns()
	var dump []string
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		dump = append(dump, fmt.Sprint(vals...))
	}
	return dump
}

// TestBackupRestore: a backup taken while the server runs restores into a
// copy whose users and tokens equal the original's, and the restored
// server accepts the users' passwords and tokens.
func TestBackupRestore(t *testing.T) {
	dataA := t.TempDir()
	base, stop := inProcess(t, fastArgs(dataA))
	var tokens []string
	for _, name := range []string{"alice", "bob", "carol"} {
		tokens = append(tokens, mustToken(t, base, name))
	}
	mustDial(t, base, tokens[0]) // alice online while the backup is taken

	backup := filepath.Join(t.TempDir(), "presence-backup.db")
	t.Run("OK", func(t *testing.T) {
		out, err := runCmd(t, "", nil, "backup", "--data", dataA, backup)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, backup) {
			t.Errorf("backup said %q", out)
		}
	})
	t.Run("ErrExists", func(t *testing.T) {
		if _, err := runCmd(t, "", nil, "backup", "--data", dataA, backup); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("second backup to the same file: %v", err)
		}
	})
	t.Run("ErrServerRunning", func(t *testing.T) {
		_, err := runCmd(t, "", nil, "restore", "--data", dataA, backup)
		if !errors.Is(err, errDataDirInUse) || !strings.Contains(err.Error(), "stop the server") {
			t.Fatalf("restore under a running server: %v", err)
		}
	})
	t.Run("ErrSecondServer", func(t *testing.T) {
		_, err := runCmd(t, "", nil, fastArgs(dataA)...)
		if !errors.Is(err, errDataDirInUse) {
			t.Fatalf("second server on the same data dir: %v", err)
		}
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Restore into a fresh data dir and into the original one: both equal
	// the original's tables.
	dataB := t.TempDir()
	if _, err := runCmd(t, "", nil, "restore", "--data", dataB, backup); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "", nil, "restore", "--data", dataA, backup)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kept the previous database") {
		t.Errorf("restore over a database said %q", out)
	}
	kept, _ := filepath.Glob(filepath.Join(dataA, "presence.db.before-restore-*"))
	if len(kept) == 0 {
		t.Error("the replaced database was not kept")
	}
	// Restored copies equal the backup byte for byte in every table...
	for _, table := range []string{"users", "tokens", "schema_migrations"} {
		want := tableDump(t, backup, table, "*")
		for _, dir := range []string{dataA, dataB} {
			if got := tableDump(t, filepath.Join(dir, "presence.db"), table, "*"); !reflect.DeepEqual(got, want) {
				t.Errorf("%s in %s:\n got %q\nwant %q", table, dir, got, want)
			}
		}
	}
	// ...and the backup holds the original's accounts and tokens (presence
	// columns moved on after it was taken: alice went offline at the stop).
	for table, cols := range map[string]string{"users": "id, username, password_hash, created_at", "tokens": "id, user_id, kind, hash, created_at"} {
		orig := tableDump(t, kept[0], table, cols)
		if got := tableDump(t, backup, table, cols); len(orig) < 3 || !reflect.DeepEqual(got, orig) {
			t.Errorf("%s in the backup:\n got %q\nwant %q", table, got, orig)
		}
	}
	if _, err := os.Stat(filepath.Join(dataB, "presence.db.restoring")); !os.IsNotExist(err) {
		t.Error("the working copy was left behind")
	}

	// The restored server knows the users, their passwords and tokens.
	baseB, _ := inProcess(t, fastArgs(dataB))
	if code, m := postJSON(t, baseB+"/api/auth/token/", `{"username":"bob","password":"password1"}`); code != 200 {
		t.Fatalf("login on the restored copy: %d %v", code, m)
	}
	mustDial(t, baseB, tokens[2])
}

// TestRestore_RefusesBadBackups: a file that is not a database, and a
// database from a newer version, are refused without touching the data dir.
func TestRestore_RefusesBadBackups(t *testing.T) {
	data := t.TempDir()
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not sqlite "), 1000), 0o600)
	t.Run("ErrNotADatabase", func(t *testing.T) {
		if _, err := runCmd(t, "", nil, "restore", "--data", data, garbage); err == nil {
			t.Fatal("restored a file that is not a database")
		}
		if _, err := os.Stat(filepath.Join(data, "presence.db")); !os.IsNotExist(err) {
			t.Fatal("a refused restore left a database behind")
		}
	})
	t.Run("ErrSchemaTooNew", func(t *testing.T) {
		future := filepath.Join(t.TempDir(), "future.db")
		futureDB(t, future)
		_, err := runCmd(t, "", nil, "restore", "--data", data, future)
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("restore of a newer schema: %v", err)
		}
	})
}

// futureDB makes a database that a later version of presence migrated.
func futureDB(tb testing.TB, path string) {
	tb.Helper()
	db, err := store.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_from_the_future.sql', 0)"); err != nil {
		tb.Fatal(err)
	}
}

// TestServe_RefusesNewerSchema: serve and migrate stop with a clear message
// on a database from a newer version instead of running on it.
func TestServe_RefusesNewerSchema(t *testing.T) {
	data := t.TempDir()
	futureDB(t, filepath.Join(data, "presence.db"))
	for _, args := range [][]string{{"migrate", "--data", data}, fastArgs(data)} {
		// A server that starts anyway is stopped after a while, and fails.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, args, func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard)
		cancel()
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999_from_the_future.sql") {
			t.Errorf("%s: %v", args[0], err)
		}
	}
}
