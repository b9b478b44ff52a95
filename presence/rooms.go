package presence

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Rooms: "who is here now". Each connection may say which room it is in (a
// page, a document, a channel: any name a client chooses, one room per
// connection). A user is in room R while any of their connections is in R;
// when the last one leaves R (it moves, closes, or misses its heartbeat
// deadline) the user leaves R after the grace period, like going offline, so
// a reload does not make them flicker out of the room. A user in R from
// several tabs is one member of R.
//
// Membership is the truth, whoever may see it: callers that show it filter
// with Status.Hidden or CanSee, as for the online list.

// MaxRoomLen is the longest room name, in characters.
const MaxRoomLen = 100

// ErrBadRoom is wrapped by the error Conn.SetRoom and CheckRoom return for
// a name that is not a usable room name (see RoomProblem).
var ErrBadRoom = errors.New("presence: bad room name")

// RoomProblem says what is wrong with a room name, in a sentence for the
// client, or "" when it is usable: 1 to MaxRoomLen characters of valid
// UTF-8, each a letter, mark, number, punctuation, symbol or the ASCII space
// (no control, format or other invisible characters), not starting or
// ending with a space.
func RoomProblem(name string) string {
	switch n := utf8.RuneCountInString(name); {
	case name == "":
		return "room name is empty"
	case !utf8.ValidString(name):
		return "room name must be valid UTF-8"
	case n > MaxRoomLen:
		return "room name must be at most " + strconv.Itoa(MaxRoomLen) + " characters"
	case strings.HasPrefix(name, " ") || strings.HasSuffix(name, " "):
		return "room name must not start or end with a space"
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return "room name must not contain control or invisible characters"
		}
	}
	return ""
}

// CheckRoom returns an error wrapping ErrBadRoom when name is not a usable
// room name (see RoomProblem).
func CheckRoom(name string) error {
	if p := RoomProblem(name); p != "" {
		return fmt.Errorf("%w: %s", ErrBadRoom, p)
	}
	return nil
}

// RoomEvent says that a user entered or left a room. Like Event it is per
// user, never per connection: a second tab in the room, a reload within the
// grace period, produce none.
type RoomEvent struct {
	Room   string
	UserID int64
	// PublicID is the user's User.PublicID (empty: UserID is shown).
	PublicID string
	// In is true when the user entered the room, false when they left it.
	In bool
}

// roomMember is one user in one room. Guarded by e.mu.
type roomMember struct {
	conns int       // the user's connections in the room
	grace Timer     // non-nil while waiting to leave
	gen   uint64    // invalidates a grace timer that fired late
	since time.Time // when the user entered the room
	user  User
}

// RoomWatch receives every RoomEvent on C. Like a bus subscription, it is
// cut off (C closed, Dropped true) rather than allowed to delay the engine
// when its buffer is full; the consumer then watches again and resyncs.
type RoomWatch struct {
	C <-chan RoomEvent

	ch      chan RoomEvent
	e       *Engine
	once    sync.Once
	dropped bool // set under e.mu before C is closed
}

// WatchRooms returns a watch of room entries and exits whose channel holds
// up to buffer events. Caller must call Close.
func (e *Engine) WatchRooms(buffer int) *RoomWatch {
	ch := make(chan RoomEvent, buffer)
	w := &RoomWatch{C: ch, ch: ch, e: e}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.roomWatches == nil {
		e.roomWatches = map[*RoomWatch]struct{}{}
	}
	e.roomWatches[w] = struct{}{}
	return w
}

// Close stops the watch and closes C. It is safe to call more than once.
func (w *RoomWatch) Close() {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	w.e.dropWatch(w)
}

// Dropped reports whether the engine cut the watch off because its buffer
// was full. It is meaningful once C has been closed.
func (w *RoomWatch) Dropped() bool {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.dropped
}

// dropWatch removes w and closes its channel. Caller must hold e.mu.
func (e *Engine) dropWatch(w *RoomWatch) {
	delete(e.roomWatches, w)
	w.once.Do(func() { close(w.ch) })
}

// emitRoom announces a change of this engine's own membership: to the
// RoomDirectory when there is one (which comes back through EmitRoom once
// it is the cluster's change), else to every watch. Caller must hold e.mu.
func (e *Engine) emitRoom(ev RoomEvent) {
	if e.roomDir != nil {
		e.roomDir.AnnounceRoom(ev)
		return
	}
	e.deliverRoom(ev)
}

// EmitRoom delivers a room change decided across nodes to every watch
// (the RoomDirectory's side of Config.Rooms).
func (e *Engine) EmitRoom(ev RoomEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.deliverRoom(ev)
	}
}

// deliverRoom delivers ev to every watch without blocking. Caller must hold
// e.mu.
func (e *Engine) deliverRoom(ev RoomEvent) {
	for w := range e.roomWatches {
		select {
		case w.ch <- ev:
		default:
			w.dropped = true
			e.dropWatch(w)
		}
	}
}

// SetRoom moves the connection to room; "" leaves the room it is in. The
// user enters room at once (unless already in it from another connection,
// or still in it within the grace period: then nothing is announced) and
// leaves the previous room after the grace period if no other connection
// of theirs is in it. A bad name (CheckRoom) changes nothing; a closed
// connection returns ErrClosed.
func (c *Conn) SetRoom(room string) error {
	if room != "" {
		if err := CheckRoom(room); err != nil {
			return err
		}
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || c.closed.Load() {
		return ErrClosed
	}
	if room == c.room {
		return nil
	}
	id := c.us.user.ID
	e.leaveRoom(c, id)
	if room != "" {
		e.joinRoom(c, id, room)
	}
	return nil
}

// Room returns the room the connection is in, or "".
func (c *Conn) Room() string {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.room
}

// joinRoom puts c, a connection of user id, in room. Caller must hold e.mu.
func (e *Engine) joinRoom(c *Conn, id int64, room string) {
	c.room = room
	members := e.rooms[room]
	if members == nil {
		members = map[int64]*roomMember{}
		e.rooms[room] = members
	}
	m := members[id]
	if m == nil {
		members[id] = &roomMember{conns: 1, since: e.clock.Now(), user: c.us.user}
		if e.userRooms[id] == nil {
			e.userRooms[id] = map[string]struct{}{}
		}
		e.userRooms[id][room] = struct{}{}
		e.emitRoom(RoomEvent{Room: room, UserID: id, PublicID: c.us.user.PublicID, In: true})
		return
	}
	if m.grace != nil { // back within the grace period: nobody saw them go
		m.grace.Stop()
		m.grace = nil
		m.gen++
	}
	m.conns++
}

// leaveRoom takes c, a connection of user id, out of its room, if any. The
// user leaves the room after the grace period when it was their last
// connection there. Caller must hold e.mu.
func (e *Engine) leaveRoom(c *Conn, id int64) {
	room := c.room
	if room == "" {
		return
	}
	c.room = ""
	m := e.rooms[room][id]
	if m == nil {
		return
	}
	if m.conns--; m.conns > 0 {
		return
	}
	if e.grace <= 0 || e.closed {
		e.removeMember(room, id)
		return
	}
	m.gen++
	gen := m.gen
	m.grace = e.clock.AfterFunc(e.grace, func() { e.roomGraceExpired(room, id, m, gen) })
}

func (e *Engine) roomGraceExpired(room string, id int64, m *roomMember, gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || m.gen != gen || m.conns > 0 || e.rooms[room][id] != m {
		return
	}
	m.grace = nil
	e.removeMember(room, id)
}

// removeMember takes user id out of room and announces it. Caller must
// hold e.mu.
func (e *Engine) removeMember(room string, id int64) {
	members := e.rooms[room]
	public := members[id].user.PublicID
	delete(members, id)
	if len(members) == 0 {
		delete(e.rooms, room)
	}
	if rs := e.userRooms[id]; rs != nil {
		delete(rs, room)
		if len(rs) == 0 {
			delete(e.userRooms, id)
		}
	}
	e.emitRoom(RoomEvent{Room: room, UserID: id, PublicID: public, In: false})
}

// closeRooms forgets every room and stops their timers (Engine.Close).
// Nothing is announced. Caller must hold e.mu.
func (e *Engine) closeRooms() {
	for _, members := range e.rooms {
		for _, m := range members {
			if m.grace != nil {
				m.grace.Stop()
			}
		}
	}
	clear(e.rooms)
	clear(e.userRooms)
	for w := range e.roomWatches {
		e.dropWatch(w)
	}
}

// RoomMembers returns every user in room (including during the grace
// period after they left, and hidden users: filter with Status.Hidden or
// CanSee), ordered by username (case-insensitive).
func (e *Engine) RoomMembers(room string) []Status {
	if e.roomDir != nil {
		ids := e.roomDir.RoomMemberIDs(room)
		out := make([]Status, 0, len(ids))
		for _, id := range ids {
			if st, ok := e.State(id); ok {
				out = append(out, st)
			}
		}
		sortStatuses(out)
		return out
	}
	e.mu.Lock()
	out := make([]Status, 0, len(e.rooms[room]))
	for id := range e.rooms[room] {
		if us := e.users[id]; us != nil {
			out = append(out, e.status(us))
		}
	}
	e.mu.Unlock()
	sortStatuses(out)
	return out
}

// RoomMemberIDs returns the ids of the users in room (see RoomMembers),
// in no particular order: cheaper than RoomMembers when only ids matter.
func (e *Engine) RoomMemberIDs(room string) []int64 {
	if e.roomDir != nil {
		return e.roomDir.RoomMemberIDs(room)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]int64, 0, len(e.rooms[room]))
	for id := range e.rooms[room] {
		out = append(out, id)
	}
	return out
}

// InRoom reports whether the user is in room (see RoomMembers).
func (e *Engine) InRoom(room string, userID int64) bool {
	if e.roomDir != nil {
		_, online := e.State(userID)
		return online && e.roomDir.InRoom(room, userID)
	}
	return e.LocalInRoom(room, userID)
}

// LocalInRoom is InRoom from this engine's own connections only.
func (e *Engine) LocalInRoom(room string, userID int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.rooms[room][userID]
	return ok && e.users[userID] != nil
}

// RoomsOf returns the rooms the user is in, sorted.
func (e *Engine) RoomsOf(userID int64) []string {
	if e.roomDir != nil {
		return e.roomDir.RoomsOf(userID)
	}
	e.mu.Lock()
	out := make([]string, 0, len(e.userRooms[userID]))
	for room := range e.userRooms[userID] {
		out = append(out, room)
	}
	e.mu.Unlock()
	sort.Strings(out)
	return out
}

// RoomCounts returns how many rooms have members and how many memberships
// (user, room) there are.
func (e *Engine) RoomCounts() (rooms, members int) {
	if e.roomDir != nil {
		return e.roomDir.RoomCounts()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.rooms {
		members += len(m)
	}
	return len(e.rooms), members
}

// LocalRoomMembers returns every (room, user) membership held by this
// engine's own connections (or in their grace period here), as entries.
func (e *Engine) LocalRoomMembers() []RoomEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []RoomEvent
	for room, members := range e.rooms {
		for id, m := range members {
			out = append(out, RoomEvent{Room: room, UserID: id, PublicID: m.user.PublicID, In: true})
		}
	}
	return out
}

// sortStatuses orders by username (case-insensitive), then id: the
// order of Online.
func sortStatuses(out []Status) {
	slices.SortFunc(out, func(a, b Status) int {
		return byName(strings.ToLower(a.Username), a.UserID, strings.ToLower(b.Username), b.UserID)
	})
}
