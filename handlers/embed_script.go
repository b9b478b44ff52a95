package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/static"
)

// embedScriptMaxAge is how long browsers and CDNs may keep /embed.js
// without asking again. Host pages load it by a fixed URL that a release
// cannot change, so it is short; the ETag makes the check cheap (304).
const embedScriptMaxAge = "300"

// handleEmbedScript serves /embed.js (static/embed.js), the one-tag embed
// of the widget: from the binary, with a content-hash ETag, for any origin
// (it is public, and a host page may load it with crossorigin="anonymous"
// for Subresource Integrity).
func handleEmbedScript() echo.HandlerFunc {
	b, err := fs.ReadFile(static.FS, "embed.js")
	if err != nil {
		panic("handlers: static/embed.js is not embedded: " + err.Error()) // a build error
	}
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("ETag", etag)
		h.Set("Cache-Control", "public, max-age="+embedScriptMaxAge)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		http.ServeContent(c.Response(), c.Request(), "embed.js", time.Time{}, bytes.NewReader(b))
		return nil
	}
}
