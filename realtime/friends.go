package realtime

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/a-h/templ"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// FriendsStore is what the friends feed needs from the database.
type FriendsStore interface {
	FriendIDs(ctx context.Context, userID int64) ([]int64, error)
	UsersByIDs(ctx context.Context, ids []int64) (map[int64]store.User, error)
	FriendNotifyUsers(ctx context.Context) ([]int64, error)
}

// FriendsFeed keeps friends-scoped widgets live. The global Feed renders
// one list for everyone; a friends widget shows a different list to each
// viewer, so it cannot share that list. Instead, when user X comes online
// or goes offline, the feed:
//
//  1. reads X's friends (one primary-key range scan: O(friends));
//  2. keeps those with a per-viewer stream open (Broker.Watching, a map
//     lookup each);
//  3. if any, renders X's change once (views.FriendOn / FriendOff: one
//     tile, ~400 bytes) and queues the same encoded bytes on those
//     viewers' streams only (Broker.PublishTo).
//
// A viewer who is not X's friend receives nothing; no per-viewer list is
// rendered on a change (the list is rendered per viewer only when a widget
// (re)connects and fetches it). Friend-list changes (accept, remove, the
// server API's replace) go through the same goroutine, so a viewer sees
// them in order with presence changes.
//
// Notices: when X comes online, friends who opted in (a set kept in
// memory) get one more event, friend-online, a small toast rendered once
// per change, on any stream they have open (the page's own, no extra
// connection). Engine events come after the grace period, so a reload or a
// flaky network sends no notice.
type FriendsFeed struct {
	engine *presence.Engine
	store  FriendsStore
	broker *Broker
	log    *slog.Logger

	mu     sync.Mutex
	notify map[int64]bool

	// shown holds the users shown online to their friends, with their
	// public ids (the run goroutine's alone).
	shown map[int64]string

	changes chan friendChange
	stop    chan struct{}
	once    sync.Once
	done    chan struct{}

	renders, routed atomic.Int64
}

// friendChange is a friendship that began (on) or ended between a and b,
// or a change of user's settings (mode, visibility).
type friendChange struct {
	a, b int64
	on   bool
	user int64
	sync chan struct{} // closed once applied (tests), or nil
}

// NewFriendsFeed starts a feed following e's bus. Caller must call Close.
func NewFriendsFeed(e *presence.Engine, s FriendsStore, b *Broker, log *slog.Logger) *FriendsFeed {
	f := &FriendsFeed{engine: e, store: s, broker: b, log: log, notify: map[int64]bool{}, shown: map[int64]string{},
		changes: make(chan friendChange, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	ids, err := s.FriendNotifyUsers(context.Background())
	if err != nil {
		log.Error("friends feed: load notice settings", "err", err)
	}
	for _, id := range ids {
		f.notify[id] = true
	}
	sub := e.Bus().Subscribe(4096) // before returning: no change after NewFriendsFeed is missed
	go f.run(sub)
	return f
}

// SetNotify records that userID turned friend notices on or off (the
// database has it already).
func (f *FriendsFeed) SetNotify(userID int64, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.notify[userID] = true
	} else {
		delete(f.notify, userID)
	}
}

// Befriended tells the feed that a and b became friends: each one's
// friends widget gains the other if they are online. It does not wait.
func (f *FriendsFeed) Befriended(a, b int64) { f.enqueue(friendChange{a: a, b: b, on: true}) }

// Unfriended tells the feed that a and b are no longer friends: each
// one's friends widget loses the other.
func (f *FriendsFeed) Unfriended(a, b int64) { f.enqueue(friendChange{a: a, b: b}) }

// SettingsChanged tells the feed that userID changed their mode or
// visibility, which may show or hide them to their friends without any
// change others can see (a user who shows nobody choosing friends).
func (f *FriendsFeed) SettingsChanged(userID int64) { f.enqueue(friendChange{user: userID}) }

// Sync waits until every change told to the feed before it has been sent.
func (f *FriendsFeed) Sync() {
	ch := make(chan struct{})
	f.enqueue(friendChange{sync: ch})
	select {
	case <-ch:
	case <-f.done:
	}
}

func (f *FriendsFeed) enqueue(c friendChange) {
	select {
	case f.changes <- c:
	case <-f.done:
	}
}

func (f *FriendsFeed) run(sub *presence.Subscription) {
	defer close(f.done)
	defer func() { sub.Close() }()
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				// Fell behind the bus: every friends widget refetches.
				f.log.Warn("friends feed fell behind the bus; resubscribing")
				sub = f.engine.Bus().Subscribe(4096)
				f.broker.PublishScoped("friends-refresh", []byte("refresh"))
				continue
			}
			f.userChanged(ev.UserID)
		case c := <-f.changes:
			switch {
			case c.sync != nil:
				close(c.sync)
			case c.user != 0:
				f.userChanged(c.user)
			default:
				f.friendshipChanged(c)
			}
		case <-f.stop:
			return
		}
	}
}

// userChanged routes a change of user id to the friends watching, if
// their friends now see them differently. What friends see is read from
// the engine, not from the event: the engine publishes what everyone else
// sees and, when that differs, the truth to the user alone, while friends
// see the truth of a user who shows their presence to friends, and what
// everyone sees of anyone else (an invisible user, or one who shows
// nobody, is offline to friends too).
func (f *FriendsFeed) userChanged(id int64) {
	st, ok := f.engine.State(id)
	visible := ok && st.SeenByFriends()
	public, wasShown := f.shown[id]
	if visible == wasShown {
		return // a change friends don't see (mode, status), or already sent
	}
	if visible {
		public = views.PublicID(id, st.PublicID)
		f.shown[id] = public
	} else {
		delete(f.shown, id)
	}
	f.route(id, public, st, visible)
}

// route sends the change of user id (public id public; st when visible)
// to the friends watching: a tile added or removed on their friends
// widgets, and a notice to those who opted in when id comes online.
func (f *FriendsFeed) route(id int64, public string, st presence.Status, visible bool) {
	friends, err := f.store.FriendIDs(context.Background(), id)
	if err != nil {
		f.log.Error("friends feed: load friends", "err", err)
		return
	}
	watching := f.broker.Watching(friends, false) // any stream: notices
	if len(watching) == 0 {
		return
	}
	scoped := f.broker.Watching(watching, true) // friends widgets
	if !visible {
		if len(scoped) > 0 {
			f.publish(scoped, "friends-delta", views.FriendOff(public))
		}
		return
	}
	u := f.tile(id, public, st.Username)
	if len(scoped) > 0 {
		f.publish(scoped, "friends-delta", views.FriendOn(u))
	}
	f.mu.Lock()
	var notify []int64
	for _, w := range watching {
		if f.notify[w] {
			notify = append(notify, w)
		}
	}
	f.mu.Unlock()
	if len(notify) > 0 {
		key := public + "-" + strconv.FormatInt(st.Since.UnixMilli(), 10)
		f.publishAll(notify, "friend-online", views.FriendToast(u, key))
	}
}

// friendshipChanged updates both sides' friends widgets.
func (f *FriendsFeed) friendshipChanged(c friendChange) {
	for _, pair := range [][2]int64{{c.a, c.b}, {c.b, c.a}} {
		viewer, other := pair[0], pair[1]
		if len(f.broker.Watching([]int64{viewer}, true)) == 0 {
			continue
		}
		public, shown := f.shown[other]
		if !shown {
			continue // not online to friends: no tile to add or remove
		}
		if !c.on {
			f.publish([]int64{viewer}, "friends-delta", views.FriendOff(public))
			continue
		}
		f.publish([]int64{viewer}, "friends-delta", views.FriendOn(f.tile(other, public, "")))
	}
}

// tile loads the card of user id, whose public id is public (its avatar,
// and its name if not given).
func (f *FriendsFeed) tile(id int64, public, name string) views.WidgetUser {
	u := views.WidgetUser{ID: public, Username: name}
	profiles, err := f.store.UsersByIDs(context.Background(), []int64{id})
	if err != nil {
		f.log.Error("friends feed: load profile", "err", err)
	}
	if p, ok := profiles[id]; ok {
		u.ProfileImageURL, u.Host = p.ProfileImageURL, p.IsHost()
		if u.Username == "" {
			u.Username = p.Username
		}
	}
	return u
}

// publish renders c once and queues it on the viewers' friends streams.
func (f *FriendsFeed) publish(viewers []int64, event string, c templ.Component) {
	f.send(viewers, event, c, false)
}

// publishAll renders c once and queues it on every stream of the viewers.
func (f *FriendsFeed) publishAll(viewers []int64, event string, c templ.Component) {
	f.send(viewers, event, c, true)
}

func (f *FriendsFeed) send(viewers []int64, event string, c templ.Component, alsoShared bool) {
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		f.log.Error("friends feed: render", "err", err)
		return
	}
	f.renders.Add(1)
	f.routed.Add(int64(f.broker.PublishTo(viewers, event, buf.Bytes(), alsoShared)))
}

// Close stops the feed and waits for it. Safe to call more than once.
func (f *FriendsFeed) Close() {
	f.once.Do(func() { close(f.stop) })
	<-f.done
}

// FriendsFeedStats are the friends feed's counters since it started.
type FriendsFeedStats struct {
	// Renders counts fragments rendered (one per change that any friend
	// watches); Routed the streams they were queued on.
	Renders, Routed int64
}

// Stats returns the feed's counters.
func (f *FriendsFeed) Stats() FriendsFeedStats {
	return FriendsFeedStats{Renders: f.renders.Load(), Routed: f.routed.Load()}
}
