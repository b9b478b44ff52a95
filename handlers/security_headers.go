package handlers

import (
	"crypto/rand"
	"encoding/base64"
	"strings"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// securityHeaders sets a strict, nonce-based Content-Security-Policy and the
// usual hardening headers on every response. Pages carry the request's
// nonce on their <script> tags (templ.GetNonce); htmx is configured for it
// (no injected styles, no eval, no scripts from fragments). Only the widget
// routes and the iframe embed (/embed/) may be framed, and only by
// allow-listed origins.
func (p *originPolicy) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	ancestors := "'none'"
	if len(p.allowed) > 0 {
		list := make([]string, 0, len(p.allowed))
		for o := range p.allowed {
			list = append(list, o)
		}
		ancestors = strings.Join(list, " ")
	}
	return func(c echo.Context) error {
		var raw [16]byte
		rand.Read(raw[:])
		nonce := base64.StdEncoding.EncodeToString(raw[:])
		r := c.Request()
		c.SetRequest(r.WithContext(templ.WithNonce(r.Context(), nonce)))

		frame := "'none'"
		if strings.HasPrefix(r.URL.Path, "/widgets/") || strings.HasPrefix(r.URL.Path, "/embed/") {
			frame = ancestors
		}
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; "+
			"script-src 'nonce-"+nonce+"' 'strict-dynamic'; "+
			"style-src 'self'; img-src 'self' https: data:; connect-src 'self'; font-src 'self'; "+
			"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors "+frame)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if frame == "'none'" {
			h.Set("X-Frame-Options", "DENY")
		}
		return next(c)
	}
}
