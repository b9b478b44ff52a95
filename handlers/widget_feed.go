package handlers

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/views"
)

const (
	// widgetMaxShown is how many users the shared fragment carries: the
	// largest allowed ?max plus one, so a viewer hidden from their own list
	// still leaves max others to show.
	widgetMaxShown = maxWidgetMax + 1
	// feedWindow is how long changes are gathered before one render: a
	// storm of joins costs one render and one publish per window.
	feedWindow = 50 * time.Millisecond
)

// widgetFeed keeps the current shared widget fragment and pushes a new one
// to every SSE subscriber when presence changes. One change costs one
// render, whatever the number of viewers.
type widgetFeed struct {
	engine *presence.Engine
	store  Store
	broker *sseBroker
	log    *slog.Logger
	window time.Duration

	mu      sync.RWMutex
	current []byte

	renders atomic.Int64
	stop    chan struct{}
	done    chan struct{}
}

func newWidgetFeed(e *presence.Engine, s Store, b *sseBroker, log *slog.Logger) *widgetFeed {
	f := &widgetFeed{engine: e, store: s, broker: b, log: log, window: feedWindow,
		stop: make(chan struct{}), done: make(chan struct{})}
	f.refresh() // so the first request has something to serve
	go f.run()
	return f
}

// fragment returns the current shared fragment.
func (f *widgetFeed) fragment() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.current
}

func (f *widgetFeed) run() {
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

// follow renders after each burst of events. It returns false when the feed
// is stopped, true when the bus dropped the subscription.
func (f *widgetFeed) follow(sub *presence.Subscription) bool {
	for {
		select {
		case _, ok := <-sub.C:
			if !ok {
				return true
			}
		case <-f.stop:
			return false
		}
		// Gather everything else that happens within the window.
		t := time.NewTimer(f.window)
	gather:
		for {
			select {
			case _, ok := <-sub.C:
				if !ok {
					t.Stop()
					return true
				}
			case <-t.C:
				break gather
			case <-f.stop:
				t.Stop()
				return false
			}
		}
		f.refresh()
	}
}

// refresh renders the fragment from the engine's truth and publishes it if
// it changed.
func (f *widgetFeed) refresh() {
	online := f.engine.Online()
	shown := online[:min(len(online), widgetMaxShown)]
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
		users[i] = views.WidgetUser{ID: st.UserID, Username: st.Username, ProfileImageURL: profiles[st.UserID].ProfileImageURL}
	}
	var buf bytes.Buffer
	if err := views.WidgetList(users, len(online)).Render(context.Background(), &buf); err != nil {
		f.log.Error("widget feed: render", "err", err)
		return
	}
	f.renders.Add(1)
	b := buf.Bytes()
	f.mu.Lock()
	same := bytes.Equal(b, f.current)
	if !same {
		f.current = b
	}
	f.mu.Unlock()
	if !same {
		f.broker.publish("presence", b)
	}
}

// close stops the feed and waits for it.
func (f *widgetFeed) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}
