package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// UploadedAvatarPrefix starts the profile_image_url of every avatar
// uploaded to this server ("/avatars/<sha256>.png"); any other value is a
// host's absolute URL or empty.
const UploadedAvatarPrefix = "/avatars/"

// LocalTime is a user's local-time setting: the IANA zone their browser
// last reported ("" when it never did) and whether others may see it.
type LocalTime struct {
	Zone string
	Show bool
}

// UploadedAvatars returns every distinct uploaded avatar path in use.
func (db *DB) UploadedAvatars(ctx context.Context) ([]string, error) {
	return queryColumn[string](ctx, db, "uploaded avatars", "SELECT DISTINCT profile_image_url FROM users WHERE profile_image_url LIKE '/avatars/%'")
}

// SaveTimeZones stores the time zones browsers reported, keyed by user id,
// all in one transaction. Unknown ids are skipped.
func (db *DB) SaveTimeZones(ctx context.Context, zones map[int64]string) error {
	if len(zones) == 0 {
		return nil
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, "UPDATE users SET time_zone = ? WHERE id = ?")
		if err != nil {
			return err
		}
		defer st.Close()
		for id, zone := range zones {
			if _, err := st.ExecContext(ctx, zone, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save time zones: %w", err)
	}
	return nil
}

// LocalTimeOf returns the user's local-time setting, or ErrNotFound.
func (db *DB) LocalTimeOf(ctx context.Context, id int64) (LocalTime, error) {
	var lt LocalTime
	err := db.r.QueryRowContext(ctx, "SELECT time_zone, show_local_time FROM users WHERE id = ?", id).Scan(&lt.Zone, &lt.Show)
	if errors.Is(err, sql.ErrNoRows) {
		return LocalTime{}, ErrNotFound
	}
	if err != nil {
		return LocalTime{}, fmt.Errorf("store: local time: %w", err)
	}
	return lt, nil
}

// SetShowLocalTime sets whether others see the user's local time. It
// returns ErrNotFound for an unknown id.
func (db *DB) SetShowLocalTime(ctx context.Context, id int64, show bool) error {
	return db.execOne(ctx, "set show local time", "UPDATE users SET show_local_time = ? WHERE id = ?", show, id)
}
