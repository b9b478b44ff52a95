package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNotEmpty is returned by CopyFrom when the target database already
// holds data: a copy never merges.
var ErrNotEmpty = errors.New("the target database is not empty")

// CopyFrom copies every row of src, a SQLite database, into db, a
// PostgreSQL one, in one transaction: moving an installation from SQLite to
// PostgreSQL. Both are migrated first (src too, so it must not be in use by
// a server of an older version); db must be empty, or CopyFrom returns
// ErrNotEmpty. Rows keep their ids, and id sequences continue after the
// largest. Tables are copied parents first (by their foreign keys). It
// returns the number of rows copied per table.
func (db *DB) CopyFrom(ctx context.Context, src *DB) (map[string]int64, error) {
	if src.dialect != SQLite || db.dialect != Postgres {
		return nil, errors.New("store: copy: copies a SQLite database into a PostgreSQL one")
	}
	if _, err := src.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("store: copy: source: %w", err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("store: copy: target: %w", err)
	}
	tables, err := src.sqliteTables(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	counts := map[string]int64{}
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		for _, t := range tables {
			var has bool
			if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&has); err != nil {
				return err
			}
			if has {
				return fmt.Errorf("%w (table %s has rows)", ErrNotEmpty, t)
			}
		}
		for _, t := range tables {
			n, cols, err := copyTable(ctx, src.r, tx, t)
			if err != nil {
				return fmt.Errorf("table %s: %w", t, err)
			}
			counts[t] = n
			if !slices.Contains(cols, "id") {
				continue
			}
			// A table with a serial id continues after the copied ids
			// (pg_get_serial_sequence is NULL, and setval skipped, for others).
			if _, err := tx.ExecContext(ctx, `SELECT setval(s, m + 1, false) FROM
				(SELECT pg_get_serial_sequence(?, 'id') AS s) q,
				(SELECT COALESCE(MAX(id), 0) AS m FROM `+t+`) r WHERE s IS NOT NULL`, t); err != nil {
				return fmt.Errorf("table %s: sequence: %w", t, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	return counts, nil
}

// sqliteTables lists the application's tables of a SQLite database,
// parents before the tables whose foreign keys point to them.
func (db *DB) sqliteTables(ctx context.Context) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	parents := map[string][]string{}
	for _, n := range names {
		rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)`, n)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return nil, err
			}
			if p != n {
				parents[n] = append(parents[n], p)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var order []string
	done := map[string]bool{}
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		if done[n] {
			return nil
		}
		if slices.Contains(path, n) {
			return fmt.Errorf("foreign keys form a cycle through %s", n)
		}
		for _, p := range parents[n] {
			if err := visit(p, append(path, n)); err != nil {
				return err
			}
		}
		done[n] = true
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// copyTable copies every row of table from src into tx, column by column
// under the same names, and returns how many and the columns.
func copyTable(ctx context.Context, src *sql.DB, tx *sql.Tx, table string) (int64, []string, error) {
	rows, err := src.QueryContext(ctx, "SELECT * FROM "+table)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, nil, err
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+") VALUES ("+marks+")")
	if err != nil {
		return 0, cols, err
	}
	defer stmt.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, cols, err
		}
		if _, err := stmt.ExecContext(ctx, vals...); err != nil {
			return n, cols, err
		}
		n++
	}
	return n, cols, rows.Err()
}
