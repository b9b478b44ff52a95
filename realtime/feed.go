package realtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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
	// settleMax bounds how long a push waits for the original protocol's
	// sockets to be sent the same change (Settler): under a stream of
	// events, when they are never all sent, widgets still move.
	settleMax = 250 * time.Millisecond
)

// Settler is what goes before the feed's pushes: the WebSockets of the
// original protocol (Hub.Settle). Settle returns once what it had to send
// when called is sent, when stop is closed, or after about max.
type Settler interface {
	Settle(stop <-chan struct{}, max time.Duration)
}

// Feed keeps the current shared widget fragment and pushes what changed to
// every SSE subscriber when presence changes: a count when the users shown
// stay the same, else a delta (tiles inserted and removed, in order), and
// the whole list only when a delta would cost more. One change costs one
// render, whatever the number of viewers.
type Feed struct {
	engine   *presence.Engine
	store    Profiles
	maxShown int
	broker   *Broker
	ahead    Settler // nil: none
	clock    presence.Clock
	log      *slog.Logger
	window   time.Duration
	epoch    string // names this feed's versions, so a restart is never mistaken for a delta

	mu        sync.RWMutex
	current   []byte // the whole list fragment, for (re)connecting widgets
	shown     []views.WidgetUser
	version   string // of current's grid: moves when the users shown change
	seq       int64  // numbers the grid's and the count's versions
	lastTotal int
	pushed    int // bytes of the last push, for windowFor

	renders, deltas, fulls atomic.Int64
	kick                   chan struct{} // Invalidate: profiles changed
	stop                   chan struct{}
	stopOnce               sync.Once
	done                   chan struct{}
}

// Profiles is what the feed needs from the database: the users it shows.
type Profiles interface {
	UsersByIDs(ctx context.Context, ids []int64) (map[int64]store.User, error)
}

// NewFeed starts a feed that follows e's bus and publishes to b fragments
// carrying at most maxShown users (the largest widget ?max plus one, so a
// viewer hidden from their own list still leaves max others to show).
// clock times the coalescing window (nil: the system clock). Each push
// waits first for ahead (nil: nothing), for at most settleMax. Caller
// must call Close.
func NewFeed(e *presence.Engine, s Profiles, b *Broker, ahead Settler, maxShown int, clock presence.Clock, log *slog.Logger) *Feed {
	if clock == nil {
		clock = presence.SystemClock{}
	}
	f := &Feed{engine: e, store: s, broker: b, ahead: ahead, maxShown: maxShown, clock: clock, log: log, window: feedWindow,
		epoch: fmt.Sprintf("v%x", rand.Uint32()), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
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
		case ev, ok := <-sub.C:
			if !ok {
				return true
			}
			if ev.Scope == presence.ScopeSelf {
				continue // nothing any viewer of the shared list may see
			}
		case <-f.kick:
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

// gather drains events for d (on the feed's clock) and reports whether any
// arrived.
func (f *Feed) gather(sub *presence.Subscription, d time.Duration) (more, open, stopped bool) {
	elapsed := make(chan struct{})
	t := f.clock.AfterFunc(d, func() { close(elapsed) })
	defer t.Stop()
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return more, false, false
			}
			more = more || ev.Scope != presence.ScopeSelf
		case <-f.kick:
			more = true
		case <-elapsed:
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
	cost := float64(pushed) * float64(f.broker.SharedSubscribers())
	return max(f.window, time.Duration(cost/feedBytesPerSecond*float64(time.Second)))
}

// refresh renders the list from the engine's truth and publishes what
// changed. Only the feed's goroutine (and NewFeed, before it starts) calls
// it.
func (f *Feed) refresh() {
	shown, total := f.engine.OnlineFirst(f.maxShown)
	ids := make([]int64, len(shown))
	for i, st := range shown {
		ids[i] = st.UserID
	}
	profiles, err := f.store.UsersByIDs(context.Background(), ids)
	if err != nil {
		f.log.Error("widget feed: load profiles", "err", err)
	}
	users := make([]views.WidgetUser, len(shown))
	for i, st := range shown {
		p := profiles[st.UserID]
		users[i] = views.WidgetUser{ID: views.PublicID(st.UserID, st.PublicID), Username: st.Username, ProfileImageURL: p.ProfileImageURL, Host: p.IsHost(),
			Mode: string(st.Mode), StatusText: st.StatusText, StatusEmoji: st.StatusEmoji}
	}

	f.mu.RLock()
	prev, prevVersion, first := f.shown, f.version, f.current == nil
	sameTotal := total == f.lastTotal
	f.mu.RUnlock()
	sameUsers := !first && slices.Equal(prev, users)
	if sameUsers && sameTotal {
		return // nothing a viewer can see changed
	}
	// One number for both versions, so each is "<epoch>-<n>" with n rising:
	// a count pushed alone moves only the count's version, which lets a
	// widget tell a list fetched before that push (same grid version, older
	// count) from one fetched after.
	f.seq++
	count := views.Count{Total: total, Version: fmt.Sprintf("%s-%d", f.epoch, f.seq)}
	version := prevVersion
	if !sameUsers {
		version = count.Version
	}
	var full bytes.Buffer
	if err := views.WidgetList(users, count, version).Render(context.Background(), &full); err != nil {
		f.log.Error("widget feed: render", "err", err)
		return
	}
	f.renders.Add(1)
	f.mu.Lock()
	f.current, f.shown, f.version, f.lastTotal = full.Bytes(), users, version, total
	f.mu.Unlock()
	f.broker.SetSnapshot("presence", full.Bytes())
	if !first && f.ahead != nil {
		f.ahead.Settle(f.stop, settleMax)
	}

	switch {
	case first:
	case sameUsers:
		var push bytes.Buffer
		views.WidgetCountPush(count).Render(context.Background(), &push)
		f.setPushed(push.Len())
		f.broker.PublishLatest("presence-count", push.Bytes())
	default:
		if d, ok := diff(prev, users); ok {
			d.From, d.To, d.Count = prevVersion, version, count
			var delta bytes.Buffer
			views.WidgetDelta(d).Render(context.Background(), &delta)
			if delta.Len() < full.Len()/2 {
				f.deltas.Add(1)
				f.setPushed(delta.Len())
				f.broker.Publish("presence-delta", delta.Bytes())
				return
			}
		}
		f.fulls.Add(1)
		f.setPushed(full.Len())
		f.broker.Publish("presence", full.Bytes())
	}
}

// diff returns the tiles to remove from prev and to insert so that it
// becomes next, or false when the users kept changed their order (then the
// whole list is sent). A user whose tile changed (mode, custom status) is
// removed and inserted again in place: a mode or status change is a
// one-tile delta like an arrival.
func diff(prev, next []views.WidgetUser) (views.ListDelta, bool) {
	var d views.ListDelta
	inNext := make(map[string]views.WidgetUser, len(next))
	for _, u := range next {
		inNext[u.ID] = u
	}
	kept := make(map[string]bool, len(prev))
	var keptOrder []string
	for _, u := range prev {
		if n, ok := inNext[u.ID]; ok && n == u {
			kept[u.ID] = true
			keptOrder = append(keptOrder, u.ID)
		} else {
			d.Removed = append(d.Removed, u.ID)
		}
	}
	i := 0
	for _, u := range next {
		if kept[u.ID] {
			if keptOrder[i] != u.ID {
				return d, false
			}
			i++
		}
	}
	// Insert from the end, each before its successor, which is then
	// always in place already.
	for j := len(next) - 1; j >= 0; j-- {
		if kept[next[j].ID] {
			continue
		}
		var before string
		if j+1 < len(next) {
			before = next[j+1].ID
		}
		d.Inserted = append(d.Inserted, views.WidgetInsert{User: next[j], Before: before})
	}
	return d, true
}

func (f *Feed) setPushed(n int) {
	f.mu.Lock()
	f.pushed = n
	f.mu.Unlock()
}

// Invalidate tells the feed that a profile it may show changed (an
// avatar): it reloads the users it shows from the store and pushes the
// tiles that changed, as it does for a presence change. It never blocks;
// calls that come while one is pending are merged.
func (f *Feed) Invalidate() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Close stops the feed and waits for it. It is safe to call more than
// once, from several goroutines (two shutdown paths do).
func (f *Feed) Close() {
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.done
}

// FeedStats are the feed's counters since it started.
type FeedStats struct {
	// Renders counts renders of the shared list; Deltas and Fulls the list
	// changes pushed as a delta and as the whole list.
	Renders, Deltas, Fulls int64
}

// Stats returns the feed's counters.
func (f *Feed) Stats() FeedStats {
	return FeedStats{Renders: f.renders.Load(), Deltas: f.deltas.Load(), Fulls: f.fulls.Load()}
}

// Renders returns how many times the shared fragment has been rendered.
func (f *Feed) Renders() int64 { return f.renders.Load() }
