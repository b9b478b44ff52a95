package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/static"
)

// handleStatic serves the embedded assets with a content-hash ETag, so a
// browser revalidates cheaply (304) instead of downloading them again.
// Embedded files have no modification time, hence no other validator.
func handleStatic() echo.HandlerFunc {
	etags := map[string]string{}
	fs.WalkDir(static.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static.FS, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		etags[path] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	files := http.StripPrefix("/static/", http.FileServerFS(static.FS))
	return func(c echo.Context) error {
		name := strings.TrimPrefix(c.Request().URL.Path, "/static/")
		etag, ok := etags[name]
		if !ok {
			return echo.ErrNotFound
		}
		h := c.Response().Header()
		h.Set("ETag", etag)
		h.Set("Cache-Control", "public, max-age=3600")
		// Host pages on other origins load the scripts and CSS.
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}
