package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrAmbiguousToken is returned by RevokeTokenByShortID when the id names
// more than one token: give more of its digits.
var ErrAmbiguousToken = errors.New("short id matches more than one token")

// ShortIDLen is how many hex digits of a token's hash its short id shows.
const ShortIDLen = 10

// TokenInfo describes one token for an administrator. It never holds the
// secret, which is not stored.
type TokenInfo struct {
	// ID is the token's row id.
	ID int64
	// ShortID is the first ShortIDLen hex digits of the SHA-256 hash of
	// the secret: enough to tell a user's tokens apart and revoke one,
	// useless for signing in.
	ShortID string
	Kind    TokenKind
	// CreatedAt is when it was issued. ExpiresAt, LastUsedAt and
	// RevokedAt are zero for never (last use is recorded at most once a
	// minute).
	CreatedAt, ExpiresAt, LastUsedAt, RevokedAt time.Time
}

// Live reports whether the token still authenticates at now.
func (t TokenInfo) Live(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// TokenShortID returns the short id of the token with this secret, as
// TokensOf lists it.
func TokenShortID(secret string) string {
	return hex.EncodeToString(hashToken(secret))[:ShortIDLen]
}

// TokensOf lists every token of the user (every kind, revoked and expired
// ones too), oldest first.
func (db *DB) TokensOf(ctx context.Context, userID int64) ([]TokenInfo, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, kind, hash, created_at, expires_at, last_used_at, revoked_at
		FROM tokens WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", classify(err))
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var (
			t                      TokenInfo
			kind                   string
			hash                   []byte
			created                int64
			expires, used, revoked sql.NullInt64
		)
		if err := rows.Scan(&t.ID, &kind, &hash, &created, &expires, &used, &revoked); err != nil {
			return nil, fmt.Errorf("store: list tokens: %w", err)
		}
		t.Kind, t.ShortID = TokenKind(kind), hex.EncodeToString(hash)[:ShortIDLen]
		t.CreatedAt = time.UnixMilli(created).UTC()
		t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromMS(expires), fromMS(used), fromMS(revoked)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", classify(err))
	}
	return out, nil
}

// RevokeTokenByShortID revokes the one token whose hash starts with the hex
// digits id (a short id from TokensOf, or more of the hash). It returns
// the token as it was, ErrNotFound when no token matches, and
// ErrAmbiguousToken when several do. Revoking a revoked token is not an
// error.
func (db *DB) RevokeTokenByShortID(ctx context.Context, id string) (TokenInfo, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if len(id) < 4 || len(id) > 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return TokenInfo{}, fmt.Errorf("store: token id %q: want 4 to 64 hex digits: %w", id, ErrNotFound)
	}
	var found TokenInfo
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		// A range on the hash uses its unique index: every hash that
		// starts with the prefix lies between prefix+00… and prefix+ff….
		lo, hi := prefixRange(id)
		rows, err := tx.QueryContext(ctx, `SELECT id, kind, created_at, expires_at, last_used_at, revoked_at
			FROM tokens WHERE hash >= ? AND hash <= ? AND `+db.hexOf("hash")+` LIKE ? LIMIT 2`, lo, hi, id+"%")
		if err != nil {
			return err
		}
		var matches []TokenInfo
		for rows.Next() {
			var (
				t                      TokenInfo
				kind                   string
				created                int64
				expires, used, revoked sql.NullInt64
			)
			if err := rows.Scan(&t.ID, &kind, &created, &expires, &used, &revoked); err != nil {
				rows.Close()
				return err
			}
			t.Kind, t.ShortID = TokenKind(kind), id
			t.CreatedAt = time.UnixMilli(created).UTC()
			t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromMS(expires), fromMS(used), fromMS(revoked)
			matches = append(matches, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		switch len(matches) {
		case 0:
			return ErrNotFound
		case 2:
			return ErrAmbiguousToken
		}
		found = matches[0]
		_, err = tx.ExecContext(ctx, "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", toMS(db.Now()), found.ID)
		return err
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrAmbiguousToken) {
		return TokenInfo{}, fmt.Errorf("store: token id %q: %w", id, err)
	}
	if err != nil {
		return TokenInfo{}, fmt.Errorf("store: revoke token: %w", err)
	}
	return found, nil
}

// prefixRange returns the smallest and largest 32-byte hashes whose hex
// form starts with the hex digits prefix.
func prefixRange(prefix string) (lo, hi []byte) {
	loHex := prefix + strings.Repeat("0", 64-len(prefix))
	hiHex := prefix + strings.Repeat("f", 64-len(prefix))
	lo, _ = hex.DecodeString(loHex)
	hi, _ = hex.DecodeString(hiHex)
	return lo, hi
}
