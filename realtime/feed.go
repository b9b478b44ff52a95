package realtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

const (
	// feedWindow is the shortest time between two pushes. The first change
	// after a quiet spell is pushed at once; changes that follow within the
	// window are gathered into one render and one push at its end.
	feedWindow = 50 * time.Millisecond
	// feedBytesPerSecond caps what pushes may cost: with many subscribers
	// the window widens so that subscribers × fragment size per window stays
	// under it (9,000 × 9 KiB → ~300 ms). A storm then costs a few pushes a
	// second, whatever the number of changes.
	feedBytesPerSecond = 256 << 20
)

// Feed keeps the current shared widget fragment and pushes a new one
// to every SSE subscriber when presence changes. One change costs one
// render, whatever the number of viewers.
type Feed struct {
	engine   *presence.Engine
	store    Profiles
	maxShown int
	broker   *Broker
	log      *slog.Logger
	window   time.Duration

	mu        sync.RWMutex
	current   []byte // the whole list fragment, for (re)connecting widgets
	shownKey  string // identity of the users in current
	lastTotal int
	pushed    int // bytes of the last push, for windowFor

	renders atomic.Int64
	stop    chan struct{}
	done    chan struct{}
}

// Profiles is what the feed needs from the database: the users it shows.
type Profiles interface {
	UsersByIDs(ctx context.Context, ids []int64) (map[int64]store.User, error)
}

// NewFeed starts a feed that follows e's bus and publishes to b fragments
// carrying at most maxShown users (the largest widget ?max plus one, so a
// viewer hidden from their own list still leaves max others to show).
// Caller must call Close.
func NewFeed(e *presence.Engine, s Profiles, b *Broker, maxShown int, log *slog.Logger) *Feed {
	f := &Feed{engine: e, store: s, broker: b, maxShown: maxShown, log: log, window: feedWindow,
		stop: make(chan struct{}), done: make(chan struct{})}
	f.refresh() // so the first request has something to serve
	go f.run()
	return f
}

// Fragment returns the current shared list fragment, for (re)connecting
// widgets.
func (f *Feed) Fragment() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.current
}

func (f *Feed) run() {
	defer close(f.done)
	for {
		sub := f.engine.Bus().Subscribe(4096)
		f.refresh() // nothing missed while (re)subscribing
		if !f.follow(sub) {
			sub.Close()
			return
		}
		f.log.Warn("widget feed fell behind the bus; resubscribing")
	}
}

// follow pushes on the leading edge of each burst of events, then once per
// window while events keep coming. It returns false when the feed is
// stopped, true when the bus dropped the subscription.
func (f *Feed) follow(sub *presence.Subscription) bool {
	for {
		select {
		case _, ok := <-sub.C:
			if !ok {
				return true
			}
		case <-f.stop:
			return false
		}
		f.refresh() // a lone change goes out at once
		for {
			more, open, stopped := f.gather(sub, f.windowFor())
			if stopped {
				return false
			}
			if !open {
				return true
			}
			if !more {
				break // quiet again: back to leading-edge pushes
			}
			f.refresh()
		}
	}
}

// gather drains events for d and reports whether any arrived.
func (f *Feed) gather(sub *presence.Subscription, d time.Duration) (more, open, stopped bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case _, ok := <-sub.C:
			if !ok {
				return more, false, false
			}
			more = true
		case <-t.C:
			return more, true, false
		case <-f.stop:
			return more, true, true
		}
	}
}

// windowFor is the time to wait before the next push: at least f.window,
// longer when a push to every subscriber is expensive.
func (f *Feed) windowFor() time.Duration {
	f.mu.RLock()
	pushed := f.pushed
	f.mu.RUnlock()
	cost := float64(pushed) * float64(f.broker.Subscribers())
	return max(f.window, time.Duration(cost/feedBytesPerSecond*float64(time.Second)))
}

// refresh renders the fragment from the engine's truth and publishes what
// changed: the whole list when the users shown changed, else only the count.
func (f *Feed) refresh() {
	online := f.engine.Online()
	shown := online[:min(len(online), f.maxShown)]
	ids := make([]int64, len(shown))
	for i, st := range shown {
		ids[i] = st.UserID
	}
	profiles, err := f.store.UsersByIDs(context.Background(), ids)
	if err != nil {
		f.log.Error("widget feed: load profiles", "err", err)
	}
	users := make([]views.WidgetUser, len(shown))
	var key strings.Builder
	for i, st := range shown {
		users[i] = views.WidgetUser{ID: st.UserID, Username: st.Username, ProfileImageURL: profiles[st.UserID].ProfileImageURL}
		fmt.Fprintf(&key, "%d\x00%s\x00%s\x00", users[i].ID, users[i].Username, users[i].ProfileImageURL)
	}
	var full bytes.Buffer
	if err := views.WidgetList(users, len(online)).Render(context.Background(), &full); err != nil {
		f.log.Error("widget feed: render", "err", err)
		return
	}
	f.renders.Add(1)

	f.mu.Lock()
	sameUsers := f.current != nil && key.String() == f.shownKey
	sameTotal := len(online) == f.lastTotal
	f.current, f.shownKey, f.lastTotal = full.Bytes(), key.String(), len(online)
	f.mu.Unlock()
	switch {
	case sameUsers && sameTotal:
		// nothing a viewer can see changed
	case sameUsers:
		var count bytes.Buffer
		views.WidgetCount(len(online)).Render(context.Background(), &count)
		f.setPushed(count.Len())
		f.broker.Publish("presence-count", count.Bytes())
	default:
		f.setPushed(full.Len())
		f.broker.Publish("presence", full.Bytes())
	}
}

func (f *Feed) setPushed(n int) {
	f.mu.Lock()
	f.pushed = n
	f.mu.Unlock()
}

// Close stops the feed and waits for it.
func (f *Feed) Close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

// Renders returns how many times the shared fragment has been rendered.
func (f *Feed) Renders() int64 { return f.renders.Load() }
