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
	if db.dialect == Postgres {
		return db.savePresencePostgres(ctx, recs)
	}
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
				last_seen = `+db.greatest("COALESCE(last_seen, 0)", "COALESCE(last_activity, ?)")+`
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

// savePresencePostgres is SavePresence on PostgreSQL: one UPDATE … FROM
// unnest(…) statement for the whole batch (and one more for the records
// that carry presence settings; history sessions as on SQLite), so a batch costs the same few round
// trips however many users it holds. The batcher coalesces per user, so a
// user appears at most once in recs.
func (db *DB) savePresencePostgres(ctx context.Context, recs []presence.Record) error {
	n := len(recs)
	ids, hasStatus, online := make([]int64, n), make([]bool, n), make([]bool, n)
	seen, activity := make([]*int64, n), make([]*int64, n)
	var sIDs []int64
	var sMode, sText, sEmoji, sVis []string
	var sExpires []*int64
	for i, r := range recs {
		ids[i], hasStatus[i], online[i] = r.UserID, r.HasStatus, r.Online
		seen[i], activity[i] = msPtr(r.LastSeen), msPtr(r.LastActivity)
		if r.HasSettings {
			s := r.Settings.Normalized()
			sIDs = append(sIDs, r.UserID)
			sMode = append(sMode, string(s.Mode))
			sText = append(sText, s.Text)
			sEmoji = append(sEmoji, s.Emoji)
			sExpires = append(sExpires, msPtr(s.Expires))
			sVis = append(sVis, string(s.Visibility))
		}
	}
	var rows int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users AS u SET
				is_online     = CASE WHEN b.has_status THEN CASE WHEN b.online THEN 1 ELSE 0 END ELSE u.is_online END,
				last_seen     = COALESCE(b.last_seen, u.last_seen),
				last_activity = COALESCE(b.last_activity, u.last_activity)
			FROM unnest(?::bigint[], ?::boolean[], ?::boolean[], ?::bigint[], ?::bigint[])
				AS b(id, has_status, online, last_seen, last_activity)
			WHERE u.id = b.id`, ids, hasStatus, online, seen, activity)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		rows += n
		// History sessions: per statement, as on SQLite (they are few: a
		// start or an end per user who came or went in this batch).
		n, err = saveSessions(ctx, tx, recs)
		rows += n
		if err != nil {
			return err
		}
		if len(sIDs) == 0 {
			return nil
		}
		res, err = tx.ExecContext(ctx, `UPDATE users AS u SET status_mode = b.mode, status_text = b.text,
				status_emoji = b.emoji, status_expires = b.expires, visibility = b.vis
			FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[])
				AS b(id, mode, text, emoji, expires, vis)
			WHERE u.id = b.id`, sIDs, sMode, sText, sEmoji, sExpires, sVis)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		rows += n
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save presence: %w", err)
	}
	db.writeRows.Add(rows)
	return nil
}

// msPtr is toMS for an array element: nil (NULL) for the zero time.
func msPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}
