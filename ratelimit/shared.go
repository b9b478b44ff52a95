package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/presencehq/presence/presence"
)

// BucketStore keeps token buckets where every node sharing it sees them
// (store.DB): UpdateBucket reads a bucket and writes what update makes of
// it atomically across nodes; PruneBuckets forgets the buckets of a
// prefix not updated since before.
type BucketStore interface {
	UpdateBucket(ctx context.Context, key string, update func(tokens float64, at time.Time, found bool) (float64, time.Time)) error
	PruneBuckets(ctx context.Context, prefix string, before time.Time) (int64, error)
}

// sharedTimeout bounds one bucket update in the database.
const sharedTimeout = 3 * time.Second

// pruneEvery is how often a Shared limiter deletes its refilled buckets.
const pruneEvery = 10 * time.Minute

// Shared is a Limiter whose buckets are kept in a BucketStore, so that
// several nodes sharing the database take from one bucket per key: a
// limit per account holds whichever node the requests reach. Each check
// is one write transaction. When the store fails, it falls back to a
// bucket in this node's memory (a limit per node) rather than refusing or
// letting everything through. Time comes from the clock of the node
// checking: nodes' clocks a few seconds apart change a bucket's refill by
// those seconds' worth of tokens. Safe for concurrent use.
type Shared struct {
	name  string
	rate  Rate
	burst int
	clock presence.Clock
	store BucketStore
	log   *slog.Logger
	local *Limiter

	mu        sync.Mutex
	lastPrune time.Time
}

// NewShared returns a Shared limiter named name (its keys' prefix in the
// store, unique among limiters) whose buckets refill at rate and hold at
// most burst tokens. A nil log discards.
func NewShared(name string, rate Rate, burst int, clock presence.Clock, store BucketStore, log *slog.Logger) *Shared {
	if clock == nil {
		clock = presence.SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shared{name: name, rate: rate, burst: burst, clock: clock, store: store, log: log,
		local: New(rate, burst, clock), lastPrune: clock.Now()}
}

// update runs op on key's bucket in the store, at now.
func (s *Shared) update(key string, now time.Time, op func(b *Bucket)) error {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	return s.store.UpdateBucket(ctx, s.name+":"+key, func(tokens float64, at time.Time, found bool) (float64, time.Time) {
		b := &Bucket{rate: s.rate, burst: float64(s.burst), clock: s.clock, tokens: tokens, last: at}
		if !found {
			b.tokens, b.last = float64(s.burst), now
		}
		op(b)
		return b.tokens, b.last
	})
}

// Allow takes a token from key's bucket, or reports how long until one is
// free.
func (s *Shared) Allow(key string) (bool, time.Duration) {
	now := s.clock.Now()
	var (
		ok   bool
		wait time.Duration
	)
	err := s.update(key, now, func(b *Bucket) { ok, wait = b.allowAt(now) })
	if err != nil {
		s.log.Warn("ratelimit: the shared limit cannot be read; limiting on this node alone", "limit", s.name, "err", err)
		return s.local.Allow(key)
	}
	s.maybePrune(now)
	return ok, wait
}

// Return gives back a token that Allow took for key.
func (s *Shared) Return(key string) {
	now := s.clock.Now()
	if err := s.update(key, now, func(b *Bucket) { b.returnAt(now) }); err != nil {
		s.log.Warn("ratelimit: the shared limit cannot be written; limiting on this node alone", "limit", s.name, "err", err)
		s.local.Return(key)
	}
}

// maybePrune deletes, every pruneEvery, the buckets that have refilled.
func (s *Shared) maybePrune(now time.Time) {
	s.mu.Lock()
	if now.Sub(s.lastPrune) < pruneEvery || s.rate <= 0 {
		s.mu.Unlock()
		return
	}
	s.lastPrune = now
	s.mu.Unlock()
	refill := time.Duration(float64(s.burst) / float64(s.rate) * float64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if _, err := s.store.PruneBuckets(ctx, s.name+":", now.Add(-refill)); err != nil {
		s.log.Warn("ratelimit: pruning refilled buckets failed", "limit", s.name, "err", err)
	}
}
