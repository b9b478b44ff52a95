package handlers

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// originPolicy decides which browser origins may talk to the server:
// its own origin and an operator's allow-list.
type originPolicy struct {
	allowed map[string]bool
	cop     *http.CrossOriginProtection
}

func newOriginPolicy(allowList []string) (*originPolicy, error) {
	p := &originPolicy{allowed: map[string]bool{}, cop: http.NewCrossOriginProtection()}
	for _, o := range allowList {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return nil, fmt.Errorf("handlers: allowed origin %q: want scheme://host[:port]", o)
		}
		p.allowed[strings.ToLower(o)] = true
		if err := p.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("handlers: allowed origin %q: %w", o, err)
		}
	}
	return p, nil
}

// allowWebSocket reports whether a WebSocket handshake's Origin is
// acceptable. Browsers always send Origin on WebSocket handshakes, so a
// missing one means a non-browser client, which cannot be used for
// cross-site hijacking and is allowed. r.Host is the host the browser
// asked for: behind a trusted proxy that rewrites Host, its
// X-Forwarded-Host (proxyTrust.headers).
func (p *originPolicy) allowWebSocket(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return p.allowed[strings.ToLower(strings.TrimRight(origin, "/"))]
}

// csrf is middleware refusing cross-origin state-changing requests from
// browsers (Go's CrossOriginProtection: Sec-Fetch-Site, then Origin against
// r.Host, which proxyTrust.headers has set to a trusted proxy's
// X-Forwarded-Host).
func (p *originPolicy) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := p.cop.Check(c.Request()); err != nil {
			return httpError(http.StatusForbidden, "cross-origin request refused")
		}
		return next(c)
	}
}
