package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// FuzzHostToken: whatever a client sends as a host JWT, verify does not
// panic; it accepts only tokens that carry the right signature, and what it
// accepts is a profile the store would take.
func FuzzHostToken(f *testing.F) {
	const secret = "fuzz-secret-fuzz-secret-fuzz-secret!"
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v, err := newHostVerifier(secret, nil, presence.NewFakeClock(now))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "access", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": "j", "user_id": 42,
	}).SignedString([]byte(secret))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": now.Add(time.Minute).Unix(), "user_id": 1}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add(good)
	f.Add(none)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add(strings.Repeat(".", 3))
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.verify(tok)
		if err != nil {
			return
		}
		if parts := strings.Split(tok, "."); len(parts) != 3 || parts[2] == "" {
			t.Fatalf("accepted an unsigned token %q", tok)
		}
		if store.ValidateExternalID(p.ExternalID) != nil || store.ValidateProfileImageURL(p.ProfileImageURL) != nil {
			t.Fatalf("accepted %q as %+v", tok, p)
		}
		if _, err := store.CleanHostUsername(p.Username); err != nil {
			t.Fatalf("accepted name %q: %v", p.Username, err)
		}
	})
}
