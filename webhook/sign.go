package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook request.
const (
	// HeaderTimestamp carries the Unix time (seconds) of the attempt.
	HeaderTimestamp = "X-Presence-Timestamp"
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256, keyed
	// with the webhook secret, of the timestamp, ".", and the body.
	HeaderSignature = "X-Presence-Signature"
	// HeaderEventID repeats the payload's id, for logs on the receiver.
	HeaderEventID = "X-Presence-Event-Id"
)

// signaturePrefix names the algorithm in HeaderSignature.
const signaturePrefix = "sha256="

// Sign returns the HeaderSignature value for body sent at timestamp (Unix
// seconds): "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is returned by Verify for a missing, malformed or wrong
// signature, and for a timestamp outside the tolerance.
var ErrBadSignature = errors.New("webhook: bad signature")

// Verify checks a received webhook as a receiver should: the signature
// over timestamp and body, compared in constant time, and a timestamp
// within tolerance of now (a replayed old request is refused). It is
// what docs/INTEGRATION.md shows receivers, and what the tests use.
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrBadSignature, timestamp)
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(signature))) {
		return fmt.Errorf("%w: signature does not match", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp is %v away from now", ErrBadSignature, d.Round(time.Second))
	}
	return nil
}
