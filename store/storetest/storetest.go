// Package storetest gives tests a PostgreSQL database of their own: a
// fresh schema in the test server named by PRESENCE_TEST_DATABASE_URL,
// dropped when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DefaultPostgresURL is the test server when PRESENCE_TEST_DATABASE_URL is
// not set: the machines' PostgreSQL, trust auth, database test.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// BaseURL is the test server's URL: PRESENCE_TEST_DATABASE_URL, or
// DefaultPostgresURL.
func BaseURL() string {
	if u := os.Getenv("PRESENCE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

var (
	adminOnce sync.Once
	admin     *sql.DB
	adminErr  error
)

// adminDB is one pool to the test server, shared by the whole test binary,
// that creates and drops the schemas.
func adminDB() (*sql.DB, error) {
	adminOnce.Do(func() {
		admin, adminErr = sql.Open("pgx", BaseURL())
		if adminErr != nil {
			return
		}
		admin.SetMaxOpenConns(2)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if adminErr = admin.PingContext(ctx); adminErr != nil {
			admin.Close()
			return
		}
		dropStale(ctx, admin)
	})
	return admin, adminErr
}

// Available returns nil when the test PostgreSQL answers, or why not.
func Available() error {
	_, err := adminDB()
	return err
}

// Required reports whether PostgreSQL must answer: on CI (CI=true) a
// missing server fails the tests instead of skipping them.
func Required() bool { return os.Getenv("CI") == "true" }

// Unavailable is the message of a test that cannot reach PostgreSQL.
func Unavailable(err error) string {
	return fmt.Sprintf("PostgreSQL does not answer at %s (%v): start it (.ci/run does) or set PRESENCE_TEST_DATABASE_URL", redact(BaseURL()), err)
}

// URL returns the URL of a new, empty schema in the test PostgreSQL,
// dropped (with everything in it) at the test's cleanup: a database URL
// with search_path set to it. Without PostgreSQL the test is skipped, or
// fails when Required.
func URL(tb testing.TB) string {
	tb.Helper()
	db, err := adminDB()
	if err != nil {
		if Required() {
			tb.Fatal(Unavailable(err))
		}
		tb.Skip(Unavailable(err))
	}
	var b [6]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("%s%d_%s", schemaPrefix, time.Now().Unix(), hex.EncodeToString(b[:]))
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(BaseURL())
	if err != nil {
		tb.Fatalf("PRESENCE_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// schemaPrefix starts the name of every test schema, followed by its
// creation time (Unix seconds).
const schemaPrefix = "presence_test_"

// dropStale drops the test schemas over an hour old: left by test
// binaries killed before their cleanup ran. Younger ones may belong to a
// test binary running now.
func dropStale(ctx context.Context, db *sql.DB) {
	rows, err := db.QueryContext(ctx, "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", schemaPrefix+"%")
	if err != nil {
		return
	}
	var stale []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			continue
		}
		created, _, _ := strings.Cut(strings.TrimPrefix(name, schemaPrefix), "_")
		if sec, err := strconv.ParseInt(created, 10, 64); err == nil && time.Since(time.Unix(sec, 0)) > time.Hour {
			stale = append(stale, name)
		}
	}
	rows.Close()
	for _, name := range stale {
		db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE")
	}
}

// redact hides a password in u.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}
