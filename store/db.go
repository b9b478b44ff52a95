// Package store keeps users, tokens and persisted presence in SQLite
// (modernc.org/sqlite, pure Go), the embedded default, or in PostgreSQL
// (pgx). On SQLite one writer connection serialises writes and a separate
// read-only pool serves reads concurrently (WAL mode); on PostgreSQL one
// pool serves both, and write transactions are serialised by an advisory
// lock, across every node sharing the database (see writeTx).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
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
	w       *sql.DB // single writer connection (PostgreSQL: the pool)
	r       *sql.DB // read-only pool (PostgreSQL: the same pool)
	dialect Dialect

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
	if db.r == db.w {
		return db.w.Close()
	}
	return errors.Join(db.r.Close(), db.w.Close())
}

// Dialect tells which engine the database runs on.
func (db *DB) Dialect() Dialect { return db.dialect }

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
// database reports "ok". On PostgreSQL, which checks its own pages, it only
// checks that the database answers.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	if db.dialect == Postgres {
		return db.Ping(ctx)
	}
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
//
// On PostgreSQL the transaction first takes a transaction-scoped advisory
// lock, so write transactions run one at a time as they do on SQLite, on
// every node sharing the database: the store's read-then-write
// transactions (the first account becomes administrator, request limits,
// webhook lines) keep the meaning they have on SQLite.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	start := time.Now()
	if _, ok := ctx.Deadline(); !ok && db.dialect == Postgres {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pgWriteTimeout)
		defer cancel()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if db.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, pgLockSQL("pg_advisory_xact_lock"), pgWriteLock); err != nil {
			tx.Rollback()
			return classify(err)
		}
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

// classify marks SQLite's full, busy, locked and I/O errors (and
// PostgreSQL's connection, resource and I/O errors) as ErrUnavailable and
// returns any other error as it is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if pg := classifyPostgres(err); pg != err {
		return pg
	}
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
//
// Migrations are one set of files for both engines (see MigrationSQL). On
// PostgreSQL, nodes starting together are serialised by writeTx's lock:
// one applies each migration, the others find it recorded.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`
	var err error
	if db.dialect == Postgres {
		// Under the write lock: two nodes creating it at once would
		// collide in PostgreSQL's catalog.
		err = db.writeTx(ctx, func(tx *sql.Tx) error {
			ddl, err := TranslateDDL(create)
			if err == nil {
				_, err = tx.ExecContext(ctx, ddl)
			}
			return err
		})
	} else {
		_, err = db.w.ExecContext(ctx, create)
	}
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	if err := db.checkSchema(ctx); err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	names, err := MigrationNames()
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	var applied []string
	for _, name := range names {
		body, err := MigrationSQL(db.dialect, name)
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
			if _, err := tx.ExecContext(ctx, body); err != nil {
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

// MigrationNames returns the names of the embedded migrations in the order
// they apply (name order), per-dialect overrides left out.
func MigrationNames() ([]string, error) {
	all, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range all {
		if !strings.HasSuffix(n, ".postgres.sql") && !strings.HasSuffix(n, ".sqlite.sql") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// MigrationSQL returns the SQL of migration name (say 0002_embed_tokens.sql)
// for dialect d: the override file 0002_embed_tokens.<dialect>.sql when
// there is one, else the shared file, translated for PostgreSQL by
// TranslateDDL. Both are recorded under the shared name.
func MigrationSQL(d Dialect, name string) (string, error) {
	override := strings.TrimSuffix(name, ".sql") + "." + d.String() + ".sql"
	if body, err := fs.ReadFile(migrations.FS, override); err == nil {
		return string(body), nil
	}
	body, err := fs.ReadFile(migrations.FS, name)
	if err != nil {
		return "", err
	}
	if d == Postgres {
		return TranslateDDL(string(body))
	}
	return string(body), nil
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
