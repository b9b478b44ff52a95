// Package store keeps users, tokens and persisted presence in SQLite
// (modernc.org/sqlite, pure Go). One writer connection serialises writes;
// a separate read-only pool serves reads concurrently (WAL mode).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/presencehq/presence/migrations"
)

// Errors returned by the store. Callers test them with errors.Is.
var (
	ErrNotFound        = errors.New("not found")
	ErrUsernameTaken   = errors.New("username is taken")
	ErrInvalidLogin    = errors.New("invalid username or password")
	ErrInvalidToken    = errors.New("invalid, expired or revoked token")
	ErrInvalidUsername = errors.New("invalid username")
	ErrInvalidPassword = errors.New("invalid password")

	// ErrUnavailable marks a failure of the database itself rather than of
	// the request (disk full, locked by another process, I/O error):
	// trying again later may succeed. Errors from the store match it with
	// errors.Is while keeping their cause.
	ErrUnavailable = errors.New("storage temporarily unavailable")
)

// DB is the application database. Create it with Open; caller must call Close.
type DB struct {
	w *sql.DB // single writer connection
	r *sql.DB // read-only pool

	// Now is the clock used for timestamps. Tests may replace it.
	Now func() time.Time
	// BcryptCost is the cost of new password hashes. Tests lower it.
	BcryptCost int

	writeTxs   atomic.Int64
	writeRows  atomic.Int64
	writeNanos atomic.Int64 // time spent in committed write transactions

	dummyOnce sync.Once
	dummy     []byte
}

// Open opens (creating if needed) the SQLite database at path. It does not
// migrate; call Migrate.
func Open(path string) (*DB, error) {
	base := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" +
		"_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", base+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open readers: %w", err)
	}
	r.SetMaxOpenConns(4)
	return &DB{w: w, r: r, Now: time.Now, BcryptCost: bcrypt.DefaultCost}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// Stats are counters of the writer, for metrics and tests.
type Stats struct {
	WriteTxs  int64 // committed write transactions
	WriteRows int64 // rows changed by presence batches
	// WriteTime is the time spent in committed write transactions, from
	// begin (waiting for the writer included) to commit: with WriteTxs,
	// the mean write latency over any interval.
	WriteTime time.Duration
}

// Stats returns the writer counters.
func (db *DB) Stats() Stats {
	return Stats{WriteTxs: db.writeTxs.Load(), WriteRows: db.writeRows.Load(), WriteTime: time.Duration(db.writeNanos.Load())}
}

// Ping checks that the database answers reads.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns an error unless the
// database reports "ok".
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var res string
	if err := db.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("store: integrity check: %s", res)
	}
	return nil
}

// writeTx runs fn in one immediate transaction on the writer connection.
// Failures of the database itself are marked ErrUnavailable.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	start := time.Now()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		return classify(err)
	}
	db.writeNanos.Add(int64(time.Since(start)))
	db.writeTxs.Add(1)
	return nil
}

// unavailableError is a database failure that matches ErrUnavailable.
type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{e.err, ErrUnavailable} }

// classify marks SQLite's full, busy, locked and I/O errors as
// ErrUnavailable and returns any other error as it is.
func classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // primary code of an extended one
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR:
			return unavailableError{err}
		}
	}
	return err
}

// Migrate applies, in name order, every migration not applied yet, each in
// its own transaction. It returns the names it applied. It refuses, with
// ErrSchemaTooNew, a database that a newer version has migrated.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	if err := db.checkSchema(ctx); err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	sort.Strings(names)
	var applied []string
	for _, name := range names {
		body, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return applied, fmt.Errorf("store: migrate %s: %w", name, err)
		}
		done := false
		err = db.writeTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE name = ?", name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				done = true
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", name, toMS(db.Now()))
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("store: migrate %s: %w", name, err)
		}
		if !done {
			applied = append(applied, name)
		}
	}
	return applied, nil
}

// toMS converts t to Unix milliseconds, or NULL for the zero time.
func toMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromMS converts a nullable Unix-millisecond column to a UTC time (zero for NULL).
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}
