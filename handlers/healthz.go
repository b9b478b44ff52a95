package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
)

// handleHealthz reports whether the server can serve: 200 when the database
// answers, 503 when it does not. A failing presence write (disk full, busy)
// is reported as "degraded" with 200: presence keeps working in memory and
// the writes are retried. So is a node that cannot reach Redis (cl): it
// serves its own connections while it tries again.
func handleHealthz(s Store, b *presence.Batcher, cl ClusterNode) echo.HandlerFunc {
	return func(c echo.Context) error {
		checks := map[string]string{"database": "ok", "persistence": "ok"}
		status, code := "ok", http.StatusOK
		if err := s.Ping(c.Request().Context()); err != nil {
			checks["database"] = "unavailable"
			status, code = "unavailable", http.StatusServiceUnavailable
		}
		if b != nil && b.LastError() != nil {
			checks["persistence"] = "failing; retrying"
			if code == http.StatusOK {
				status = "degraded"
			}
		}
		if cl != nil {
			checks["redis"] = "ok"
			if cl.Err() != nil {
				checks["redis"] = "unreachable; serving this node's connections only"
				if code == http.StatusOK {
					status = "degraded"
				}
			}
		}
		return c.JSON(code, map[string]any{"status": status, "checks": checks})
	}
}
