package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/crypto/bcrypt"
)

// PostgresMaxConns is the size of a PostgreSQL DB's connection pool.
const PostgresMaxConns = 10

// Bounds on waiting for PostgreSQL, so that a lock held elsewhere or a
// server that stopped answering fails a write (which the batcher keeps in
// memory and retries) instead of hanging it: the lock wait matches
// SQLite's busy timeout. A URL may set its own lock_timeout.
const (
	pgLockTimeout  = "5s"
	pgWriteTimeout = 30 * time.Second // whole write transaction, without a deadline of its own
)

// pgWriteLock is the first half of the key of the transaction-scoped
// advisory lock every write transaction takes on PostgreSQL (see writeTx);
// the second half is a hash of the schema the tables are in, so that
// deployments in different schemas of one database do not wait for each
// other.
const pgWriteLock = 0x7072_6573 // "pres"

// pgLockSQL is the statement calling the advisory lock function fn on the
// write lock's key (pgWriteLock as its argument).
func pgLockSQL(fn string) string {
	return "SELECT " + fn + "(?::int4, hashtext(current_schema()))"
}

// IsPostgresURL reports whether url names a PostgreSQL database
// (postgres:// or postgresql://).
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// OpenPostgres connects to the PostgreSQL database at url
// (postgres://user@host:port/db?sslmode=…, any libpq parameter pgx
// accepts, search_path included). It does not migrate; call Migrate.
//
// The store's queries are written once, with ? placeholders: on
// PostgreSQL a thin wrapper around pgx's database/sql driver rewrites them
// to $n and passes Go bools as 0/1, the integers the schema stores flags as.
func OpenPostgres(ctx context.Context, url string) (*DB, error) {
	if !IsPostgresURL(url) {
		return nil, errors.New("store: database url must start with postgres:// or postgresql://")
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: database url: %w", redactURLError(err))
	}
	if _, ok := cfg.RuntimeParams["lock_timeout"]; !ok {
		cfg.RuntimeParams["lock_timeout"] = pgLockTimeout
	}
	pool := sql.OpenDB(pgConnector{base: stdlib.GetConnector(*cfg)})
	pool.SetMaxOpenConns(PostgresMaxConns)
	pool.SetMaxIdleConns(PostgresMaxConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	pool.SetConnMaxLifetime(time.Hour) // follow a failover or a DNS change in time
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.PingContext(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to postgres %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, classify(err))
	}
	return &DB{w: pool, r: pool, dialect: Postgres, Now: time.Now, BcryptCost: bcrypt.DefaultCost}, nil
}

// redactURLError keeps a password in a malformed URL out of the message.
func redactURLError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse it (check its syntax)")
	}
	return err
}

// classifyPostgres marks PostgreSQL's connection, resource and shutdown
// failures, and network errors, as ErrUnavailable.
func classifyPostgres(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "55P03",                // lock_not_available: lock_timeout passed
			pe.Code == "57014",                // query_canceled: statement_timeout passed
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources (disk full, too many connections)
			strings.HasPrefix(pe.Code, "57P"), // operator intervention: shutdown, cannot connect now
			strings.HasPrefix(pe.Code, "58"):  // system error (I/O)
			return unavailableError{err}
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || pgconn.Timeout(err) {
		return unavailableError{err}
	}
	return err
}

// pgConnector makes the connections of a PostgreSQL pool: pgx's, wrapped
// in pgConn.
type pgConnector struct{ base driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("store: unexpected pgx connection %T", conn)
	}
	return &pgConn{sc}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.base.Driver() }

// pgConn is a pgx connection that rebinds ? placeholders and turns bool
// arguments into 0/1; every other method is pgx's own.
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.PrepareContext(ctx, Rebind(query))
	if err != nil {
		return nil, c.badConn(err)
	}
	return pgStmt{st.(*stdlib.Stmt)}, nil
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	res, err := c.Conn.ExecContext(ctx, Rebind(query), pgArgs(args))
	return res, c.badConn(err)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := c.Conn.QueryContext(ctx, Rebind(query), pgArgs(args))
	return rows, c.badConn(err)
}

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	return tx, c.badConn(err)
}

// badConn marks err driver.ErrBadConn, keeping its cause, when the
// connection died without running the statement: the server ended it
// (restart, failover, pg_terminate_backend, an idle timeout) or nothing
// was sent. database/sql then retries on a fresh connection (outside a
// transaction; inside one the transaction fails, as ErrUnavailable).
func (c *pgConn) badConn(err error) error {
	if err == nil || !c.Conn.Conn().IsClosed() {
		return err
	}
	var pe *pgconn.PgError
	if pgconn.SafeToRetry(err) || errors.As(err, &pe) && strings.HasPrefix(pe.Code, "57P") {
		return errors.Join(driver.ErrBadConn, err)
	}
	return err
}

// pgStmt is a prepared statement of a pgConn.
type pgStmt struct{ *stdlib.Stmt }

func (s pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.ExecContext(ctx, pgArgs(args))
}

func (s pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.QueryContext(ctx, pgArgs(args))
}

// pgArgs adapts arguments to PostgreSQL:
//   - Go bools are passed as 1 and 0, as SQLite's driver does: flags are
//     INTEGER columns in both dialects;
//   - strings that PostgreSQL's text cannot hold (invalid UTF-8, NUL
//     bytes) have those bytes replaced by U+FFFD. SQLite stores any bytes;
//     PostgreSQL would refuse the whole statement, and one user's bad
//     status text would then fail every presence batch it rides in, or a
//     lookup of a malformed name would be an error instead of not found.
func pgArgs(args []driver.NamedValue) []driver.NamedValue {
	for i, a := range args {
		switch v := a.Value.(type) {
		case bool:
			n := int64(0)
			if v {
				n = 1
			}
			args[i].Value = n
		case string:
			args[i].Value = pgText(v)
		case []string:
			for j, s := range v {
				if t := pgText(s); t != s {
					c := slices.Clone(v)
					for k := j; k < len(c); k++ {
						c[k] = pgText(c[k])
					}
					args[i].Value = c
					break
				}
			}
		}
	}
	return args
}

// pgText returns s with invalid UTF-8 and NUL bytes replaced by U+FFFD.
func pgText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
