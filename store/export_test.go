package store

import "context"

// SetWriterPragma runs "PRAGMA <pragma>" on the writer connection, so tests
// can make real SQLite failures (max_page_count for a full database,
// busy_timeout for a quick "locked").
func SetWriterPragma(db *DB, pragma string) error {
	_, err := db.w.ExecContext(context.Background(), "PRAGMA "+pragma)
	return err
}
