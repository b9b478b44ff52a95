package realtime

import (
	"sync"
	"sync/atomic"

	"github.com/presencehq/presence/presence"
)

// eventLog holds, for the hub's event sockets, the latest status event of
// every user that changed since the slowest socket last caught up, in the
// order of those latest changes. A socket keeps only a cursor: the number
// of the last change it was sent. Catching up means writing every entry
// after its cursor, oldest first — one frame per user however many times
// that user changed meanwhile. So a socket that falls behind costs no
// memory of its own and is never cut off for it: it receives the latest
// state of each user that changed, in order, instead of every step
// (docs/PROTOCOL.md, "Merged events"). A socket that keeps up receives
// every event, as there is nothing to merge.
//
// A user may have two entries: a hidden user's own sockets see the truth
// (presence.ScopeSelf), everyone else what they are shown
// (presence.ScopeOthers). An event for everyone (presence.ScopeAll)
// replaces both.
type eventLog struct {
	mu          sync.RWMutex
	first, last *logEntry
	n           int
	// users maps a user to its entries: [viewOthers] is what other users'
	// sockets are sent, [viewSelf] what the user's own are; one entry of
	// view viewAll fills both.
	users map[int64]*[2]*logEntry

	head atomic.Uint64 // seq of the newest entry; read without the lock
}

// Entry views: which sockets an entry is for.
const (
	viewOthers = 0
	viewSelf   = 1
	viewAll    = 2
)

type logEntry struct {
	seq        uint64
	user       int64
	view       int
	frame      []byte // the whole WebSocket frame, shared by every socket
	prev, next *logEntry
	// dead: superseded or trimmed. A dead entry keeps its next, so a
	// socket that stopped at it (since's hint) still walks on from there
	// to every later entry: next always leads to later entries, and an
	// entry leaves the log only once a later one is in it (add appends
	// before it releases), or, trimmed, once every socket is past it.
	dead bool
}

func newEventLog() *eventLog { return &eventLog{users: map[int64]*[2]*logEntry{}} }

// add records the latest event of user for the sockets scope selects and
// returns its sequence number. Entries it supersedes are dropped.
func (l *eventLog) add(user int64, scope presence.Scope, frame []byte) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := l.head.Load() + 1
	slot := l.users[user]
	if slot == nil {
		slot = &[2]*logEntry{}
		l.users[user] = slot
	}
	e := &logEntry{seq: seq, user: user, frame: frame, prev: l.last}
	if l.last != nil {
		l.last.next = e
	} else {
		l.first = e
	}
	l.last = e
	l.n++
	switch scope {
	case presence.ScopeSelf:
		e.view = viewSelf
		l.release(slot, viewSelf)
		slot[viewSelf] = e
	case presence.ScopeOthers:
		e.view = viewOthers
		l.release(slot, viewOthers)
		slot[viewOthers] = e
	default:
		e.view = viewAll
		l.release(slot, viewSelf)
		l.release(slot, viewOthers)
		slot[viewSelf], slot[viewOthers] = e, e
	}
	l.head.Store(seq)
	return seq
}

// release takes view v away from the entry that holds it: an entry for
// both views keeps the other one, an entry for v alone leaves the log.
func (l *eventLog) release(slot *[2]*logEntry, v int) {
	e := slot[v]
	if e == nil {
		return
	}
	slot[v] = nil
	if e.view == viewAll {
		e.view = 1 - v
		return
	}
	l.unlink(e)
}

func (l *eventLog) unlink(e *logEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.first = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.last = e.prev
	}
	e.prev = nil
	e.dead = true // e.next stays: see logEntry.dead
	l.n--
}

// since appends to bufs the frames after cursor that the sockets of user
// are sent, oldest first, until their size reaches limit or their number
// maxFrames (at least one frame is taken), and returns them with the
// sequence number the socket has then caught up to and the entry it
// stopped at. hint is the entry the socket's previous call stopped at
// (nil at first): the walk goes on from there, so its cost is what the
// socket is sent, not the length of the log. With nothing new it returns
// bufs, cursor and hint.
func (l *eventLog) since(cursor uint64, hint *logEntry, user int64, bufs [][]byte, limit, maxFrames int) ([][]byte, uint64, *logEntry) {
	if l.head.Load() <= cursor {
		return bufs, cursor, hint
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	var e *logEntry
	if hint != nil && (!hint.dead || hint.next != nil) {
		e = hint.next
	} else {
		// No hint, or one trimmed off the end of the log: the first
		// entry after cursor, walking back from the end (a socket that
		// keeps up wants the newest).
		e = l.last
		for e != nil && e.prev != nil && e.prev.seq > cursor {
			e = e.prev
		}
	}
	size := 0
	to := cursor
	for ; e != nil; e = e.next {
		if e.dead || e.seq <= cursor {
			continue
		}
		if size > 0 && (size+len(e.frame) > limit || len(bufs) >= maxFrames) {
			break
		}
		to, hint = e.seq, e
		if e.view != viewAll && (e.view == viewSelf) != (e.user == user) {
			continue // the other view of a hidden user
		}
		bufs = append(bufs, e.frame)
		size += len(e.frame)
	}
	return bufs, to, hint
}

// trim drops the entries every socket has been sent: those at or before
// upTo, the smallest cursor of all event sockets.
func (l *eventLog) trim(upTo uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for e := l.first; e != nil && e.seq <= upTo; e = l.first {
		slot := l.users[e.user]
		if slot[viewSelf] == e {
			slot[viewSelf] = nil
		}
		if slot[viewOthers] == e {
			slot[viewOthers] = nil
		}
		if slot[viewSelf] == nil && slot[viewOthers] == nil {
			delete(l.users, e.user)
		}
		l.unlink(e)
	}
}

// len returns how many entries the log holds.
func (l *eventLog) len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.n
}
