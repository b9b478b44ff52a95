package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A running server learns of revocations made by other processes sharing
// the database (`presence user revoke-token`) by polling RevokedTokens.
//
// Why a time cursor is enough: revoked_at is taken inside the write
// transaction (RevokeToken, RevokeTokenReturningID), after BEGIN IMMEDIATE
// has won SQLite's single write lock, so revocations commit in the order of
// their revoked_at, whichever process made them. Each poll reads from the
// newest revoked_at it has seen, less revocationOverlap: that covers two
// revocations in the same millisecond and a wall clock stepped back a
// little between two processes. A token in the overlap is reported again;
// acting on a revocation twice is harmless.

// revocationOverlap is how far behind its cursor each poll looks again.
const revocationOverlap = 2 * time.Second

// RevocationCursor marks how far RevokedTokens has read. Start from
// RevocationCursorNow; the zero value reads every revocation ever made.
type RevocationCursor struct{ ms int64 }

// RevocationCursorNow returns a cursor at the present: RevokedTokens with
// it reports tokens revoked from now on (and those of the last two
// seconds). It does not touch the database, so it cannot fail.
func (db *DB) RevocationCursorNow() RevocationCursor {
	return RevocationCursor{ms: db.Now().UnixMilli()}
}

// RevokedTokens returns the ids of the tokens revoked since the cursor, by
// this process or any other using the database, and the cursor for the
// next call. An id may be returned again by the next call or two.
func (db *DB) RevokedTokens(ctx context.Context, after RevocationCursor) ([]int64, RevocationCursor, error) {
	// The partial index tokens_revoked (migration 0003) serves this range.
	rows, err := db.r.QueryContext(ctx, "SELECT id, revoked_at FROM tokens WHERE revoked_at >= ? ORDER BY revoked_at",
		after.ms-revocationOverlap.Milliseconds())
	if err != nil {
		return nil, after, fmt.Errorf("store: revoked tokens: %w", classify(err))
	}
	defer rows.Close()
	var ids []int64
	next := after
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, after, fmt.Errorf("store: revoked tokens: %w", err)
		}
		ids = append(ids, id)
		next.ms = max(next.ms, at)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("store: revoked tokens: %w", classify(err))
	}
	return ids, next, nil
}

// RevokeTokenReturningID is RevokeToken that also returns the id of the
// token it revoked, so the caller can end what the token opened at once;
// 0 when the secret is unknown or was already revoked.
func (db *DB) RevokeTokenReturningID(ctx context.Context, secret string) (int64, error) {
	var id int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "UPDATE tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL RETURNING id",
			toMS(db.Now()), hashToken(secret)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: revoke token: %w", err)
	}
	return id, nil
}
