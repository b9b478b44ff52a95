package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/presencehq/presence/presence"
)

// saveSettingsSQL writes one user's presence settings (SavePresence).
const saveSettingsSQL = `UPDATE users SET status_mode = ?, status_text = ?, status_emoji = ?,
	status_expires = ?, visibility = ? WHERE id = ?`

// saveSettings writes the settings of the records that carry some, in tx.
func saveSettings(ctx context.Context, tx *sql.Tx, recs []presence.Record) (int64, error) {
	var stmt *sql.Stmt
	var rows int64
	for _, r := range recs {
		if !r.HasSettings {
			continue
		}
		if stmt == nil {
			var err error
			if stmt, err = tx.PrepareContext(ctx, saveSettingsSQL); err != nil {
				return rows, err
			}
			defer stmt.Close()
		}
		s := r.Settings.Normalized()
		res, err := stmt.ExecContext(ctx, string(s.Mode), s.Text, s.Emoji, toMS(s.Expires), string(s.Visibility), r.UserID)
		if err != nil {
			return rows, err
		}
		n, _ := res.RowsAffected()
		rows += n
	}
	return rows, nil
}

// PresenceSettings returns the presence settings of every user who changed
// them from the defaults, keyed by user id, for the engine to load at
// start-up (presence.Engine.LoadSettings).
func (db *DB) PresenceSettings(ctx context.Context) (map[int64]presence.Settings, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, status_mode, status_text, status_emoji, status_expires, visibility
		FROM users WHERE status_mode <> 'online' OR status_text <> '' OR status_emoji <> '' OR visibility <> 'everyone'`)
	if err != nil {
		return nil, fmt.Errorf("store: presence settings: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]presence.Settings)
	for rows.Next() {
		var (
			id          int64
			mode, vis   string
			text, emoji string
			expires     sql.NullInt64
		)
		if err := rows.Scan(&id, &mode, &text, &emoji, &expires, &vis); err != nil {
			return nil, fmt.Errorf("store: presence settings: %w", err)
		}
		out[id] = presence.Settings{Mode: presence.Mode(mode), Text: text, Emoji: emoji,
			Expires: fromMS(expires), Visibility: presence.Visibility(vis)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: presence settings: %w", err)
	}
	return out, nil
}
