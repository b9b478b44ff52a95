package webhook

import "time"

// Backoff spaces out the attempts at a delivery that keeps failing.
type Backoff struct {
	// Base is the wait after the first failure; it doubles after each
	// further one.
	Base time.Duration
	// Max caps the wait.
	Max time.Duration
}

// DefaultBackoff waits about 1 s, 2 s, 4 s … after successive failures,
// at most 10 minutes: a receiver back after a short outage gets its
// events within seconds, one down for hours is tried every few minutes.
var DefaultBackoff = Backoff{Base: time.Second, Max: 10 * time.Minute}

// Delay returns how long to wait after the n-th failed attempt (n ≥ 1):
// Base·2^(n−1), capped at Max, then jittered to between half of it and
// all of it by r (in [0, 1)), so that deliveries that failed together do
// not all come back at the same instant.
func (b Backoff) Delay(n int, r float64) time.Duration {
	d := b.Max
	if n < 1 {
		n = 1
	}
	if n <= 62 {
		if exp := b.Base << (n - 1); exp > 0 && exp < b.Max && exp>>(n-1) == b.Base {
			d = exp
		}
	}
	r = min(max(r, 0), 1)
	return d/2 + time.Duration(float64(d/2)*r)
}
