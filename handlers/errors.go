package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// errorHandler is the one place errors become responses. The JSON API and
// the WebSocket (/api/, /ws/) always get {"detail": "..."}, whatever the
// request's Accept says, and so does any request that asks for JSON; pages
// get an HTML error page. Anything that is not an *echo.HTTPError is logged
// and shown as a bare 500 (503 when the database itself is failing): users
// see no internals. Every 503 carries Retry-After, so clients back off and
// come back (shutting down, at capacity, database unavailable).
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, detail := http.StatusInternalServerError, "internal server error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			if msg, ok := he.Message.(string); ok {
				detail = msg
			} else {
				detail = strings.ToLower(http.StatusText(status))
			}
		} else {
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "client", c.RealIP(), "err", err)
			if errors.Is(err, store.ErrUnavailable) { // disk full, locked: try again
				status, detail = http.StatusServiceUnavailable, "temporarily unavailable, try again shortly"
			}
		}
		if status == http.StatusServiceUnavailable && c.Response().Header().Get("Retry-After") == "" {
			c.Response().Header().Set("Retry-After", retryAfterSeconds)
		}
		if jsonPath(c.Request().URL.Path) || wantsJSON(c.Request()) {
			err = c.JSON(status, map[string]string{"detail": detail})
		} else if strings.HasPrefix(c.Request().URL.Path, "/widgets/") || strings.HasPrefix(c.Request().URL.Path, "/embed/") {
			err = render(c, status, views.WidgetError(status, widgetErrorText(status, detail)))
		} else if c.Request().Method == http.MethodHead {
			err = c.NoContent(status)
		} else {
			err = render(c, status, views.ErrorPage(pageFor(c, "Error"), status, detail))
		}
		if err != nil {
			log.Error("write error response", "err", err)
		}
	}
}

// widgetErrorText is what a widget shows for an error.
func widgetErrorText(status int, detail string) string {
	if status == http.StatusUnauthorized {
		return "Sign in to see who is online."
	}
	return "Can't show who is online: " + detail + "."
}

// retryAfterSeconds is the Retry-After of a 503 that did not set its own.
const retryAfterSeconds = "5"

// jsonPath reports whether errors on path are always JSON: the API and the
// WebSocket handshake, whose clients are programs (or a browser's
// WebSocket, which never shows the body) even when Accept says text/html.
func jsonPath(path string) bool {
	return strings.HasPrefix(path, "/api/") || path == "/api" || strings.HasPrefix(path, "/ws/") || path == "/ws"
}

// wantsJSON reports whether the client asked for JSON rather than HTML.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json") && !strings.Contains(r.Header.Get("Accept"), "text/html")
}

// recoverPanics turns a panic in a handler into a logged 500.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return next(c)
		}
	}
}

// httpError is shorthand for an error whose message users may see.
func httpError(status int, detail string) error { return echo.NewHTTPError(status, detail) }
