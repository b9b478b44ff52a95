package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AdminAction is one action an administrator took, as the audit table
// keeps it.
type AdminAction struct {
	ID        int64
	At        time.Time
	AdminID   int64
	AdminName string
	// Action is what was done: kick-connection, kick-user, revoke-token,
	// promote, demote.
	Action string
	// Target is whom or what it was done to (a username, a token's short
	// id); Detail anything else worth keeping.
	Target, Detail string
}

// RecordAdminAction appends a to the audit table; its ID and At are set
// here.
func (db *DB) RecordAdminAction(ctx context.Context, a AdminAction) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO admin_audit (at, admin_id, admin_name, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)`,
			db.Now().UnixMilli(), a.AdminID, a.AdminName, a.Action, a.Target, a.Detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record admin action: %w", err)
	}
	return nil
}

// AdminActions returns the newest limit audit records, newest first.
func (db *DB) AdminActions(ctx context.Context, limit int) ([]AdminAction, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, at, admin_id, admin_name, action, target, detail
		FROM admin_audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: admin actions: %w", classify(err))
	}
	defer rows.Close()
	var out []AdminAction
	for rows.Next() {
		var a AdminAction
		var at int64
		if err := rows.Scan(&a.ID, &at, &a.AdminID, &a.AdminName, &a.Action, &a.Target, &a.Detail); err != nil {
			return nil, fmt.Errorf("store: admin actions: %w", err)
		}
		a.At = time.UnixMilli(at).UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: admin actions: %w", classify(err))
	}
	return out, nil
}

// RevokeTokenID revokes the token with this row id, which must belong to
// userID (0: any user), and returns ErrNotFound otherwise. Revoking a
// revoked token is not an error.
func (db *DB) RevokeTokenID(ctx context.Context, userID, id int64) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var owner int64
		if err := tx.QueryRowContext(ctx, "SELECT user_id FROM tokens WHERE id = ?", id).Scan(&owner); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if userID != 0 && owner != userID {
			return ErrNotFound
		}
		_, err := tx.ExecContext(ctx, "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", toMS(db.Now()), id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store: revoke token %d: %w", id, err)
	}
	if err != nil {
		return fmt.Errorf("store: revoke token: %w", err)
	}
	return nil
}

// SetProfileImage sets the user's profile_image_url ("" for none). It
// returns ErrNotFound for an unknown id.
func (db *DB) SetProfileImage(ctx context.Context, id int64, url string) error {
	return db.execOne(ctx, "set profile image", "UPDATE users SET profile_image_url = ? WHERE id = ?", url, id)
}
