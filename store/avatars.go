package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// avatarUnused is the condition, on a row of the avatars table, that no
// user's profile_image_url points at it.
const avatarUnused = `NOT EXISTS (SELECT 1 FROM users u WHERE u.profile_image_url = '` + UploadedAvatarPrefix + `' || avatars.name)`

// SetAvatar makes the PNG png, stored under name (its content's hash,
// "<sha256>.png"), the avatar of the local account id, or with a nil png
// removes the avatar. In the same transaction it stores the bytes (once
// per name: users who upload the same picture share them) and deletes
// the avatar it replaces when no user uses it any more, so that every
// node sharing the database serves the new one and none serves a
// deleted one. It returns the profile_image_url replaced; for a host
// user or an unknown id, ErrNotFound.
func (db *DB) SetAvatar(ctx context.Context, id int64, name string, png []byte) (old string, err error) {
	url := ""
	if png != nil {
		if name == "" || strings.Contains(name, "/") {
			return "", fmt.Errorf("store: set avatar: invalid name %q", name)
		}
		url = UploadedAvatarPrefix + name
	}
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "SELECT profile_image_url FROM users WHERE id = ? AND external_id IS NULL", id).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if png != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO avatars (name, png, created_at) VALUES (?, ?, ?)
				ON CONFLICT (name) DO NOTHING`, name, png, toMS(db.Now())); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET profile_image_url = ? WHERE id = ?", url, id); err != nil {
			return err
		}
		if old == url || !strings.HasPrefix(old, UploadedAvatarPrefix) {
			return nil
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM avatars WHERE name = ? AND "+avatarUnused,
			strings.TrimPrefix(old, UploadedAvatarPrefix))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("store: set avatar: %w", err)
	}
	return old, nil
}

// AvatarPNG returns the bytes of the uploaded avatar name, or ErrNotFound.
func (db *DB) AvatarPNG(ctx context.Context, name string) ([]byte, error) {
	var png []byte
	err := db.r.QueryRowContext(ctx, "SELECT png FROM avatars WHERE name = ?", name).Scan(&png)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: avatar: %w", classify(err))
	}
	return png, nil
}

// ImportAvatar stores png under name unless an avatar of that name is
// stored already, for avatars kept as files by earlier versions. It
// reports whether it stored it.
func (db *DB) ImportAvatar(ctx context.Context, name string, png []byte) (bool, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO avatars (name, png, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, png, toMS(db.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: import avatar: %w", err)
	}
	return n > 0, nil
}

// SweepAvatars deletes the stored avatars no user uses (left by a
// restored backup, or by a user deleted since) and returns how many.
func (db *DB) SweepAvatars(ctx context.Context) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM avatars WHERE "+avatarUnused)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: sweep avatars: %w", err)
	}
	return n, nil
}
