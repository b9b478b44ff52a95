package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// HostIssuer is the issuer recorded for host users. Host users and local
// accounts are told apart by it: a local account has no issuer and is known
// by its row id; a host user is known by (HostIssuer, ExternalID), the id
// the host site gave it. A host id of 1 and local account 1 are two rows.
const HostIssuer = "host"

// hostKeyPrefix starts the username_key of a host user. '@' and ':' are
// never in a local username (ValidateUsername), so a host user can neither
// take a local name nor be found by a password login.
const hostKeyPrefix = "@host:"

// Limits on what a host may say about its users.
const (
	MaxExternalIDLen   = 255  // bytes
	MaxHostUsernameLen = 150  // characters, Django's username limit
	MaxProfileImageURL = 2048 // bytes
)

// ErrInvalidHostUser is returned for a host id, username or avatar URL that
// cannot be accepted.
var ErrInvalidHostUser = errors.New("invalid host user")

// HostProfile is what the host says about one of its users. Empty
// Username or ProfileImageURL leave the stored value as it is.
type HostProfile struct {
	// ExternalID is the host's id for the user, as text.
	ExternalID string
	// Username is the name to show.
	Username string
	// ProfileImageURL is the avatar: an absolute http or https URL.
	ProfileImageURL string
}

// ReservedIDPrefix starts the ids clients see for local accounts on a
// server that takes host users ("local:3"), so no host id may start with
// it: a host's "local:3" would be taken for local account 3.
const ReservedIDPrefix = "local:"

// ValidateExternalID returns an error wrapping ErrInvalidHostUser unless id
// is 1–255 bytes of valid UTF-8 without control characters or spaces, and
// does not start with ReservedIDPrefix.
func ValidateExternalID(id string) error {
	if id == "" || len(id) > MaxExternalIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: id must be 1 to %d bytes of UTF-8", ErrInvalidHostUser, MaxExternalIDLen)
	}
	if strings.HasPrefix(id, ReservedIDPrefix) {
		return fmt.Errorf("%w: ids starting with %q are Presence's own accounts", ErrInvalidHostUser, ReservedIDPrefix)
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: id must not contain spaces or control characters", ErrInvalidHostUser)
		}
	}
	return nil
}

// CleanHostUsername trims a host-supplied name and checks it: valid UTF-8,
// no control characters, at most MaxHostUsernameLen characters. Unlike
// local usernames it may contain spaces ("Ada Lovelace"): it is display
// text, never a login.
func CleanHostUsername(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: username is not valid UTF-8", ErrInvalidHostUser)
	}
	if utf8.RuneCountInString(name) > MaxHostUsernameLen {
		return "", fmt.Errorf("%w: username must be at most %d characters", ErrInvalidHostUser, MaxHostUsernameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("%w: username must not contain control characters", ErrInvalidHostUser)
		}
	}
	return name, nil
}

// ValidateProfileImageURL returns an error wrapping ErrInvalidHostUser
// unless u is empty or an absolute http or https URL of at most
// MaxProfileImageURL bytes (no javascript:, data: or relative URLs).
func ValidateProfileImageURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || len(u) > MaxProfileImageURL || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%w: picture must be an absolute http or https URL", ErrInvalidHostUser)
	}
	return nil
}

func (p *HostProfile) validate() error {
	if err := ValidateExternalID(p.ExternalID); err != nil {
		return err
	}
	name, err := CleanHostUsername(p.Username)
	if err != nil {
		return err
	}
	p.Username = name
	return ValidateProfileImageURL(p.ProfileImageURL)
}

// UpsertHostUser creates the host user p.ExternalID if it is new (named
// after its id when the host gave no name) or updates its username and
// avatar when they differ from what p says. It reports whether the user
// was created. Unchanged profiles cost one read and no write, so it can run
// on every authenticated request.
func (db *DB) UpsertHostUser(ctx context.Context, p HostProfile) (User, bool, error) {
	if err := p.validate(); err != nil {
		return User{}, false, err
	}
	u, err := db.HostUser(ctx, p.ExternalID)
	exists := err == nil
	switch {
	case exists:
		if (p.Username == "" || p.Username == u.Username) && (p.ProfileImageURL == "" || p.ProfileImageURL == u.ProfileImageURL) {
			return u, false, nil
		}
	case !errors.Is(err, ErrNotFound):
		return User{}, false, err
	}
	old := u
	var created bool
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		name := p.Username
		if name == "" {
			name = p.ExternalID
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO users (username, username_key, password_hash, profile_image_url, created_at, issuer, external_id)
			VALUES (?, ?, '', ?, ?, ?, ?) ON CONFLICT (username_key) DO NOTHING`,
			name, hostKeyPrefix+p.ExternalID, p.ProfileImageURL, toMS(db.Now()), HostIssuer, p.ExternalID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			created = true
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET
				username = CASE WHEN ? = '' THEN username ELSE ? END,
				profile_image_url = CASE WHEN ? = '' THEN profile_image_url ELSE ? END
			WHERE issuer = ? AND external_id = ?`,
			p.Username, p.Username, p.ProfileImageURL, p.ProfileImageURL, HostIssuer, p.ExternalID)
		return err
	})
	if exists && errors.Is(err, ErrUnavailable) {
		// A known user whose new name or avatar cannot be written now
		// (disk full, database locked) is still let in, as they were: a
		// profile refresh is bookkeeping, and the next token retries it.
		return old, false, nil
	}
	if err != nil {
		return User{}, false, fmt.Errorf("store: upsert host user: %w", err)
	}
	u, err = db.HostUser(ctx, p.ExternalID)
	return u, created, err
}

// HostUser returns the host user with the host's id externalID, or
// ErrNotFound. It never returns a local account.
func (db *DB) HostUser(ctx context.Context, externalID string) (User, error) {
	u, err := db.scanUser(db.r.QueryRowContext(ctx, userColumns+" FROM users WHERE issuer = ? AND external_id = ?", HostIssuer, externalID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("store: host user: %w", err)
	}
	return u, err
}

// HostUsers returns the host users with these host ids, keyed by host id.
// Unknown ids are left out.
func (db *DB) HostUsers(ctx context.Context, externalIDs []string) (map[string]User, error) {
	out := make(map[string]User, len(externalIDs))
	const chunk = 500
	for len(externalIDs) > 0 {
		n := min(chunk, len(externalIDs))
		args := make([]any, 0, n+1)
		args = append(args, HostIssuer)
		for _, id := range externalIDs[:n] {
			args = append(args, id)
		}
		q := userColumns + " FROM users WHERE issuer = ? AND external_id IN (?" + strings.Repeat(",?", n-1) + ")"
		rows, err := db.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("store: host users: %w", classify(err))
		}
		for rows.Next() {
			u, err := db.scanUser(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: host users: %w", err)
			}
			out[u.ExternalID] = u
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("store: host users: %w", err)
		}
		externalIDs = externalIDs[n:]
	}
	return out, nil
}

// DeleteHostUser removes the host user externalID (and anything of theirs,
// by cascade) and returns it as it was, or ErrNotFound.
func (db *DB) DeleteHostUser(ctx context.Context, externalID string) (User, error) {
	u, err := db.HostUser(ctx, externalID)
	if err != nil {
		return User{}, err
	}
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM users WHERE id = ? AND issuer = ?", u.ID, HostIssuer)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("store: delete host user: %w", err)
	}
	return u, nil
}
