package realtime

import "sync/atomic"

// ConnCap bounds the long-lived connections (WebSockets and event streams)
// the server holds, so that it refuses new ones clearly (503) before it
// runs out of file descriptors, while those it holds keep working. The zero
// value has no cap. Safe for concurrent use.
type ConnCap struct {
	// Max is the most connections held at once; 0 means no cap.
	Max int64

	cur     atomic.Int64
	refused atomic.Int64
	// NoFDs counts clients refused by the listener's reserve descriptor
	// (see package listener); it lives here so /metrics reports refusals
	// of both kinds side by side.
	NoFDs atomic.Int64
}

// Acquire takes a slot and reports whether one was free. A caller that got
// one must call Release when the connection ends.
func (c *ConnCap) Acquire() bool {
	if n := c.cur.Add(1); c.Max > 0 && n > c.Max {
		c.cur.Add(-1)
		c.refused.Add(1)
		return false
	}
	return true
}

// Release returns a slot taken by Acquire.
func (c *ConnCap) Release() { c.cur.Add(-1) }

// Held returns how many slots are taken.
func (c *ConnCap) Held() int64 { return c.cur.Load() }

// Refused returns how many connections Acquire has refused.
func (c *ConnCap) Refused() int64 { return c.refused.Load() }
