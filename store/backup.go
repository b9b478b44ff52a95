package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrSchemaTooNew means the database was migrated by a newer version of
// Presence than this one: running on it could lose or misread data.
var ErrSchemaTooNew = errors.New("database schema is newer than this version of presence")

// ErrBackupPostgres is returned by Backup on PostgreSQL, whose own tools
// make consistent copies of a running database.
var ErrBackupPostgres = errors.New("the database is PostgreSQL: back it up with pg_dump (and restore with pg_restore or psql)")

// Backup writes a consistent copy of the whole database to path with
// VACUUM INTO. It reads one snapshot, so it is safe while a server writes
// to the database, and it does not block that server's writes. path must
// not exist yet. On PostgreSQL it refuses with ErrBackupPostgres.
func (db *DB) Backup(ctx context.Context, path string) error {
	if db.dialect == Postgres {
		return fmt.Errorf("store: backup: %w", ErrBackupPostgres)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("store: backup: %s already exists", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := db.w.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("store: backup: %w", classify(err))
	}
	return nil
}

// checkSchema returns ErrSchemaTooNew, naming the first unknown migration,
// when the database records a migration this binary does not have.
func (db *DB) checkSchema(ctx context.Context) error {
	known := map[string]bool{}
	names, err := MigrationNames()
	if err != nil {
		return err
	}
	for _, n := range names {
		known[n] = true
	}
	rows, err := db.w.QueryContext(ctx, "SELECT name FROM schema_migrations ORDER BY name")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		if !known[name] {
			return fmt.Errorf("%w (it has migration %s); run the newer version, or restore a backup made by this one", ErrSchemaTooNew, name)
		}
	}
	return rows.Err()
}
