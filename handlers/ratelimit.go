package handlers

import (
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/ratelimit"
)

// Failed password checks allowed per account. From one client address an
// account gets accountAddrBurst failures, then one a minute: the owner,
// from an address that has not failed, is not locked out by someone
// hammering her name elsewhere. From all addresses together an account
// gets accountBurst failures, refilled at accountPerHour: a guessing
// attack spread over many addresses still hits this brake (and while it
// holds, the owner waits too).
const (
	accountAddrBurst     = 10
	accountAddrPerMinute = 1
	accountBurst         = 200
	accountPerHour       = 200
)

// loginLimits throttles password checks and account creation:
//   - byIP: every password check from one client address (--login-limit a
//     minute), whatever the account, since each costs a bcrypt compare;
//   - byAccountAddr: failed checks of one account from one address;
//   - byAccount: failed checks of one account from anywhere, the brake;
//   - register: accounts created from one address (--register-limit an hour).
//
// Only failures count against an account: a check takes a token up front
// (so concurrent attempts cannot overrun the limit) and a successful login
// gives it back.
//
// The limits of an account are kept in the database (ratelimit.Shared), so
// that they hold across every node sharing it; the limits per address are
// each node's own.
type loginLimits struct {
	byIP          *ratelimit.Limiter // nil: no limit
	byAccountAddr keyLimiter
	byAccount     keyLimiter
	register      *ratelimit.Limiter // nil: no limit
}

// keyLimiter is a set of token buckets by key: ratelimit.Limiter (this
// node's memory) or ratelimit.Shared (the database).
type keyLimiter interface {
	Allow(key string) (bool, time.Duration)
	Return(key string)
}

func newLoginLimits(loginPerMinutePerIP, registerPerHour int, clock presence.Clock, s ratelimit.BucketStore, log *slog.Logger) *loginLimits {
	ll := &loginLimits{
		byAccountAddr: ratelimit.NewShared("login-account-addr", ratelimit.PerMinute(accountAddrPerMinute), accountAddrBurst, clock, s, log),
		byAccount:     ratelimit.NewShared("login-account", ratelimit.PerHour(accountPerHour), accountBurst, clock, s, log),
	}
	if loginPerMinutePerIP > 0 {
		ll.byIP = ratelimit.New(ratelimit.PerMinute(float64(loginPerMinutePerIP)), loginPerMinutePerIP, clock)
	}
	if registerPerHour > 0 {
		ll.register = ratelimit.New(ratelimit.PerHour(float64(registerPerHour)), registerPerHour, clock)
	}
	return ll
}

// checkRegister answers 429 when the client address has created too many
// accounts.
func (ll *loginLimits) checkRegister(c echo.Context) error {
	if ll.register == nil {
		return nil
	}
	if ok, wait := ll.register.Allow(c.RealIP()); !ok {
		secs := retryAfter(c, wait)
		return httpError(http.StatusTooManyRequests, "too many new accounts from this address; try again in "+secs+" s")
	}
	return nil
}

// accountKeys are the limiter keys of a login attempt.
func accountKeys(c echo.Context, username string) (account, accountAddr string) {
	account = strings.ToLower(username)
	return account, account + "\x00" + c.RealIP()
}

// check answers 429 with Retry-After when the address, the account from
// this address, or the account as a whole is over its limit. The same
// answer whatever the account's existence. When it lets the attempt
// through, it has counted it as a failure: call notAFailure if the
// password was right (or could not be checked).
func (ll *loginLimits) check(c echo.Context, username string) error {
	account, pair := accountKeys(c, username)
	ok, wait := true, time.Duration(0)
	if ll.byIP != nil {
		ok, wait = ll.byIP.Allow(c.RealIP())
	}
	if ok {
		ok, wait = ll.byAccountAddr.Allow(pair)
		if ok {
			if ok, wait = ll.byAccount.Allow(account); !ok {
				ll.byAccountAddr.Return(pair)
			}
		}
	}
	if ok {
		return nil
	}
	secs := retryAfter(c, wait)
	return httpError(http.StatusTooManyRequests, "too many login attempts; try again in "+secs+" s")
}

// notAFailure gives back the account tokens check took: a right password,
// or a check the database could not make, is not a failed guess.
func (ll *loginLimits) notAFailure(c echo.Context, username string) {
	account, pair := accountKeys(c, username)
	ll.byAccountAddr.Return(pair)
	ll.byAccount.Return(account)
}

// retryAfter sets the Retry-After header to wait, rounded up to whole
// seconds, and returns it as text.
func retryAfter(c echo.Context, wait time.Duration) string {
	secs := strconv.Itoa(int(math.Max(1, math.Ceil(wait.Seconds()))))
	c.Response().Header().Set("Retry-After", secs)
	return secs
}
