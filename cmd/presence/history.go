package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/presencehq/presence/presence"
)

// historyPruneEvery is how often old history is deleted.
const historyPruneEvery = 24 * time.Hour

// historyPruner deletes history sessions that ended before a time
// (store.DB).
type historyPruner interface {
	PruneHistory(ctx context.Context, before time.Time) (int64, error)
}

// historyPruning deletes the sessions older than --history-days at
// start-up and then once a day, on the engine's clock.
type historyPruning struct {
	db    historyPruner
	clock presence.Clock
	keep  time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	timer   presence.Timer
	stopped bool
}

// startHistoryPruning prunes now and then every historyPruneEvery until
// stop. A failed prune is logged and tried again at the next one.
func startHistoryPruning(db historyPruner, clock presence.Clock, days int, log *slog.Logger) *historyPruning {
	p := &historyPruning{db: db, clock: clock, keep: time.Duration(days) * 24 * time.Hour, log: log}
	p.prune()
	return p
}

// prune deletes what is older than the period kept and schedules the next.
func (p *historyPruning) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := p.db.PruneHistory(ctx, p.clock.Now().Add(-p.keep))
	switch {
	case err != nil:
		p.log.Error("pruning history failed; trying again tomorrow", "err", err)
	case n > 0:
		p.log.Info("pruned history", "sessions", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.timer = p.clock.AfterFunc(historyPruneEvery, p.prune)
	}
}

// stop ends the daily pruning.
func (p *historyPruning) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
}
