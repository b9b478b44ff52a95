package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TokenKind says what a token is for. A token of one kind never
// authenticates as the other.
type TokenKind string

// Token kinds.
const (
	TokenAPI     TokenKind = "api"     // Bearer / ?token= access token
	TokenSession TokenKind = "session" // browser session, carried in the signed cookie
	// TokenEmbed is a read-only token for showing the widget on another
	// site: it can read the widget and its stream, nothing else. Its owner
	// is whoever issued it, not the visitor viewing the widget.
	TokenEmbed TokenKind = "embed"
)

// tokenTouchEvery throttles last_used_at updates to one write per token per
// interval.
const tokenTouchEvery = time.Minute

// tokenTouchTimeout bounds how long recording a token's use may delay the
// request that uses it.
const tokenTouchTimeout = 250 * time.Millisecond

// tokenPrefix marks our tokens so secret scanners and humans recognise them.
const tokenPrefix = "prs_"

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateToken issues a new random token of kind for the user, valid for ttl
// (0 means it never expires). Only its hash is stored: the returned secret
// cannot be recovered later.
func (db *DB) CreateToken(ctx context.Context, userID int64, kind TokenKind, ttl time.Duration) (string, error) {
	var raw [32]byte
	rand.Read(raw[:])
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := db.Now()
	var expires time.Time
	if ttl > 0 {
		expires = now.Add(ttl)
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (user_id, kind, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			userID, string(kind), hashToken(secret), toMS(now), toMS(expires))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store: create token: %w", err)
	}
	return secret, nil
}

// UserByToken returns the owner of a live (unexpired, unrevoked) token of
// kind, or ErrInvalidToken. It records the token's last use, at most once a
// minute per token; failing to record it does not fail the lookup.
func (db *DB) UserByToken(ctx context.Context, kind TokenKind, secret string) (User, error) {
	u, _, err := db.ResolveToken(ctx, kind, secret)
	return u, err
}

// ResolveToken is UserByToken that also returns the token's id, by which
// RevokedTokens later reports the token's revocation.
func (db *DB) ResolveToken(ctx context.Context, kind TokenKind, secret string) (User, int64, error) {
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 100 {
		return User{}, 0, ErrInvalidToken
	}
	var (
		tokenID       int64
		expires, used sql.NullInt64
		revoked       sql.NullInt64
		now           = db.Now()
	)
	row := db.r.QueryRowContext(ctx, `SELECT u.id, u.username, u.profile_image_url, u.is_online, u.last_seen, u.last_activity, u.created_at, COALESCE(u.external_id, ''), u.is_admin,
			t.id, t.expires_at, t.last_used_at, t.revoked_at
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND t.kind = ?`, hashToken(secret), string(kind))
	u, err := db.scanUser(row, &tokenID, &expires, &used, &revoked)
	if errors.Is(err, ErrNotFound) {
		return User{}, 0, ErrInvalidToken
	}
	if err != nil {
		return User{}, 0, fmt.Errorf("store: user by token: %w", err)
	}
	if revoked.Valid || (expires.Valid && now.UnixMilli() >= expires.Int64) {
		return User{}, 0, ErrInvalidToken
	}
	if !used.Valid || now.Sub(fromMS(used)) >= tokenTouchEvery {
		// Last use is bookkeeping: a failed write (disk full, database
		// locked by another process) must not lock anyone out or hold
		// them up for the busy timeout. It is retried at the next use;
		// presence writes surface the failure.
		tctx, cancel := context.WithTimeout(ctx, tokenTouchTimeout)
		db.writeTx(tctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(tctx, "UPDATE tokens SET last_used_at = ? WHERE id = ?", toMS(now), tokenID)
			return err
		})
		cancel()
	}
	return u, tokenID, nil
}

// RevokeToken revokes the token with this secret. Revoking an unknown or
// already revoked token is not an error.
func (db *DB) RevokeToken(ctx context.Context, secret string) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL",
			toMS(db.Now()), hashToken(secret))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: revoke token: %w", err)
	}
	return nil
}
