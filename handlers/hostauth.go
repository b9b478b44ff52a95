package handlers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// jwtLeeway is the clock skew tolerated between the host and Presence when
// checking exp, nbf and iat.
const jwtLeeway = 5 * time.Second

// maxJWTLen bounds a token before it is parsed.
const maxJWTLen = 8 << 10

// errHostToken is the cause of every refused host JWT. Its details go to
// the log at debug level only: the client learns "invalid token".
var errHostToken = errors.New("invalid host token")

// hostVerifier checks JWTs signed by the host site (--jwt-secret or
// --jwt-public-key) with golang-jwt/jwt v5: only the configured algorithm
// family is accepted (WithValidMethods, so "none" and algorithm confusion
// are refused), exp is required, and a few seconds of skew are tolerated.
type hostVerifier struct {
	key     any
	methods []string
	parser  *jwt.Parser
}

// newHostVerifier returns nil when neither a secret nor a public key is
// configured. A PEM public key may be RSA (RS256), ECDSA P-256 (ES256) or
// Ed25519 (EdDSA).
func newHostVerifier(secret string, publicKeyPEM []byte, clock presence.Clock) (*hostVerifier, error) {
	v := &hostVerifier{}
	switch {
	case secret != "" && len(publicKeyPEM) > 0:
		return nil, errors.New("handlers: give a JWT secret or a JWT public key, not both")
	case secret != "":
		if len(secret) < 32 {
			return nil, errors.New("handlers: the JWT secret must be at least 32 bytes (HS256 needs a 256-bit key)")
		}
		v.key, v.methods = []byte(secret), []string{jwt.SigningMethodHS256.Alg()}
	case len(publicKeyPEM) > 0:
		key, methods, err := parsePublicKey(publicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.key, v.methods = key, methods
	default:
		return nil, nil
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithJSONNumber(),
		jwt.WithTimeFunc(clock.Now),
	)
	return v, nil
}

// parsePublicKey reads a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY"
// (PKCS #1) and returns it with the one algorithm it may verify.
func parsePublicKey(data []byte) (crypto.PublicKey, []string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, errors.New("handlers: JWT public key: no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, nil, fmt.Errorf("handlers: JWT public key: PEM block %q: want PUBLIC KEY (a public key, not a private key or certificate)", block.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("handlers: JWT public key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, errors.New("handlers: JWT public key: RSA keys must be at least 2048 bits")
		}
		return k, []string{jwt.SigningMethodRS256.Alg()}, nil
	case *ecdsa.PublicKey:
		if k.Curve.Params().Name != "P-256" {
			return nil, nil, fmt.Errorf("handlers: JWT public key: ECDSA curve %s: want P-256 (ES256)", k.Curve.Params().Name)
		}
		return k, []string{jwt.SigningMethodES256.Alg()}, nil
	case ed25519.PublicKey:
		return k, []string{jwt.SigningMethodEdDSA.Alg()}, nil
	}
	return nil, nil, fmt.Errorf("handlers: JWT public key: unsupported key type %T", key)
}

// looksLikeJWT tells a compact JWS (three base64url parts) from our opaque
// tokens, which never contain a dot.
func looksLikeJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// verify checks a host JWT and returns the profile its claims describe:
// the id from user_id (simplejwt's default claim; a number or a string),
// else sub; the name from username, else preferred_username, else name;
// the avatar from picture (http/https only). A token whose token_type is
// anything but "access" (a simplejwt refresh token) is refused.
func (v *hostVerifier) verify(tok string) (store.HostProfile, error) {
	if len(tok) > maxJWTLen {
		return store.HostProfile{}, fmt.Errorf("%w: too long", errHostToken)
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return v.key, nil }); err != nil {
		return store.HostProfile{}, fmt.Errorf("%w: %w", errHostToken, err)
	}
	if tt, ok := claims["token_type"]; ok && tt != "access" {
		return store.HostProfile{}, fmt.Errorf("%w: token_type %v is not access", errHostToken, tt)
	}
	var p store.HostProfile
	id, err := claimID(claims)
	if err != nil {
		return p, fmt.Errorf("%w: %w", errHostToken, err)
	}
	p.ExternalID = id
	for _, name := range []string{"username", "preferred_username", "name"} {
		if s, ok := claims[name].(string); ok && strings.TrimSpace(s) != "" {
			if p.Username, err = store.CleanHostUsername(s); err != nil {
				return p, fmt.Errorf("%w: %w", errHostToken, err)
			}
			break
		}
	}
	if pic, ok := claims["picture"].(string); ok && pic != "" {
		// A bad avatar URL is dropped, not fatal: the user can still be
		// shown, with the letter avatar.
		if store.ValidateProfileImageURL(pic) == nil {
			p.ProfileImageURL = pic
		}
	}
	return p, store.ValidateExternalID(p.ExternalID)
}

// claimID is the user's id: user_id when present (a whole number or a
// string), else sub.
func claimID(claims jwt.MapClaims) (string, error) {
	raw, ok := claims["user_id"]
	if !ok || raw == nil {
		raw, ok = claims["sub"]
		if !ok || raw == nil {
			return "", errors.New("no user_id or sub claim")
		}
	}
	switch id := raw.(type) {
	case string:
		if id == "" {
			return "", errors.New("empty user id")
		}
		return id, nil
	case json.Number:
		n, err := strconv.ParseInt(id.String(), 10, 64)
		if err != nil {
			return "", fmt.Errorf("user id %s is not a whole number", id)
		}
		return strconv.FormatInt(n, 10), nil
	case float64: // not produced with WithJSONNumber, kept for safety
		if id != math.Trunc(id) || math.Abs(id) > 1<<53 {
			return "", fmt.Errorf("user id %v is not a whole number", id)
		}
		return strconv.FormatInt(int64(id), 10), nil
	}
	return "", fmt.Errorf("user id of type %T: want a number or a string", raw)
}
