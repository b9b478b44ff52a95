package handlers

import (
	"context"
	"log/slog"
	"sync"
	"time"
	_ "time/tzdata" // zone data in the binary: validation works without /usr/share/zoneinfo

	"github.com/presencehq/presence/presence"
)

// zoneFlushInterval is how long reported time zones are gathered before
// they are written, all in one transaction.
const zoneFlushInterval = time.Second

// maxZoneLen bounds a reported zone name (the longest IANA name is ~30).
const maxZoneLen = 64

// validZone returns the IANA zone name tz if it names a real zone, else "".
// "Local" and "" are refused: they would mean the server's zone.
func validZone(tz string) string {
	if tz == "" || len(tz) > maxZoneLen || tz == "Local" {
		return ""
	}
	for _, r := range tz {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '/' || r == '_' || r == '-' || r == '+') {
			return ""
		}
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return ""
	}
	return tz
}

// zoneSaver is what the recorder needs from the database.
type zoneSaver interface {
	SaveTimeZones(ctx context.Context, zones map[int64]string) error
}

// zoneRecorder keeps the time zone each browser reports when its presence
// WebSocket connects. A zone equal to the one already known for the user
// costs nothing; new ones are gathered and written together once per
// interval (a reconnect storm is one transaction, not one per socket).
// The profile page asks it first, so a zone shows before it is written.
type zoneRecorder struct {
	store    zoneSaver
	clock    presence.Clock
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	known   map[int64]string // latest zone per user reported in this run
	pending map[int64]string // not written yet
	timer   presence.Timer
	closed  bool
}

func newZoneRecorder(s zoneSaver, clock presence.Clock, interval time.Duration, log *slog.Logger) *zoneRecorder {
	return &zoneRecorder{store: s, clock: clock, interval: interval, log: log,
		known: map[int64]string{}, pending: map[int64]string{}}
}

// Record notes that user id's browser is in zone tz (already validated).
func (z *zoneRecorder) Record(id int64, tz string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closed || z.known[id] == tz {
		return
	}
	z.known[id] = tz
	z.pending[id] = tz
	if z.timer == nil {
		z.timer = z.clock.AfterFunc(z.interval, z.flush)
	}
}

// Zone returns the zone last reported for user id in this run, if any.
func (z *zoneRecorder) Zone(id int64) (string, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	tz, ok := z.known[id]
	return tz, ok
}

// flush writes what is pending; on failure it keeps it for the next try.
func (z *zoneRecorder) flush() {
	z.mu.Lock()
	batch := z.pending
	z.pending = map[int64]string{}
	z.timer = nil
	z.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := z.store.SaveTimeZones(ctx, batch); err != nil {
		z.log.Warn("time zones: write failed; retrying", "users", len(batch), "err", err)
		z.mu.Lock()
		for id, tz := range batch {
			if _, newer := z.pending[id]; !newer {
				z.pending[id] = tz
			}
		}
		if z.timer == nil && !z.closed {
			z.timer = z.clock.AfterFunc(z.interval, z.flush)
		}
		z.mu.Unlock()
	}
}

// Close writes what is pending and stops recording.
func (z *zoneRecorder) Close(ctx context.Context) error {
	z.mu.Lock()
	z.closed = true
	if z.timer != nil {
		z.timer.Stop()
		z.timer = nil
	}
	batch := z.pending
	z.pending = map[int64]string{}
	z.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	return z.store.SaveTimeZones(ctx, batch)
}
