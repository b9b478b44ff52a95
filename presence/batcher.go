package presence

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DefaultFlushInterval is how long the Batcher gathers changes before it
// writes them.
const DefaultFlushInterval = time.Second

// Record is the coalesced pending change of one user. Zero times mean
// "leave as it is".
type Record struct {
	UserID       int64
	HasStatus    bool // Online is set
	Online       bool
	LastSeen     time.Time
	LastActivity time.Time
	HasSettings  bool // Settings is set
	Settings     Settings
	// Sessions are the user's history changes (SessionRecorder), in the
	// order they happened.
	Sessions []SessionChange
}

// Persister writes a batch of records, all in one transaction.
type Persister interface {
	SavePresence(ctx context.Context, recs []Record) error
}

// Batcher is a write-behind Recorder (and SettingsRecorder and
// SessionRecorder): it coalesces changes per user in memory
// and writes them in one transaction per flush interval, so a burst of pings
// costs one write, not one per ping. When a write fails the changes are kept
// and retried at the next interval; presence keeps working in memory.
// Caller must call Close to flush what is pending.
type Batcher struct {
	p        Persister
	clock    Clock
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	pending map[int64]*Record
	timer   Timer
	closed  bool
	lastErr error

	// Failure streak, for logging: one line when writes start failing, a
	// reminder every failureLogEvery, one line when they resume.
	failingSince time.Time
	failures     int
	lastLogged   time.Time

	flushMu sync.Mutex // serialises writes
}

// NewBatcher returns a Batcher writing to p every interval (default
// DefaultFlushInterval) using clock (default SystemClock).
func NewBatcher(p Persister, clock Clock, interval time.Duration, log *slog.Logger) *Batcher {
	if clock == nil {
		clock = SystemClock{}
	}
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Batcher{p: p, clock: clock, interval: interval, log: log, pending: make(map[int64]*Record)}
}

// RecordStatus implements Recorder.
func (b *Batcher) RecordStatus(userID int64, online bool, lastSeen time.Time) {
	b.mu.Lock()
	r := b.entry(userID)
	r.HasStatus, r.Online = true, online
	if lastSeen.After(r.LastSeen) {
		r.LastSeen = lastSeen
	}
	b.mu.Unlock()
}

// RecordActivity implements Recorder.
func (b *Batcher) RecordActivity(userID int64, at time.Time) {
	b.mu.Lock()
	r := b.entry(userID)
	if at.After(r.LastActivity) {
		r.LastActivity = at
	}
	b.mu.Unlock()
}

// RecordSettings implements SettingsRecorder.
func (b *Batcher) RecordSettings(userID int64, s Settings) {
	b.mu.Lock()
	r := b.entry(userID)
	r.HasSettings, r.Settings = true, s
	b.mu.Unlock()
}

// entry returns the pending record of a user and makes sure a flush is
// scheduled. Caller must hold b.mu.
func (b *Batcher) entry(userID int64) *Record {
	r := b.pending[userID]
	if r == nil {
		r = &Record{UserID: userID}
		b.pending[userID] = r
	}
	b.schedule()
	return r
}

// schedule arms the flush timer unless it is armed or the batcher is closed.
// Caller must hold b.mu.
func (b *Batcher) schedule() {
	if b.timer != nil || b.closed {
		return
	}
	b.timer = b.clock.AfterFunc(b.interval, func() {
		b.Flush(context.Background()) // logs and reschedules on failure
	})
}

// Pending returns how many users have unwritten changes.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// LastError returns the error of the most recent write, or nil if it
// succeeded.
func (b *Batcher) LastError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastErr
}

// Flush writes everything pending now, in one transaction. On failure the
// records are put back (newer changes win) and a retry is scheduled.
func (b *Batcher) Flush(ctx context.Context) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()

	b.mu.Lock()
	b.timer = nil
	batch := b.pending
	b.pending = make(map[int64]*Record, len(batch))
	b.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	recs := make([]Record, 0, len(batch))
	for _, r := range batch {
		recs = append(recs, *r)
	}
	err := b.p.SavePresence(ctx, recs)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastErr = err
	b.logOutcome(err, len(recs))
	if err == nil {
		return nil
	}
	for id, old := range batch {
		if cur := b.pending[id]; cur != nil {
			mergeOlder(cur, old)
		} else {
			b.pending[id] = old
		}
	}
	b.schedule()
	return err
}

// failureLogEvery is how often a write failure that goes on is logged again.
const failureLogEvery = time.Minute

// logOutcome logs the start and end of a run of failed writes, and a
// reminder while it lasts, rather than one line per retry. Caller must hold
// b.mu.
func (b *Batcher) logOutcome(err error, n int) {
	now := b.clock.Now()
	switch {
	case err == nil && b.failures > 0:
		b.log.Warn("presence: writes resumed", "failed_attempts", b.failures,
			"down_for", now.Sub(b.failingSince).Round(time.Millisecond), "users", n)
		b.failures = 0
	case err == nil:
	case b.failures == 0:
		b.failingSince, b.lastLogged, b.failures = now, now, 1
		b.log.Error("presence: write failed; keeping changes in memory and retrying", "err", err, "users", n)
	default:
		b.failures++
		if now.Sub(b.lastLogged) >= failureLogEvery {
			b.lastLogged = now
			b.log.Error("presence: writes still failing", "err", err, "failed_attempts", b.failures,
				"since", now.Sub(b.failingSince).Round(time.Second), "users", n)
		}
	}
}

// mergeOlder folds an older, unwritten record into a newer one.
func mergeOlder(cur, old *Record) {
	if !cur.HasStatus {
		cur.HasStatus, cur.Online = old.HasStatus, old.Online
	}
	if !cur.HasSettings {
		cur.HasSettings, cur.Settings = old.HasSettings, old.Settings
	}
	if old.LastSeen.After(cur.LastSeen) {
		cur.LastSeen = old.LastSeen
	}
	if old.LastActivity.After(cur.LastActivity) {
		cur.LastActivity = old.LastActivity
	}
	if len(old.Sessions) > 0 {
		cur.Sessions = append(append([]SessionChange(nil), old.Sessions...), cur.Sessions...)
	}
}

// Close stops the timer and writes what is pending. Records that arrive
// after Close are still kept and written by a later explicit Flush.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
	if err := b.Flush(ctx); err != nil {
		return errors.Join(errors.New("presence: final flush"), err)
	}
	return nil
}
