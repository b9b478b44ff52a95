package store_test

import (
	"errors"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/presencehq/presence/store"
)

// FuzzValidateUsername: a name is accepted exactly when it has 3–32
// letters, digits, '.', '_' or '-', and a refusal always says why.
func FuzzValidateUsername(f *testing.F) {
	for _, s := range []string{"alice", "zoë.o_k-1", "ab", "<img src=x onerror=alert(1)>", "a b", "x\xffy", "ＡＢＣ", "123", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := store.ValidateUsername(name)
		valid := utf8.ValidString(name) && utf8.RuneCountInString(name) >= store.MinUsernameLen && utf8.RuneCountInString(name) <= store.MaxUsernameLen
		for _, r := range name {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '.' && r != '_' && r != '-' {
				valid = false
			}
		}
		if valid != (err == nil) {
			t.Fatalf("ValidateUsername(%q) = %v, want valid=%v", name, err, valid)
		}
		if err != nil && (!errors.Is(err, store.ErrInvalidUsername) || len(err.Error()) <= len(store.ErrInvalidUsername.Error())) {
			t.Fatalf("refusal without a reason: %v", err)
		}
	})
}

// FuzzValidatePassword: accepted passwords are 8+ characters and at most
// 72 bytes (what bcrypt reads).
func FuzzValidatePassword(f *testing.F) {
	for _, s := range []string{"password1", "short", string(make([]byte, 73)), "ünïcödé-pässwörd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		err := store.ValidatePassword(pw)
		valid := utf8.RuneCountInString(pw) >= store.MinPasswordLen && len(pw) <= store.MaxPasswordLen
		if valid != (err == nil) {
			t.Fatalf("ValidatePassword(%q) = %v, want valid=%v", pw, err, valid)
		}
	})
}
