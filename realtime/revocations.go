package realtime

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// ErrRevoked is the cause of a context from Revocations.Watch that ended
// because its token was revoked (signed out, or revoked from the CLI).
var ErrRevoked = errors.New("credentials revoked")

// DefaultRevocationPoll is how often Revocations reads the database for
// tokens revoked by other processes: a revoked token's connections end
// within about this long.
const DefaultRevocationPoll = 500 * time.Millisecond

// revokedMemory is how long an applied revocation is remembered. Watch
// refuses a token revoked within it, and any authentication older than it,
// so a revocation applied between a connection's database lookup and its
// Watch call cannot be missed.
const revokedMemory = time.Minute

// pollTimeout bounds one poll of the database.
const pollTimeout = 2 * time.Second

// RevocationSource is where Revocations learns of revoked tokens: the
// database, which other processes (the CLI) write too.
type RevocationSource interface {
	// RevocationCursorNow returns a cursor at the present.
	RevocationCursorNow() store.RevocationCursor
	// RevokedTokens returns the ids of tokens revoked since the cursor and
	// the cursor for the next call; ids may repeat.
	RevokedTokens(ctx context.Context, after store.RevocationCursor) ([]int64, store.RevocationCursor, error)
}

// Revocations ends long-lived connections when the token that opened them
// is revoked. A connection takes a context from Watch, keyed by its
// token's id; Revoke (logout, in this process) or the poll of the database
// (every DefaultRevocationPoll, for revocations by other processes) cancels
// it, and the hub or broker holding the context then closes the
// connection.
//
// All connections of one token share one context. The registry holds it
// only weakly: once every connection holding it has ended it is garbage,
// and its entry is dropped, so neither the hub nor the broker needs to
// report when a connection ends.
type Revocations struct {
	src   RevocationSource
	clock presence.Clock
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	tokens  *sharedContexts     // by token id
	recent  map[int64]time.Time // applied revocations, by when
	timer   presence.Timer
	closed  bool
	started bool

	pollMu  sync.Mutex // one poll at a time; Close waits for it
	cursor  store.RevocationCursor
	failing bool

	ended atomic.Int64
}

// NewRevocations returns a registry that polls src every interval on
// clock (nil: the system clock; interval <= 0: DefaultRevocationPoll).
// Its cursor starts now. Call Start to begin polling; caller must call
// Close.
func NewRevocations(src RevocationSource, clock presence.Clock, every time.Duration, log *slog.Logger) *Revocations {
	if clock == nil {
		clock = presence.SystemClock{}
	}
	if every <= 0 {
		every = DefaultRevocationPoll
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Revocations{src: src, clock: clock, every: every, log: log,
		recent: map[int64]time.Time{}, cursor: src.RevocationCursorNow()}
	r.tokens = newSharedContexts(&r.mu)
	return r
}

// Now returns the registry's clock time. Take it before the database
// lookup that authenticates a connection, and pass it to Watch.
func (r *Revocations) Now() time.Time { return r.clock.Now() }

// Watch returns a context that is cancelled, with cause ErrRevoked, when
// the token tokenID is revoked. authAt is Now taken before the lookup that
// found the token valid. The context is already done when the token was
// revoked since, or when authAt is more than a minute old (the registry no
// longer remembers every revocation since then).
func (r *Revocations) Watch(tokenID int64, authAt time.Time) context.Context {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, revoked := r.recent[tokenID]; revoked || now.Sub(authAt) > revokedMemory {
		return doneContext(ErrRevoked)
	}
	return r.tokens.get(tokenID)
}

// Revoke ends, now, every connection watching one of the tokens ids (0s
// are ignored). Revoking twice is harmless.
func (r *Revocations) Revoke(ids ...int64) {
	now := r.clock.Now()
	var cancels []context.CancelCauseFunc
	r.mu.Lock()
	for _, id := range ids {
		if id == 0 {
			continue
		}
		r.recent[id] = now
		if cancel := r.tokens.take(id); cancel != nil {
			cancels = append(cancels, cancel)
		}
	}
	r.mu.Unlock()
	for _, cancel := range cancels {
		cancel(ErrRevoked)
	}
	r.ended.Add(int64(len(cancels)))
}

// Poll reads the tokens revoked since the last poll, by any process, and
// revokes them here.
func (r *Revocations) Poll(ctx context.Context) error {
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	ids, next, err := r.src.RevokedTokens(ctx, r.cursor)
	if err != nil {
		if !r.failing {
			r.log.Warn("cannot read token revocations; connections of tokens revoked by another process stay open until it works again", "err", err)
		}
		r.failing = true
		return err
	}
	if r.failing {
		r.log.Info("reading token revocations again")
		r.failing = false
	}
	r.cursor = next
	r.Revoke(ids...)
	r.prune()
	return nil
}

// prune forgets revocations older than revokedMemory.
func (r *Revocations) prune() {
	cutoff := r.clock.Now().Add(-revokedMemory)
	r.mu.Lock()
	for id, at := range r.recent {
		if at.Before(cutoff) {
			delete(r.recent, id)
		}
	}
	r.mu.Unlock()
}

// Start polls the database every interval until Close.
func (r *Revocations) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	r.timer = r.clock.AfterFunc(r.every, r.tick)
}

func (r *Revocations) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), pollTimeout)
	r.Poll(ctx)
	cancel()
	r.mu.Lock()
	if !r.closed {
		r.timer = r.clock.AfterFunc(r.every, r.tick)
	}
	r.mu.Unlock()
}

// Close stops polling and waits for a poll under way. Contexts already
// handed out stay as they are.
func (r *Revocations) Close() {
	r.mu.Lock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.pollMu.Lock()
	r.pollMu.Unlock() // only waited for a poll under way
}

// RevocationStats are the registry's counters.
type RevocationStats struct {
	// Watched is how many tokens have live connections being watched
	// (entries of ended connections count until the next GC).
	Watched int
	// Ended counts the token contexts cancelled by a revocation.
	Ended int64
}

// Stats returns the registry's counters.
func (r *Revocations) Stats() RevocationStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RevocationStats{Watched: r.tokens.len(), Ended: r.ended.Load()}
}
