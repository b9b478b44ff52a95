package main

import (
	"flag"
	"fmt"
	"os"
)

// hostFlags are the serve flags for host sites (issue 11): whose JWTs sign
// users in, and whether local accounts exist beside them.
type hostFlags struct {
	jwtSecret     string
	jwtPublicKey  string // a file
	localAccounts bool
}

// register adds the flags to fs.
func (h *hostFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.jwtSecret, "jwt-secret", "", "accept HS256 JWTs signed by the host site with this secret (at least 32 bytes; prefer PRESENCE_JWT_SECRET to keep it out of ps)")
	fs.StringVar(&h.jwtPublicKey, "jwt-public-key", "", "accept JWTs signed by the host site, verified with this PEM public key file (RS256, ES256 or EdDSA)")
	fs.BoolVar(&h.localAccounts, "local-accounts", true, "keep Presence's own accounts beside host users (false: no sign-up or password sign-in; needs --jwt-secret or --jwt-public-key)")
}

// hostConfig is what the flags resolve to for the handlers.
type hostConfig struct {
	secret    string
	publicKey []byte
	noLocal   bool
}

// load checks the flags and reads the public key file.
func (h *hostFlags) load() (hostConfig, error) {
	c := hostConfig{secret: h.jwtSecret, noLocal: !h.localAccounts}
	if h.jwtSecret != "" && h.jwtPublicKey != "" {
		return c, fmt.Errorf("give --jwt-secret or --jwt-public-key, not both")
	}
	if h.jwtPublicKey != "" {
		b, err := os.ReadFile(h.jwtPublicKey)
		if err != nil {
			return c, fmt.Errorf("--jwt-public-key: %w", err)
		}
		c.publicKey = b
	}
	if c.noLocal && h.jwtSecret == "" && h.jwtPublicKey == "" {
		return c, fmt.Errorf("--local-accounts=false needs --jwt-secret or --jwt-public-key: nobody could sign in")
	}
	return c, nil
}
