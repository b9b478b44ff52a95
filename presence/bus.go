package presence

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event says that a user's presence changed. Events are per user, never per
// connection: a second tab does not produce one.
type Event struct {
	UserID   int64
	Username string
	// PublicID is the user's User.PublicID (empty: UserID is shown).
	PublicID string
	Online   bool
	// LastSeen is when the user's last connection ended for an offline
	// event, and when the user came online for an online event.
	LastSeen time.Time
	// Mode is the user's mode as the receivers see it: online, away, dnd,
	// offline; invisible only in a ScopeSelf event.
	Mode Mode
	// StatusText and StatusEmoji are the custom status (empty: none).
	StatusText, StatusEmoji string
	// Scope says who may receive the event: everyone, everyone but the
	// user (what others see of a hidden user), or only the user.
	Scope Scope
	// Remote is set when another node decided the change (several nodes
	// sharing presence): whatever must happen once per change, such as a
	// webhook, is that node's job.
	Remote bool
}

// Bus fans events out to subscribers. Implementations must never block the
// publisher on a slow subscriber. The in-process LocalBus is the default; a
// bus shared by several nodes can implement the same interface.
type Bus interface {
	// Publish delivers e to every current subscriber.
	Publish(e Event)
	// Subscribe registers a subscriber whose channel holds up to buffer
	// events. Caller must call Close on the returned Subscription.
	Subscribe(buffer int) *Subscription
}

// Subscription is one subscriber of a Bus. Events arrive on C. C is closed
// when the subscriber calls Close or when the bus drops the subscriber
// because it fell behind; Dropped tells the two apart.
type Subscription struct {
	C <-chan Event

	ch      chan Event
	sent    atomic.Uint64
	once    sync.Once
	dropped bool
	cancel  func(*Subscription)
}

// Sent returns how many events the bus has put on C (or is putting on
// it, at this instant). Sent minus the events a receiver has taken is how
// many it has yet to handle, including one handed over to a receiver
// that has not run since, which len(C) does not count.
func (s *Subscription) Sent() uint64 { return s.sent.Load() }

// Close unsubscribes and closes C. It is safe to call more than once.
func (s *Subscription) Close() { s.cancel(s) }

// Dropped reports whether the bus cut this subscriber off because its buffer
// was full. It is meaningful once C has been closed.
func (s *Subscription) Dropped() bool { return s.dropped }

// LocalBus is an in-process Bus. A subscriber whose buffer is full when an
// event is published is dropped (its channel closed) rather than allowed to
// delay the publisher or other subscribers; the consumer is expected to
// reconnect and resynchronise from a fresh snapshot.
type LocalBus struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// NewLocalBus returns an empty LocalBus.
func NewLocalBus() *LocalBus {
	return &LocalBus{subs: make(map[*Subscription]struct{})}
}

// Subscribe implements Bus.
func (b *LocalBus) Subscribe(buffer int) *Subscription {
	ch := make(chan Event, buffer)
	s := &Subscription{C: ch, ch: ch, cancel: b.unsubscribe}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish implements Bus.
func (b *LocalBus) Publish(e Event) {
	var slow []*Subscription
	b.mu.RLock()
	for s := range b.subs {
		// Counted before it is sent, so that Sent never trails what a
		// receiver has already taken.
		s.sent.Add(1)
		select {
		case s.ch <- e:
		default:
			s.sent.Add(^uint64(0))
			slow = append(slow, s)
		}
	}
	b.mu.RUnlock()
	if len(slow) == 0 {
		return
	}
	b.mu.Lock()
	for _, s := range slow {
		if _, ok := b.subs[s]; ok {
			s.dropped = true
			b.remove(s)
		}
	}
	b.mu.Unlock()
}

// Len returns the number of current subscribers.
func (b *LocalBus) Len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

func (b *LocalBus) unsubscribe(s *Subscription) {
	b.mu.Lock()
	b.remove(s)
	b.mu.Unlock()
}

// remove deletes s and closes its channel. Caller must hold b.mu for writing,
// which guarantees no Publish is sending on the channel.
func (b *LocalBus) remove(s *Subscription) {
	delete(b.subs, s)
	s.once.Do(func() { close(s.ch) })
}
