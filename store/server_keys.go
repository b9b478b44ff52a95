package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// serverKeyPrefix marks server keys. It differs from the user tokens'
// "prs_", so a server key is never looked up as a user token and the other
// way round, and a leaked one is recognisable.
const serverKeyPrefix = "prsk_"

// ErrInvalidServerKey is returned for an unknown, revoked or malformed
// server key.
var ErrInvalidServerKey = errors.New("invalid or revoked server key")

// ServerKey describes one server key for an administrator. It never holds
// the secret, which is not stored.
type ServerKey struct {
	ID   int64
	Name string
	// ShortID is the first ShortIDLen hex digits of the SHA-256 hash of
	// the secret: enough to name the key, useless for using it.
	ShortID string
	// CreatedAt is when it was made; LastUsedAt (recorded at most once a
	// minute) and RevokedAt are zero for never.
	CreatedAt, LastUsedAt, RevokedAt time.Time
}

// IsServerKey reports whether secret has the form of a server key.
func IsServerKey(secret string) bool { return strings.HasPrefix(secret, serverKeyPrefix) }

// CreateServerKey makes a new server key called name and returns its
// secret, which cannot be recovered later (only its hash is stored).
func (db *DB) CreateServerKey(ctx context.Context, name string) (string, ServerKey, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", ServerKey{}, fmt.Errorf("store: server key name must be 1 to 100 bytes: %w", ErrInvalidServerKey)
	}
	var raw [32]byte
	rand.Read(raw[:])
	secret := serverKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	k := ServerKey{Name: name, ShortID: hex.EncodeToString(hashToken(secret))[:ShortIDLen], CreatedAt: db.Now().UTC().Truncate(time.Millisecond)}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "INSERT INTO server_keys (name, hash, created_at) VALUES (?, ?, ?) RETURNING id",
			name, hashToken(secret), toMS(k.CreatedAt)).Scan(&k.ID)
	})
	if err != nil {
		return "", ServerKey{}, fmt.Errorf("store: create server key: %w", err)
	}
	return secret, k, nil
}

// ServerKeys lists every server key, revoked ones too, oldest first.
func (db *DB) ServerKeys(ctx context.Context) ([]ServerKey, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT id, name, hash, created_at, last_used_at, revoked_at FROM server_keys ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("store: list server keys: %w", classify(err))
	}
	defer rows.Close()
	var out []ServerKey
	for rows.Next() {
		var (
			k             ServerKey
			hash          []byte
			created       int64
			used, revoked sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Name, &hash, &created, &used, &revoked); err != nil {
			return nil, fmt.Errorf("store: list server keys: %w", err)
		}
		k.ShortID = hex.EncodeToString(hash)[:ShortIDLen]
		k.CreatedAt, k.LastUsedAt, k.RevokedAt = time.UnixMilli(created).UTC(), fromMS(used), fromMS(revoked)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list server keys: %w", classify(err))
	}
	return out, nil
}

// RevokeServerKey revokes the server key named by its secret, its name, or
// its short id (4 or more hex digits of its hash). It returns
// ErrNotFound when nothing matches and ErrAmbiguousToken when several keys
// do. Revoking a revoked key is not an error.
func (db *DB) RevokeServerKey(ctx context.Context, which string) (ServerKey, error) {
	which = strings.TrimSpace(which)
	keys, err := db.ServerKeys(ctx)
	if err != nil {
		return ServerKey{}, err
	}
	var matches []ServerKey
	if IsServerKey(which) {
		short := hex.EncodeToString(hashToken(which))[:ShortIDLen]
		for _, k := range keys {
			if k.ShortID == short {
				matches = append(matches, k)
			}
		}
	} else {
		for _, k := range keys {
			if k.Name == which {
				matches = append(matches, k)
			}
		}
		if len(matches) == 0 && len(which) >= 4 && strings.Trim(strings.ToLower(which), "0123456789abcdef") == "" {
			for _, k := range keys {
				if strings.HasPrefix(k.ShortID, strings.ToLower(which)) {
					matches = append(matches, k)
				}
			}
		}
	}
	switch len(matches) {
	case 0:
		return ServerKey{}, fmt.Errorf("store: server key %q: %w", which, ErrNotFound)
	case 1:
	default:
		return ServerKey{}, fmt.Errorf("store: server key %q: %w", which, ErrAmbiguousToken)
	}
	k := matches[0]
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE server_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", toMS(db.Now()), k.ID)
		return err
	})
	if err != nil {
		return ServerKey{}, fmt.Errorf("store: revoke server key: %w", err)
	}
	return k, nil
}

// ResolveServerKey returns the live server key with this secret, or
// ErrInvalidServerKey. It records the key's last use at most once a
// minute; failing to record it does not fail the lookup.
func (db *DB) ResolveServerKey(ctx context.Context, secret string) (ServerKey, error) {
	if !IsServerKey(secret) || len(secret) > 100 {
		return ServerKey{}, ErrInvalidServerKey
	}
	var (
		k             ServerKey
		created       int64
		used, revoked sql.NullInt64
		now           = db.Now()
	)
	err := db.r.QueryRowContext(ctx, "SELECT id, name, created_at, last_used_at, revoked_at FROM server_keys WHERE hash = ?",
		hashToken(secret)).Scan(&k.ID, &k.Name, &created, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return ServerKey{}, ErrInvalidServerKey
	}
	if err != nil {
		return ServerKey{}, fmt.Errorf("store: server key: %w", classify(err))
	}
	if revoked.Valid {
		return ServerKey{}, ErrInvalidServerKey
	}
	k.ShortID = hex.EncodeToString(hashToken(secret))[:ShortIDLen]
	k.CreatedAt, k.LastUsedAt = time.UnixMilli(created).UTC(), fromMS(used)
	if !used.Valid || now.Sub(fromMS(used)) >= tokenTouchEvery {
		tctx, cancel := context.WithTimeout(ctx, tokenTouchTimeout)
		db.writeTx(tctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(tctx, "UPDATE server_keys SET last_used_at = ? WHERE id = ?", toMS(now), k.ID)
			return err
		})
		cancel()
	}
	return k, nil
}
