package store

import "context"

// SetWriterPragma runs "PRAGMA <pragma>" on the writer connection, so tests
// can make real SQLite failures (max_page_count for a full database,
// busy_timeout for a quick "locked").
func SetWriterPragma(db *DB, pragma string) error {
	_, err := db.w.ExecContext(context.Background(), "PRAGMA "+pragma)
	return err
}

// QueryPlan returns SQLite's EXPLAIN QUERY PLAN of q, one detail a line.
func QueryPlan(db *DB, q string) (string, error) {
	rows, err := db.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return "", err
		}
		out += detail + "\n"
	}
	return out, rows.Err()
}

// HoldWriteLock takes, on a connection of db, the advisory lock every
// PostgreSQL write transaction takes, until release is called: as a
// long transaction on another node would.
func HoldWriteLock(ctx context.Context, db *DB) (release func(), err error) {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, pgLockSQL("pg_advisory_lock"), pgWriteLock); err != nil {
		conn.Close()
		return nil, err
	}
	return func() {
		conn.ExecContext(ctx, pgLockSQL("pg_advisory_unlock"), pgWriteLock)
		conn.Close()
	}, nil
}

// TerminateBackends ends, from db, every PostgreSQL connection whose
// application_name is app, as a server restart or a proxy would.
func TerminateBackends(ctx context.Context, db *DB, app string) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?", app).Scan(&n)
	return n, err
}
