package main

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// fakePruner records the cut-offs it is asked to prune before.
type fakePruner struct {
	mu      sync.Mutex
	befores []time.Time
}

func (p *fakePruner) PruneHistory(_ context.Context, before time.Time) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.befores = append(p.befores, before)
	return 1, nil
}

func (p *fakePruner) calls() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.befores...)
}

// TestHistoryPruning: history is pruned at start-up and then daily, each
// time of what ended more than --history-days ago, until stopped.
func TestHistoryPruning(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	clock := presence.NewFakeClock(t0)
	p := &fakePruner{}
	pr := startHistoryPruning(p, clock, 30, slog.New(slog.DiscardHandler))
	if got := p.calls(); len(got) != 1 || !got[0].Equal(t0.AddDate(0, 0, -30)) {
		t.Fatalf("at start-up: pruned before %v, want once before %v", got, t0.AddDate(0, 0, -30))
	}
	clock.Advance(23 * time.Hour)
	if n := len(p.calls()); n != 1 {
		t.Fatalf("%d prunes within a day, want 1", n)
	}
	clock.Advance(time.Hour)
	clock.Advance(24 * time.Hour)
	got := p.calls()
	if len(got) != 3 || !got[2].Equal(t0.AddDate(0, 0, 2-30)) {
		t.Fatalf("after two days: %v, want 3 prunes, the last before %v", got, t0.AddDate(0, 0, 2-30))
	}
	pr.stop()
	clock.Advance(72 * time.Hour)
	if n := len(p.calls()); n != 3 {
		t.Fatalf("%d prunes after stop, want 3", n)
	}
}

// TestHistoryDaysFlag: --history-days is listed with its variable and
// default, shown by `presence config`, and refused when negative.
func TestHistoryDaysFlag(t *testing.T) {
	out, _ := runCmd(t, "", nil, "serve", "--help")
	if !strings.Contains(out, "--history-days int") || !strings.Contains(out, "(PRESENCE_HISTORY_DAYS, default 30)") {
		t.Fatalf("serve --help lacks --history-days:\n%s", out)
	}
	out, err := runCmd(t, "", map[string]string{"PRESENCE_HISTORY_DAYS": "7"}, "config")
	if err != nil || !regexp.MustCompile(`(?m)^--history-days +7 +PRESENCE_HISTORY_DAYS$`).MatchString(out) {
		t.Fatalf("config: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "", nil, "config", "--history-days", "-1"); err == nil {
		t.Fatal("--history-days -1 accepted")
	}
}
