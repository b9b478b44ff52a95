package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Limits on account fields.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
	MinPasswordLen = 8
	MaxPasswordLen = 72 // bcrypt ignores bytes past 72
)

// User is an account with its persisted presence.
type User struct {
	ID              int64
	Username        string
	ProfileImageURL string
	IsOnline        bool
	LastSeen        time.Time // zero if never
	LastActivity    time.Time // zero if never
	CreatedAt       time.Time
	// ExternalID is the host site's id of a host user (one signed in by a
	// host JWT or made by the server API), as text: "42" or a UUID. It is
	// empty for a local account, whose id is ID. The two never mix: see
	// HostIssuer.
	ExternalID string
	// IsAdmin marks an administrator: the first account created on an
	// empty database, and those made with `presence user add --admin` or
	// promoted.
	IsAdmin bool
}

// IsHost reports whether u is a host user rather than a local account.
func (u User) IsHost() bool { return u.ExternalID != "" }

// ValidateUsername returns an error wrapping ErrInvalidUsername that says
// what is wrong, or nil. Usernames are 3–32 letters, digits or the
// characters . _ - (as in the original app, minus @ and +).
func ValidateUsername(name string) error {
	n := utf8.RuneCountInString(name)
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidUsername)
	}
	if n < MinUsernameLen || n > MaxUsernameLen {
		return fmt.Errorf("%w: must be %d to %d characters", ErrInvalidUsername, MinUsernameLen, MaxUsernameLen)
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '.' && r != '_' && r != '-' {
			return fmt.Errorf("%w: only letters, digits, '.', '_' and '-' are allowed", ErrInvalidUsername)
		}
	}
	return nil
}

// ValidatePassword returns an error wrapping ErrInvalidPassword that says
// what is wrong, or nil.
func ValidatePassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return fmt.Errorf("%w: must be at least %d characters", ErrInvalidPassword, MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return fmt.Errorf("%w: must be at most %d bytes", ErrInvalidPassword, MaxPasswordLen)
	}
	return nil
}

// usernameKey is the case-insensitive identity of a username.
func usernameKey(name string) string { return strings.ToLower(name) }

// CreateUser validates the username and password, hashes the password and
// stores a new user. It returns ErrUsernameTaken when the name is in use in
// any letter case. The first account created on an empty database is an
// administrator: that is decided inside the INSERT itself, so of two first
// registrations at once exactly one becomes the administrator.
func (db *DB) CreateUser(ctx context.Context, username, password string) (User, error) {
	return db.createUser(ctx, username, password, false)
}

// CreateAdmin is CreateUser for an account that is an administrator
// whether or not it is the first.
func (db *DB) CreateAdmin(ctx context.Context, username, password string) (User, error) {
	return db.createUser(ctx, username, password, true)
}

func (db *DB) createUser(ctx context.Context, username, password string, admin bool) (User, error) {
	if err := ValidateUsername(username); err != nil {
		return User{}, err
	}
	if err := ValidatePassword(password); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), db.BcryptCost)
	if err != nil {
		return User{}, fmt.Errorf("store: hash password: %w", err)
	}
	u := User{Username: username, CreatedAt: db.Now().UTC().Truncate(time.Millisecond)}
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		// RETURNING yields no row when the name is taken (DO NOTHING).
		err := tx.QueryRowContext(ctx, `INSERT INTO users (username, username_key, password_hash, created_at, is_admin)
			VALUES (?, ?, ?, ?, CASE WHEN ? <> 0 OR NOT EXISTS (SELECT 1 FROM users) THEN 1 ELSE 0 END)
			ON CONFLICT (username_key) DO NOTHING
			RETURNING id, is_admin`,
			username, usernameKey(username), string(hash), toMS(u.CreatedAt), admin).Scan(&u.ID, &u.IsAdmin)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrUsernameTaken
		}
		return err
	})
	if errors.Is(err, ErrUsernameTaken) {
		return User{}, err
	}
	if err != nil {
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	return u, nil
}

// HasUsers reports whether any account exists; false means a first run.
func (db *DB) HasUsers(ctx context.Context) (bool, error) {
	var exists bool
	if err := db.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM users)").Scan(&exists); err != nil {
		return false, fmt.Errorf("store: has users: %w", err)
	}
	return exists, nil
}

// SetAdmin makes the user with this id an administrator, or not. It
// returns ErrNotFound for an unknown id.
func (db *DB) SetAdmin(ctx context.Context, id int64, admin bool) error {
	return db.execOne(ctx, "set admin", "UPDATE users SET is_admin = ? WHERE id = ?", admin, id)
}

// queryColumn runs a read query whose rows are one column each and returns
// the values in order; errors are wrapped as "store: <what>: …".
func queryColumn[T any](ctx context.Context, db *DB, what, query string, args ...any) ([]T, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, classify(err))
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// execOne runs one write statement in its own transaction. It returns
// ErrNotFound when the statement touched no row, and other errors wrapped
// as "store: <what>: …".
func (db *DB) execOne(ctx context.Context, what, query string, args ...any) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return err
}

// dummyHash is compared against when the user does not exist, so an unknown
// name costs the same time as a wrong password. It is made at the same
// cost as real hashes, on first use.
func (db *DB) dummyHash() []byte {
	db.dummyOnce.Do(func() {
		db.dummy, _ = bcrypt.GenerateFromPassword([]byte("presence-timing-equaliser"), db.BcryptCost)
	})
	return db.dummy
}

// Authenticate returns the user with this username (any letter case) and
// password, or ErrInvalidLogin for an unknown user and a wrong password
// alike, after similar work.
func (db *DB) Authenticate(ctx context.Context, username, password string) (User, error) {
	var hash string
	u, err := db.scanUser(db.r.QueryRowContext(ctx, userColumns+", password_hash FROM users WHERE username_key = ?",
		usernameKey(username)), &hash)
	if errors.Is(err, ErrNotFound) {
		bcrypt.CompareHashAndPassword(db.dummyHash(), []byte(password))
		return User{}, ErrInvalidLogin
	}
	if err != nil {
		return User{}, fmt.Errorf("store: authenticate: %w", err)
	}
	if u.IsHost() { // host users sign in on the host: they have no password here
		bcrypt.CompareHashAndPassword(db.dummyHash(), []byte(password))
		return User{}, ErrInvalidLogin
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, ErrInvalidLogin
	}
	return u, nil
}

// userColumns are the columns scanUser reads, in its order; UserByToken
// (tokens.go) selects the same list from its join.
const userColumns = `SELECT id, username, profile_image_url, is_online, last_seen, last_activity, created_at, COALESCE(external_id, ''), is_admin`

func (db *DB) scanUser(row interface{ Scan(...any) error }, extra ...any) (User, error) {
	var (
		u                    User
		seen, act, createdAt sql.NullInt64
	)
	dest := append([]any{&u.ID, &u.Username, &u.ProfileImageURL, &u.IsOnline, &seen, &act, &createdAt, &u.ExternalID, &u.IsAdmin}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrNotFound
		}
		return User{}, err
	}
	u.LastSeen, u.LastActivity, u.CreatedAt = fromMS(seen), fromMS(act), fromMS(createdAt)
	return u, nil
}

// UserByName returns the user with this username in any letter case, or
// ErrNotFound.
func (db *DB) UserByName(ctx context.Context, username string) (User, error) {
	u, err := db.scanUser(db.r.QueryRowContext(ctx, userColumns+" FROM users WHERE username_key = ?", usernameKey(username)))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("store: user by name: %w", err)
	}
	return u, err
}

// UserByID returns the user with this id, or ErrNotFound.
func (db *DB) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := db.scanUser(db.r.QueryRowContext(ctx, userColumns+" FROM users WHERE id = ?", id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("store: user by id: %w", err)
	}
	return u, err
}

// UsersByIDs returns the users with these ids, keyed by id. Unknown ids are
// left out.
func (db *DB) UsersByIDs(ctx context.Context, ids []int64) (map[int64]User, error) {
	out := make(map[int64]User, len(ids))
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		q := userColumns + " FROM users WHERE id IN (?" + strings.Repeat(",?", n-1) + ")"
		rows, err := db.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("store: users by ids: %w", err)
		}
		for rows.Next() {
			u, err := db.scanUser(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: users by ids: %w", err)
			}
			out[u.ID] = u
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("store: users by ids: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}
