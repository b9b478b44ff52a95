// Package ratelimit is the server's one token-bucket implementation: a
// single Bucket (one WebSocket's messages) and a Limiter of buckets keyed by
// string (a client address, an account). Time comes from a presence.Clock,
// so tests drive it with presence.FakeClock instead of sleeping.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"github.com/presencehq/presence/presence"
)

// Rate is how fast a bucket refills, in tokens per second.
type Rate float64

// PerSecond returns a rate of n tokens a second.
func PerSecond(n float64) Rate { return Rate(n) }

// PerMinute returns a rate of n tokens a minute.
func PerMinute(n float64) Rate { return Rate(n / 60) }

// PerHour returns a rate of n tokens an hour.
func PerHour(n float64) Rate { return Rate(n / 3600) }

// Bucket is one token bucket: it holds at most burst tokens, refills at
// rate, and each allowed event takes one token. The zero Bucket is not
// usable; create one with NewBucket. A Bucket is not safe for concurrent
// use: it belongs to one goroutine (a socket's reader) or to a Limiter,
// which locks around it.
type Bucket struct {
	rate   Rate
	burst  float64
	clock  presence.Clock
	tokens float64
	last   time.Time
}

// NewBucket returns a full bucket refilled at rate, holding at most burst
// tokens, timed by clock (nil means presence.SystemClock). A rate of 0 or
// less never refills.
func NewBucket(rate Rate, burst int, clock presence.Clock) *Bucket {
	if clock == nil {
		clock = presence.SystemClock{}
	}
	return &Bucket{rate: rate, burst: float64(burst), clock: clock, tokens: float64(burst), last: clock.Now()}
}

// refill adds the tokens earned since the last call.
func (b *Bucket) refill(now time.Time) {
	if b.rate > 0 && now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*float64(b.rate))
	}
	if now.After(b.last) {
		b.last = now
	}
}

// Allow takes a token if there is one. Otherwise it reports how long until
// one is free (a very long time for a bucket that never refills).
func (b *Bucket) Allow() (bool, time.Duration) {
	return b.allowAt(b.clock.Now())
}

// allowAt is Allow at now.
func (b *Bucket) allowAt(now time.Time) (bool, time.Duration) {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, b.wait()
}

// Return gives back a token taken by Allow, for an event that turned out
// not to count (a login that succeeded, when only failures are limited).
// The bucket never holds more than its burst.
func (b *Bucket) Return() {
	b.returnAt(b.clock.Now())
}

// returnAt is Return at now.
func (b *Bucket) returnAt(now time.Time) {
	b.refill(now)
	b.tokens = math.Min(b.burst, b.tokens+1)
}

// wait is how long until the bucket holds one token.
func (b *Bucket) wait() time.Duration {
	if b.rate <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil((1 - b.tokens) / float64(b.rate) * float64(time.Second)))
}

// full reports whether the bucket would be full at now: forgetting it
// changes nothing.
func (b *Bucket) full(now time.Time) bool {
	return b.tokens+now.Sub(b.last).Seconds()*float64(b.rate) >= b.burst
}

// MaxKeys is how many keys a Limiter remembers at most. Past it, full
// buckets are forgotten, then, if still too many, half of the rest.
const MaxKeys = 100_000

// Limiter is a set of token buckets keyed by string, all with the same
// rate and burst. Memory is bounded: buckets that have refilled are
// forgotten, and past MaxKeys arbitrary ones are dropped (which can only
// make the limiter more lenient). Safe for concurrent use.
type Limiter struct {
	rate  Rate
	burst int
	clock presence.Clock

	mu      sync.Mutex
	buckets map[string]*Bucket
}

// New returns a Limiter whose buckets refill at rate and hold at most
// burst tokens, timed by clock (nil means presence.SystemClock).
func New(rate Rate, burst int, clock presence.Clock) *Limiter {
	if clock == nil {
		clock = presence.SystemClock{}
	}
	return &Limiter{rate: rate, burst: burst, clock: clock, buckets: make(map[string]*Bucket)}
}

// Allow takes a token from key's bucket, or reports how long until one is
// free.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= MaxKeys {
			l.sweep()
		}
		b = NewBucket(l.rate, l.burst, l.clock)
		l.buckets[key] = b
	}
	return b.Allow()
}

// Return gives back a token that Allow took for key.
func (l *Limiter) Return(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		b.Return()
	}
}

// Len returns how many keys the limiter remembers.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// sweep forgets full buckets, then, if still too many, half of the rest.
// Caller must hold l.mu.
func (l *Limiter) sweep() {
	now := l.clock.Now()
	for k, b := range l.buckets {
		if b.full(now) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < MaxKeys/2 {
			break
		}
		delete(l.buckets, k)
	}
}
