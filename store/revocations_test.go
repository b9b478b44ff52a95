package store_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presencehq/presence/store"
)

func TestRevocations(t *testing.T) {
	open := NewOpener(t)
	server := open()
	if _, err := server.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The CLI: a second handle on the same database, as `presence user
	// revoke-token` opens it from another process (or another node).
	cli := open()
	alice := MustCreateUser(t, server, "alice")
	newToken := func(kind store.TokenKind) (string, int64) {
		t.Helper()
		tok, err := server.CreateToken(ctx, alice.ID, kind, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		u, id, err := server.ResolveToken(ctx, kind, tok)
		if err != nil || u.ID != alice.ID || id == 0 {
			t.Fatalf("ResolveToken = %+v, %d, %v", u, id, err)
		}
		return tok, id
	}

	t.Run("ResolveToken", func(t *testing.T) {
		tok, id := newToken(store.TokenAPI)
		_, id2, _ := server.ResolveToken(ctx, store.TokenAPI, tok)
		if id2 != id {
			t.Fatalf("same token, ids %d and %d", id, id2)
		}
		if _, _, err := server.ResolveToken(ctx, store.TokenSession, tok); err != store.ErrInvalidToken {
			t.Fatalf("wrong kind: %v", err)
		}
		cli.RevokeToken(ctx, tok)
		if _, id, err := server.ResolveToken(ctx, store.TokenAPI, tok); err != store.ErrInvalidToken || id != 0 {
			t.Fatalf("revoked: %d, %v", id, err)
		}
	})

	t.Run("OtherProcess", func(t *testing.T) {
		// Revoked long before the server started: not news.
		old, oldID := newToken(store.TokenAPI)
		cli.Now = func() time.Time { return time.Now().Add(-time.Hour) }
		cli.RevokeToken(ctx, old)
		cli.Now = time.Now

		cur := server.RevocationCursorNow()
		ids, cur, err := server.RevokedTokens(ctx, cur)
		if err != nil || slices.Contains(ids, oldID) {
			t.Fatalf("RevokedTokens = %v, %v; an old revocation (%d) is not news", ids, err, oldID)
		}
		api, apiID := newToken(store.TokenAPI)
		embed, embedID := newToken(store.TokenEmbed)
		_, liveID := newToken(store.TokenSession)
		if err := cli.RevokeToken(ctx, api); err != nil {
			t.Fatal(err)
		}
		if err := cli.RevokeToken(ctx, embed); err != nil {
			t.Fatal(err)
		}
		ids, cur, err = server.RevokedTokens(ctx, cur)
		if err != nil || !slices.Contains(ids, apiID) || !slices.Contains(ids, embedID) || slices.Contains(ids, liveID) || slices.Contains(ids, oldID) {
			t.Fatalf("RevokedTokens = %v, %v; want %d and %d, not %d or %d", ids, err, apiID, embedID, liveID, oldID)
		}
		// A revocation three seconds later moves the cursor past the
		// overlap: the earlier ones are no longer reported.
		later, _ := newToken(store.TokenAPI)
		_, laterID, _ := server.ResolveToken(ctx, store.TokenAPI, later)
		cli.Now = func() time.Time { return time.Now().Add(3 * time.Second) }
		cli.RevokeToken(ctx, later)
		cli.Now = time.Now
		ids, cur, err = server.RevokedTokens(ctx, cur)
		if err != nil || !slices.Contains(ids, laterID) {
			t.Fatalf("RevokedTokens = %v, %v; want %d", ids, err, laterID)
		}
		ids, _, err = server.RevokedTokens(ctx, cur)
		if err != nil || !slices.Equal(ids, []int64{laterID}) {
			t.Fatalf("RevokedTokens = %v, %v; want only [%d]", ids, err, laterID)
		}
	})

	t.Run("SameMillisecond", func(t *testing.T) {
		// A revocation committed after a poll but stamped with the same
		// millisecond as the newest the poll saw is still reported.
		frozen := time.Now().Add(time.Minute)
		server.Now = func() time.Time { return frozen }
		cli.Now = server.Now
		defer func() { server.Now, cli.Now = time.Now, time.Now }()
		a, aID := newToken(store.TokenAPI)
		b, bID := newToken(store.TokenAPI)
		cur := server.RevocationCursorNow()
		cli.RevokeToken(ctx, a)
		ids, cur, _ := server.RevokedTokens(ctx, cur)
		if !slices.Contains(ids, aID) {
			t.Fatalf("first poll %v, want %d", ids, aID)
		}
		cli.RevokeToken(ctx, b)
		ids, _, _ = server.RevokedTokens(ctx, cur)
		if !slices.Contains(ids, bID) {
			t.Fatalf("second poll %v, want %d", ids, bID)
		}
	})

	t.Run("RevokeTokenReturningID", func(t *testing.T) {
		tok, id := newToken(store.TokenSession)
		got, err := server.RevokeTokenReturningID(ctx, tok)
		if err != nil || got != id {
			t.Fatalf("first revoke = %d, %v; want %d", got, err, id)
		}
		if got, err := server.RevokeTokenReturningID(ctx, tok); err != nil || got != 0 {
			t.Fatalf("second revoke = %d, %v; want 0", got, err)
		}
		if got, err := server.RevokeTokenReturningID(ctx, "prs_unknown"); err != nil || got != 0 {
			t.Fatalf("unknown = %d, %v; want 0", got, err)
		}
		if _, err := server.UserByToken(ctx, store.TokenSession, tok); err != store.ErrInvalidToken {
			t.Fatalf("still valid: %v", err)
		}
	})

	t.Run("UsesIndex", func(t *testing.T) {
		SQLiteOnly(t, "reads SQLite's query plan")
		plan, err := store.RevokedTokensPlan(server)
		if err != nil || !strings.Contains(plan, "INDEX tokens_revoked") {
			t.Fatalf("plan = %q, %v; want the tokens_revoked index", plan, err)
		}
	})
}
