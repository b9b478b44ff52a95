package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT a FROM t WHERE x = ? AND y IN (?, ?)", "SELECT a FROM t WHERE x = $1 AND y IN ($2, $3)"},
		{"SELECT '?', \"a?\" FROM t WHERE x = ?", "SELECT '?', \"a?\" FROM t WHERE x = $1"},
		{"SELECT 'it''s ?' WHERE x = ?", "SELECT 'it''s ?' WHERE x = $1"},
		{"-- why?\nSELECT ?", "-- why?\nSELECT $1"},
		{"SELECT 'unterminated ?", "SELECT 'unterminated ?"},
	} {
		if got := store.Rebind(c.in); got != c.want {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTranslateDDL(t *testing.T) {
	got, err := store.TranslateDDL(`-- a comment with INTEGER in it
CREATE TABLE t (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    data    BLOB NOT NULL,
    n       integer NOT NULL DEFAULT 0
);
CREATE TABLE u (
    t_id INTEGER PRIMARY KEY REFERENCES t (id),
    x    INTEGER,
    PRIMARY KEY (t_id, x)
) WITHOUT ROWID;`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"id      BIGSERIAL PRIMARY KEY,",
		"data    BYTEA NOT NULL",
		"n       BIGINT NOT NULL",
		"t_id BIGINT PRIMARY KEY REFERENCES t (id)",
		"x    BIGINT,",
		"PRIMARY KEY (t_id, x)\n);",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("translation lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "comment") || strings.Contains(got, "ROWID") || strings.Contains(got, "INTEGER") {
		t.Errorf("translation keeps SQLite text:\n%s", got)
	}
	for _, bad := range []string{
		"INSERT OR IGNORE INTO t VALUES (1)",
		"REPLACE INTO t VALUES (1)",
		"PRAGMA foreign_keys = 1",
		"UPDATE t SET n = strftime('%s', 'now')",
		"SELECT rowid FROM t",
	} {
		if _, err := store.TranslateDDL(bad); err == nil || !strings.Contains(err.Error(), ".postgres.sql") {
			t.Errorf("TranslateDDL(%q) = %v, want a refusal naming the override", bad, err)
		}
	}
}

// TestMigrationSQL: every migration has a PostgreSQL form (translated or
// an override), and an override replaces its shared file.
func TestMigrationSQL(t *testing.T) {
	names, err := store.MigrationNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, ".postgres.") {
			t.Fatalf("override %s listed as a migration", n)
		}
		if _, err := store.MigrationSQL(store.Postgres, n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	pg, _ := store.MigrationSQL(store.Postgres, "0002_embed_tokens.sql")
	lite, _ := store.MigrationSQL(store.SQLite, "0002_embed_tokens.sql")
	if !strings.Contains(pg, "ALTER TABLE tokens DROP CONSTRAINT") || !strings.Contains(lite, "CREATE TABLE tokens_new") {
		t.Fatalf("0002 on postgres = %q\non sqlite = %q", pg, lite)
	}
}

// TestBadText: text PostgreSQL cannot hold (invalid UTF-8, NUL) neither
// fails a presence batch nor turns a lookup into an error, on both engines.
func TestBadText(t *testing.T) {
	db := MustOpenDB(t)
	alice := MustCreateUser(t, db, "alice")
	bad := "a\xffb\x00c"
	err := db.SavePresence(ctx, []presence.Record{{UserID: alice.ID, HasStatus: true, Online: true,
		HasSettings: true, Settings: presence.Settings{Mode: presence.ModeAway, Text: bad}}})
	if err != nil {
		t.Fatalf("batch with a bad status text: %v", err)
	}
	got, err := db.PresenceSettings(ctx)
	if err != nil || got[alice.ID].Mode != presence.ModeAway || got[alice.ID].Text == "" {
		t.Fatalf("settings = %+v, %v", got[alice.ID], err)
	}
	if _, err := db.UserByName(ctx, "al\xffice\x00"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup of a malformed name = %v, want ErrNotFound", err)
	}
}
