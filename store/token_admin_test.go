package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/presencehq/presence/store"
)

func TestTokensOf(t *testing.T) {
	db := MustOpenDB(t)
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
	api, _ := db.CreateToken(ctx, alice.ID, store.TokenAPI, time.Hour)
	now = now.Add(time.Minute)
	embed, _ := db.CreateToken(ctx, alice.ID, store.TokenEmbed, 0)
	db.CreateToken(ctx, bob.ID, store.TokenAPI, 0)
	now = now.Add(time.Minute)
	if _, err := db.UserByToken(ctx, store.TokenEmbed, embed); err != nil {
		t.Fatal(err)
	}

	list, err := db.TokensOf(ctx, alice.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("TokensOf = %+v, %v; want alice's 2 tokens", list, err)
	}
	a, e := list[0], list[1]
	if a.Kind != store.TokenAPI || a.ShortID != store.TokenShortID(api) || len(a.ShortID) != store.ShortIDLen ||
		!a.ExpiresAt.Equal(a.CreatedAt.Add(time.Hour)) || !a.LastUsedAt.IsZero() || !a.Live(now) {
		t.Fatalf("API token listed as %+v", a)
	}
	if e.Kind != store.TokenEmbed || e.ShortID != store.TokenShortID(embed) || !e.ExpiresAt.IsZero() ||
		!e.LastUsedAt.Equal(now) || !e.RevokedAt.IsZero() {
		t.Fatalf("embed token listed as %+v", e)
	}

	// Revoke by short id: the embed token stops working, the API token not.
	got, err := db.RevokeTokenByShortID(ctx, e.ShortID)
	if err != nil || got.ID != e.ID {
		t.Fatalf("RevokeTokenByShortID = %+v, %v", got, err)
	}
	if _, err := db.UserByToken(ctx, store.TokenEmbed, embed); !errors.Is(err, store.ErrInvalidToken) {
		t.Fatalf("revoked by short id, still valid: %v", err)
	}
	if _, err := db.UserByToken(ctx, store.TokenAPI, api); err != nil {
		t.Fatalf("the other token was revoked too: %v", err)
	}
	list, _ = db.TokensOf(ctx, alice.ID)
	if list[1].RevokedAt.IsZero() || list[1].Live(now) {
		t.Fatalf("revoked token listed as %+v", list[1])
	}
	if _, err := db.RevokeTokenByShortID(ctx, e.ShortID); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	for _, bad := range []string{"", "abc", "zzzzzzzzzz", "prs_abc", "0000000000"} {
		if _, err := db.RevokeTokenByShortID(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeTokenByShortID(%q) = %v, want ErrNotFound", bad, err)
		}
	}
}

// TestRevokeTokenByShortID_Ambiguous: a prefix shared by two tokens revokes
// neither; a longer one picks one.
func TestRevokeTokenByShortID_Ambiguous(t *testing.T) {
	db := MustOpenDB(t)
	u := MustCreateUser(t, db, "alice")
	seen := map[string]string{}
	var a, b string
	for range 5000 { // 4 hex digits: a shared prefix is all but certain
		tok, err := db.CreateToken(ctx, u.ID, store.TokenAPI, 0)
		if err != nil {
			t.Fatal(err)
		}
		p := store.TokenShortID(tok)[:4]
		if other, ok := seen[p]; ok {
			a, b = other, tok
			break
		}
		seen[p] = tok
	}
	if a == "" {
		t.Skip("no two of 5,000 tokens share 4 hex digits")
	}
	if _, err := db.RevokeTokenByShortID(ctx, store.TokenShortID(a)[:4]); !errors.Is(err, store.ErrAmbiguousToken) {
		t.Fatalf("shared prefix: %v, want ErrAmbiguousToken", err)
	}
	if _, err := db.RevokeTokenByShortID(ctx, store.TokenShortID(a)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UserByToken(ctx, store.TokenAPI, a); !errors.Is(err, store.ErrInvalidToken) {
		t.Fatal("not revoked")
	}
	if _, err := db.UserByToken(ctx, store.TokenAPI, b); err != nil {
		t.Fatalf("the other token sharing the prefix was revoked: %v", err)
	}
}
