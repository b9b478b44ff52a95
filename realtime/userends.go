package realtime

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/presencehq/presence/presence"
)

// ErrUserEnded is the cause of a context from UserEnds.Watch that ended
// because the user's connections were ended on purpose (the host site's
// backend disconnected or deleted the user).
var ErrUserEnded = errors.New("user disconnected")

// userEndMemory is how long UserEnds remembers that it ended a user: a
// connection authenticated before the end but watched after it (the
// database lookup and the Watch call are not atomic) is refused within it,
// and any authentication older than it is refused outright.
const userEndMemory = time.Minute

// UserEnds ends every long-lived connection of one user at once: their
// WebSockets and widget streams, in this process. It is Revocations keyed
// by user instead of by token, for connections that have no token row
// (host users authenticated by a JWT). A connection takes a context from
// Watch; End cancels it with cause ErrUserEnded, and the hub (close 1008)
// or the broker holding it ends the connection.
//
// All connections of one user share one context, held only weakly, so
// neither the hub nor the broker reports when a connection ends. Unlike a
// revoked token, an ended user may connect again at once, with credentials
// issued after the end; only authentications from before it are refused.
type UserEnds struct {
	clock presence.Clock

	mu    sync.Mutex
	users *sharedContexts     // by user id
	ended map[int64]time.Time // when each user was last ended
	count int64
}

// NewUserEnds returns an empty registry on clock (nil: the system clock).
func NewUserEnds(clock presence.Clock) *UserEnds {
	if clock == nil {
		clock = presence.SystemClock{}
	}
	u := &UserEnds{clock: clock, ended: map[int64]time.Time{}}
	u.users = newSharedContexts(&u.mu)
	return u
}

// Now returns the registry's clock time. Take it before the lookup that
// authenticates a connection, and pass it to Watch.
func (u *UserEnds) Now() time.Time { return u.clock.Now() }

// Watch returns a context cancelled, with cause ErrUserEnded, when End is
// called for userID. authAt is Now taken before the connection was
// authenticated: the context is already done when the user was ended at or
// after authAt, or when authAt is over a minute old.
func (u *UserEnds) Watch(userID int64, authAt time.Time) context.Context {
	now := u.clock.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if at, ok := u.ended[userID]; (ok && !authAt.After(at)) || now.Sub(authAt) > userEndMemory {
		return doneContext(ErrUserEnded)
	}
	return u.users.get(userID)
}

// End ends, now, every connection of the user watched here, and refuses
// connections authenticated before now. It reports how many contexts it
// cancelled (0 or 1).
func (u *UserEnds) End(userID int64) int {
	now := u.clock.Now()
	u.mu.Lock()
	u.ended[userID] = now
	for id, at := range u.ended { // prune what is too old to matter
		if now.Sub(at) > userEndMemory {
			delete(u.ended, id)
		}
	}
	cancel := u.users.take(userID)
	if cancel != nil {
		u.count++
	}
	u.mu.Unlock()
	if cancel == nil {
		return 0
	}
	cancel(ErrUserEnded)
	return 1
}

// Ended counts the users whose live connections End has ended.
func (u *UserEnds) Ended() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.count
}
