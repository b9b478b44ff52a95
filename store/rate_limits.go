package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// UpdateBucket reads the token bucket key (found false when it has no row:
// a full bucket) and stores what update makes of it, in one write
// transaction: on PostgreSQL under the write lock every node takes, so
// that nodes sharing the database take tokens from the same bucket one at
// a time and none is counted twice or lost. update runs inside the
// transaction and must be quick; tokens and at are the bucket's content
// and the time it was last brought up to date.
func (db *DB) UpdateBucket(ctx context.Context, key string, update func(tokens float64, at time.Time, found bool) (float64, time.Time)) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var (
			tokens float64
			ms     int64
		)
		err := tx.QueryRowContext(ctx, "SELECT tokens, updated_at FROM rate_limits WHERE key = ?", key).Scan(&tokens, &ms)
		found := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		tokens, at := update(tokens, time.UnixMilli(ms), found)
		_, err = tx.ExecContext(ctx, `INSERT INTO rate_limits (key, tokens, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at`,
			key, tokens, at.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: rate limit: %w", err)
	}
	return nil
}

// PruneBuckets deletes the token buckets whose key starts with prefix
// that were last updated before t (callers pass a time by which they
// have refilled: forgetting them changes nothing), and returns how many.
func (db *DB) PruneBuckets(ctx context.Context, prefix string, before time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM rate_limits WHERE substr(key, 1, ?) = ? AND updated_at < ?",
			len(prefix), prefix, before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune rate limits: %w", err)
	}
	return n, nil
}
