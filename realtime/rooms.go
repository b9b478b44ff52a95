package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/a-h/templ"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// Rooms: "who is here now" (docs/PROTOCOL.md, "Rooms").
//
// A socket says which room it is in with ?room= at connect or a
// {"type":"room","room":...} message; the engine keeps who is in which room
// (presence/rooms.go). A room widget (?room= on the widget) holds a stream
// of that room: the broker indexes those streams by room, and the RoomFeed
// renders each change of a member once and queues the same bytes on the
// streams watching that room only. A signed-in viewer's profile pages
// share one stream instead, the viewer's rooms stream (?scope=rooms),
// which gets the changes of the profile rooms the viewer is in. A room
// nobody watches costs nothing.

// msgRoomLeft answers {"type":"room","room":""}.
var msgRoomLeft = []byte(`{"type":"room.left","room":""}`)

// moveTo answers a room message: the socket moves to room ("" leaves).
// Reader goroutine only.
func (cl *wsClient) moveTo(room string) []byte {
	if room != "" {
		if p := presence.RoomProblem(room); p != "" {
			return errorMessage(p)
		}
	}
	if err := cl.pc.SetRoom(room); err != nil {
		return errorMessage("cannot change room: " + err.Error())
	}
	cl.room.Store(&room)
	if room == "" {
		return msgRoomLeft
	}
	b, _ := json.Marshal(map[string]string{"type": "room.joined", "room": room})
	return b
}

// PublishRoom sends one named event, encoded once, to the streams of room
// only, and returns how many it reached. The cost is proportional to those
// streams, never to every subscriber.
func (b *Broker) PublishRoom(room, event string, data []byte) int {
	if len(data) == 0 || room == "" {
		return 0
	}
	f := &frame{b: encode(event, data), name: event}
	n := 0
	b.mu.Lock()
	for s := range b.rooms[room] {
		s.push(f, maxQueued<<10, &b.resyncs)
		n++
	}
	b.mu.Unlock()
	if n > 0 {
		b.targeted.Add(1)
		b.targetedBytes.Add(int64(n * len(f.b)))
	}
	return n
}

// ProfileRoom reports whether room is a profile page's path, whose page
// shows its viewers (a room widget on the viewer's rooms stream). Only
// those rooms' changes go to rooms streams: a busy room whose page shows
// no room widget (the home page, "/") costs its members' rooms streams
// nothing, and its changes cost no lookup of its members.
func ProfileRoom(room string) bool {
	return strings.HasPrefix(room, "/users/") || strings.HasPrefix(room, views.HostProfilePrefix)
}

// PublishToRooms sends one named event, encoded once, to the rooms
// streams (StreamViewer.MyRooms) of the given viewers only, and returns how
// many it reached.
func (b *Broker) PublishToRooms(viewers []int64, event string, data []byte) int {
	if len(data) == 0 || len(viewers) == 0 {
		return 0
	}
	f := &frame{b: encode(event, data), name: event}
	n := 0
	b.mu.Lock()
	for _, v := range viewers {
		for s := range b.viewers[v] {
			if s.rooms {
				s.push(f, maxQueued<<10, &b.resyncs)
				n++
			}
		}
	}
	b.mu.Unlock()
	if n > 0 {
		b.targeted.Add(1)
		b.targetedBytes.Add(int64(n * len(f.b)))
	}
	return n
}

// WatchingRooms returns those of ids that have a rooms stream open
// (StreamViewer.MyRooms), in the order given.
func (b *Broker) WatchingRooms(ids []int64) []int64 {
	var out []int64
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		for s := range b.viewers[id] {
			if s.rooms {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// WatchingRoom reports whether any stream watches room.
func (b *Broker) WatchingRoom(room string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.rooms[room]) > 0
}

// RoomsStore is what the room feed needs from the database.
type RoomsStore interface {
	UsersByIDs(ctx context.Context, ids []int64) (map[int64]store.User, error)
}

// RoomFeed keeps room widgets live. When user X enters or leaves room R,
// or changes in a way others see (mode, status, going invisible), and some
// stream watches R, it renders X's tile (or its removal) once and queues
// the bytes on R's streams (Broker.PublishRoom) and, for a profile room, on
// the rooms streams of R's members (Broker.PublishToRooms). A room widget is shared by
// everyone watching the room, so it shows what everyone may see: members
// who are hidden (invisible, or visible to friends only or to nobody) are
// left out, as in the shared online list.
type RoomFeed struct {
	engine *presence.Engine
	store  RoomsStore
	broker *Broker
	log    *slog.Logger

	// sent holds, per room and member, how the member was last shown to
	// the room's streams (roomShown), so that one change seen twice (the
	// bus's online event and the room's entry) is sent once. The run
	// goroutine's alone; an entry goes when the member leaves the room.
	sent map[string]map[int64]string

	stop chan struct{}
	once sync.Once
	done chan struct{}

	renders, routed atomic.Int64
}

// roomBuffer is how many events the feed's subscriptions hold while it is
// busy; beyond it it resubscribes and every room widget refetches.
const roomBuffer = 4096

// NewRoomFeed starts a feed following e's rooms and bus. Caller must call
// Close.
func NewRoomFeed(e *presence.Engine, s RoomsStore, b *Broker, log *slog.Logger) *RoomFeed {
	f := &RoomFeed{engine: e, store: s, broker: b, log: log, sent: map[string]map[int64]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	w := e.WatchRooms(roomBuffer) // before returning: no change after NewRoomFeed is missed
	sub := e.Bus().Subscribe(roomBuffer)
	go f.run(w, sub)
	return f
}

func (f *RoomFeed) run(w *presence.RoomWatch, sub *presence.Subscription) {
	defer close(f.done)
	defer func() { w.Close(); sub.Close() }()
	for {
		select {
		case ev, ok := <-w.C:
			if !ok {
				if w.Dropped() {
					f.log.Warn("room feed fell behind the engine; resubscribing")
					w = f.engine.WatchRooms(roomBuffer)
					clear(f.sent)
					f.broker.PublishScoped("friends-refresh", []byte("refresh"))
					continue
				}
				<-f.stop // the engine closed: wait to be closed too
				return
			}
			f.changed(ev.Room, ev.UserID, ev.PublicID)
		case ev, ok := <-sub.C:
			if !ok {
				f.log.Warn("room feed fell behind the bus; resubscribing")
				sub = f.engine.Bus().Subscribe(roomBuffer)
				clear(f.sent)
				f.broker.PublishScoped("friends-refresh", []byte("refresh"))
				continue
			}
			for _, room := range f.engine.RoomsOf(ev.UserID) {
				f.changed(room, ev.UserID, ev.PublicID)
			}
		case <-f.stop:
			return
		}
	}
}

// changed sends room's watchers how user id (public id public) now
// appears in it: their tile, or its removal. The watchers are the room's
// streams (a room widget, ?room=) and the rooms streams of the room's
// members (their tabs in the room show its widget: a profile's viewers).
// The swaps are idempotent; a state already sent is not sent again.
func (f *RoomFeed) changed(room string, id int64, public string) {
	st, ok := f.engine.State(id)
	in := ok && f.engine.InRoom(room, id)
	shown := "" // not shown
	if in && !st.Hidden() {
		shown = "on\x00" + string(st.Mode) + "\x00" + st.StatusText + "\x00" + st.StatusEmoji
	}
	if !in {
		if m := f.sent[room]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(f.sent, room)
			}
		}
	} else if last, known := f.sent[room][id]; known && last == shown {
		return
	}
	watched := f.broker.WatchingRoom(room)
	var viewers []int64
	if ProfileRoom(room) { // only their pages show a room widget on the rooms stream
		viewers = f.broker.WatchingRooms(f.engine.RoomMemberIDs(room))
	}
	if !watched && len(viewers) == 0 {
		// Nobody to tell: what was sent no longer says what anyone
		// shows (a new watcher fetches the list).
		delete(f.sent, room)
		return
	}
	if in {
		if f.sent[room] == nil {
			f.sent[room] = map[int64]string{}
		}
		f.sent[room][id] = shown
	}
	public = views.PublicID(id, public)
	if shown == "" {
		f.publish(room, viewers, views.RoomOff(room, public))
		return
	}
	u := views.WidgetUser{ID: public, Username: st.Username, Mode: string(st.Mode), StatusText: st.StatusText, StatusEmoji: st.StatusEmoji}
	profiles, err := f.store.UsersByIDs(context.Background(), []int64{id})
	if err != nil {
		f.log.Error("room feed: load profile", "err", err)
	}
	if p, ok := profiles[id]; ok {
		u.ProfileImageURL, u.Host = p.ProfileImageURL, p.IsHost()
	}
	f.publish(room, viewers, views.RoomOn(room, u))
}

// publish renders c once and queues it on room's streams and on the rooms
// streams of viewers.
func (f *RoomFeed) publish(room string, viewers []int64, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		f.log.Error("room feed: render", "err", err)
		return
	}
	f.renders.Add(1)
	n := f.broker.PublishRoom(room, "room-delta", buf.Bytes())
	n += f.broker.PublishToRooms(viewers, "room-delta", buf.Bytes())
	f.routed.Add(int64(n))
}

// Close stops the feed and waits for it. Safe to call more than once.
func (f *RoomFeed) Close() {
	f.once.Do(func() { close(f.stop) })
	<-f.done
}

// RoomFeedStats are the room feed's counters since it started.
type RoomFeedStats struct {
	// Renders counts fragments rendered (one per change in a watched
	// room); Routed the streams they were queued on.
	Renders, Routed int64
}

// Stats returns the feed's counters.
func (f *RoomFeed) Stats() RoomFeedStats {
	return RoomFeedStats{Renders: f.renders.Load(), Routed: f.routed.Load()}
}
