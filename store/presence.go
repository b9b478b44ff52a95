package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/presencehq/presence/presence"
)

// SavePresence writes a batch of coalesced presence changes, history
// sessions included, in one transaction. It implements presence.Persister.
func (db *DB) SavePresence(ctx context.Context, recs []presence.Record) error {
	var rows int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE users SET
				is_online     = CASE WHEN ? THEN ? ELSE is_online END,
				last_seen     = COALESCE(?, last_seen),
				last_activity = COALESCE(?, last_activity)
			WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range recs {
			res, err := stmt.ExecContext(ctx, r.HasStatus, r.Online, toMS(r.LastSeen), toMS(r.LastActivity), r.UserID)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			rows += n
		}
		n, err := saveSettings(ctx, tx, recs)
		rows += n
		if err != nil {
			return err
		}
		n, err = saveSessions(ctx, tx, recs)
		rows += n
		return err
	})
	if err != nil {
		return fmt.Errorf("store: save presence: %w", err)
	}
	db.writeRows.Add(rows)
	return nil
}

// ResetPresence marks every user offline. It runs at start-up, when nobody
// can be connected yet, so that users left online by a crash are not shown
// as ghosts. Their last_seen becomes their last recorded activity (the best
// evidence of when they were last there), or now if none was recorded.
// History sessions left open are closed at that last known time first
// (closeOpenSessions). It returns how many users it reset.
func (db *DB) ResetPresence(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if err := closeOpenSessions(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET is_online = 0,
				last_seen = MAX(COALESCE(last_seen, 0), COALESCE(last_activity, ?))
			WHERE is_online = 1`, toMS(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: reset presence: %w", err)
	}
	return n, nil
}
