package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/presencehq/presence/presence"
)

// Session is one online session of a user, from their history: when it
// started and ended (zero End: still open) and the kind of device of its
// first connection ("desktop", "mobile", "tablet" or "unknown").
type Session struct {
	Start, End time.Time
	Device     string
}

// MaxHistorySessions is the most sessions History returns: the latest.
const MaxHistorySessions = 2000

// saveSessions writes the history changes of a batch (presence.Record.
// Sessions) in the batch's transaction: a session that starts is a new
// row, the end of one closes the user's open row. A user deleted meanwhile
// gets no row rather than failing the batch.
func saveSessions(ctx context.Context, tx *sql.Tx, recs []presence.Record) (int64, error) {
	var insert, end *sql.Stmt
	var rows int64
	for _, r := range recs {
		for _, s := range r.Sessions {
			var res sql.Result
			var err error
			if s.Start.IsZero() {
				if end == nil {
					if end, err = tx.PrepareContext(ctx, `UPDATE user_sessions SET ended_at = ?
						WHERE user_id = ? AND ended_at IS NULL`); err != nil {
						return rows, err
					}
					defer end.Close()
				}
				res, err = end.ExecContext(ctx, toMS(s.End), r.UserID)
			} else {
				if insert == nil {
					if insert, err = tx.PrepareContext(ctx, `INSERT INTO user_sessions (user_id, started_at, ended_at, device)
						SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)`); err != nil {
						return rows, err
					}
					defer insert.Close()
				}
				device := s.Device
				if device == "" {
					device = presence.DeviceUnknown
				}
				res, err = insert.ExecContext(ctx, r.UserID, toMS(s.Start), toMS(s.End), device, r.UserID)
			}
			if err != nil {
				return rows, err
			}
			n, _ := res.RowsAffected()
			rows += n
		}
	}
	return rows, nil
}

// History returns the user's sessions that were still going on at since
// or later (open ones included), oldest first; at most the latest
// MaxHistorySessions.
func (db *DB) History(ctx context.Context, userID int64, since time.Time) ([]Session, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT started_at, ended_at, device FROM user_sessions
		WHERE user_id = ? AND (ended_at IS NULL OR ended_at >= ?)
		ORDER BY started_at DESC, id DESC LIMIT ?`, userID, since.UnixMilli(), MaxHistorySessions)
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var start int64
		var end sql.NullInt64
		var s Session
		if err := rows.Scan(&start, &end, &s.Device); err != nil {
			return nil, fmt.Errorf("store: history: %w", err)
		}
		s.Start, s.End = time.UnixMilli(start).UTC(), fromMS(end)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// PruneHistory deletes the sessions that ended before before and returns
// how many. Open sessions are kept, however old.
func (db *DB) PruneHistory(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM user_sessions WHERE ended_at < ?", before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune history: %w", err)
	}
	return n, nil
}

// closeOpenSessions ends the sessions a crash left open at the last time
// the user is known to have been there: their last recorded activity or
// last seen, whichever is later (written within a flush interval of it),
// and never before the session started. It runs at start-up, inside
// ResetPresence's transaction, before last seen is reset.
func closeOpenSessions(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE user_sessions SET ended_at = (
			SELECT CASE WHEN COALESCE(u.last_activity, 0) >= COALESCE(u.last_seen, 0)
				THEN u.last_activity ELSE u.last_seen END
			FROM users u WHERE u.id = user_sessions.user_id)
		WHERE ended_at IS NULL`); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE user_sessions SET ended_at = started_at
		WHERE ended_at IS NULL OR ended_at < started_at`)
	return err
}
