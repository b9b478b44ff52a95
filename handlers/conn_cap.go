package handlers

import (
	"net/http"
	"sync/atomic"

	"github.com/labstack/echo/v4"
)

// connCap bounds the long-lived connections (WebSockets and event streams)
// the server holds, so that it refuses new ones clearly (503) before it
// runs out of file descriptors, while those it holds keep working.
type connCap struct {
	max     int64 // 0: no cap
	cur     atomic.Int64
	refused atomic.Int64
	noFDs   atomic.Int64 // refused by the listener's reserve descriptor
}

// acquire takes a slot; the caller must release it when the connection ends.
func (c *connCap) acquire() bool {
	if n := c.cur.Add(1); c.max > 0 && n > c.max {
		c.cur.Add(-1)
		c.refused.Add(1)
		return false
	}
	return true
}

func (c *connCap) release() { c.cur.Add(-1) }

// atCapacity is the refusal: 503 with a Retry-After, so clients back off.
func atCapacity(c echo.Context) error {
	c.Response().Header().Set("Retry-After", "5")
	return httpError(http.StatusServiceUnavailable, "server is at capacity; try again shortly")
}
