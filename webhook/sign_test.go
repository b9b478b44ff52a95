package webhook

import (
	"errors"
	"testing"
	"time"
)

// TestSign: the signature is HMAC-SHA256 over "timestamp.body", in hex
// after "sha256=" (the vector is from Python's hmac module).
func TestSign(t *testing.T) {
	got := Sign("shh", 1700000000, []byte(`{"a":1}`))
	if want := "sha256=be310eac0f84daf469d630347a950258de768b365563ab68f29f2f783473d547"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// TestVerify accepts what Sign made and refuses any change, a wrong
// secret, a stale or future timestamp, and junk.
func TestVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"evt_1"}`)
	sig := Sign("s3cret", now.Unix(), body)
	if err := Verify("s3cret", "1700000000", sig, body, now.Add(30*time.Second), 5*time.Minute); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for name, c := range map[string]struct {
		secret, ts, sig, body string
		now                   time.Time
	}{
		"body changed":     {"s3cret", "1700000000", sig, `{"id":"evt_2"}`, now},
		"wrong secret":     {"other", "1700000000", sig, string(body), now},
		"timestamp moved":  {"s3cret", "1700000001", sig, string(body), now},
		"replayed later":   {"s3cret", "1700000000", sig, string(body), now.Add(6 * time.Minute)},
		"from the future":  {"s3cret", "1700000000", sig, string(body), now.Add(-6 * time.Minute)},
		"no signature":     {"s3cret", "1700000000", "", string(body), now},
		"bare hex":         {"s3cret", "1700000000", sig[len("sha256="):], string(body), now},
		"junk timestamp":   {"s3cret", "soon", sig, string(body), now},
		"empty timestamp":  {"s3cret", "", sig, string(body), now},
		"other algorithm":  {"s3cret", "1700000000", "sha1=" + sig[len("sha256="):], string(body), now},
		"signature cased":  {"s3cret", "1700000000", "SHA256=" + sig[len("sha256="):], string(body), now},
		"signature padded": {"s3cret", "1700000000", sig + "00", string(body), now},
	} {
		if err := Verify(c.secret, c.ts, c.sig, []byte(c.body), c.now, 5*time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", name, err)
		}
	}
}

// TestBackoff: doubling from Base, capped at Max, jittered between half
// and all of it, and no overflow however many attempts.
func TestBackoff(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 10 * time.Minute}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: 512 * time.Second, 11: 10 * time.Minute, 62: 10 * time.Minute, 63: 10 * time.Minute, 1000: 10 * time.Minute} {
		if got := b.Delay(n, 1); got != want {
			t.Errorf("Delay(%d, 1) = %v, want %v", n, got, want)
		}
		if got := b.Delay(n, 0); got != want/2 {
			t.Errorf("Delay(%d, 0) = %v, want %v", n, got, want/2)
		}
		if got := b.Delay(n, 0.5); got <= want/2 || got >= want {
			t.Errorf("Delay(%d, 0.5) = %v, want strictly between %v and %v", n, got, want/2, want)
		}
	}
	if got := b.Delay(0, 1); got != time.Second {
		t.Errorf("Delay(0) = %v, want the first delay", got)
	}
}
