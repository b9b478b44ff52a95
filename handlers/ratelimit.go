package handlers

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// limiter is a set of token buckets keyed by string (an IP, an account).
// Memory is bounded: buckets that have refilled are forgotten, and past
// maxKeys the oldest are dropped. Safe for concurrent use.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	Now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxLimiterKeys = 100_000

func newLimiter(perMinute float64, burst int) *limiter {
	return &limiter{rate: perMinute / 60, burst: float64(burst), Now: time.Now, buckets: map[string]*bucket{}}
}

// allow takes a token for key, or reports how long until one is free.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxLimiterKeys {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep forgets full buckets, then, if still too many, half of the rest.
// Caller must hold l.mu.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxLimiterKeys/2 {
			break
		}
		delete(l.buckets, k)
	}
}

// loginLimits throttles password checks by client IP and by account, so
// neither one address nor many addresses can guess one user's password,
// and account creation by client IP.
type loginLimits struct {
	byIP      *limiter // nil: no limit
	byAccount *limiter
	register  *limiter // nil: no limit
}

func newLoginLimits(loginPerMinutePerIP, registerPerHour int) *loginLimits {
	ll := &loginLimits{byAccount: newLimiter(10, 10)}
	if loginPerMinutePerIP > 0 {
		ll.byIP = newLimiter(float64(loginPerMinutePerIP), loginPerMinutePerIP)
	}
	if registerPerHour > 0 {
		ll.register = newLimiter(float64(registerPerHour)/60, registerPerHour)
	}
	return ll
}

// checkRegister answers 429 when the client address has created too many
// accounts.
func (ll *loginLimits) checkRegister(c echo.Context) error {
	if ll.register == nil {
		return nil
	}
	if ok, wait := ll.register.allow(c.RealIP()); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return httpError(http.StatusTooManyRequests, "too many new accounts from this address; try again in "+strconv.Itoa(secs)+" s")
	}
	return nil
}

// check answers 429 with Retry-After when the IP or the account is over
// its limit. The same answer whatever the account's existence.
func (ll *loginLimits) check(c echo.Context, username string) error {
	ok, wait := true, time.Duration(0)
	if ll.byIP != nil {
		ok, wait = ll.byIP.allow(c.RealIP())
	}
	if ok {
		ok, wait = ll.byAccount.allow(strings.ToLower(username))
	}
	if ok {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return httpError(http.StatusTooManyRequests, "too many login attempts; try again in "+strconv.Itoa(secs)+" s")
}
