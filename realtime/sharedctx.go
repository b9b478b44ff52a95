package realtime

import (
	"context"
	"runtime"
	"sync"
	"weak"
)

// sharedContexts hands out one context per key (a token, a user), shared
// by every connection watching that key, and cancels it on demand. It
// holds each context only weakly: once every connection holding it has
// ended, the context is garbage and its entry is dropped, so neither the
// hub nor the broker reports when a connection ends. It is the common part
// of Revocations and UserEnds.
//
// Its methods must be called with *mu held. mu is the owner's lock, so an
// owner's own check (was this key ended after the connection was
// authenticated?) and the hand-out are one step.
type sharedContexts struct {
	mu *sync.Mutex
	m  map[int64]weak.Pointer[sharedContext]
}

// sharedContext is the context shared by the connections of one key. It
// is its own type so that the connections' contexts, derived from it, keep
// it (and so its entry) alive.
type sharedContext struct {
	context.Context
	cancel context.CancelCauseFunc
}

type sharedEntry struct {
	key int64
	wp  weak.Pointer[sharedContext]
}

func newSharedContexts(mu *sync.Mutex) *sharedContexts {
	return &sharedContexts{mu: mu, m: map[int64]weak.Pointer[sharedContext]{}}
}

// get returns key's live context, making one if there is none. Caller
// holds mu.
func (s *sharedContexts) get(key int64) context.Context {
	if wp, ok := s.m[key]; ok {
		if c := wp.Value(); c != nil {
			return c
		}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &sharedContext{Context: ctx, cancel: cancel}
	wp := weak.Make(c)
	s.m[key] = wp
	runtime.AddCleanup(c, s.forget, sharedEntry{key, wp})
	return c
}

// take removes key's context and returns its cancel function, or nil when
// no connection holds one. Caller holds mu and calls the function after
// releasing it.
func (s *sharedContexts) take(key int64) context.CancelCauseFunc {
	wp, ok := s.m[key]
	if !ok {
		return nil
	}
	delete(s.m, key)
	if c := wp.Value(); c != nil {
		return c.cancel
	}
	return nil
}

// len returns how many keys have an entry (those of ended connections
// count until the next GC). Caller holds mu.
func (s *sharedContexts) len() int { return len(s.m) }

// forget drops the entry of a context that became garbage, unless a newer
// context took its place. The runtime calls it; it takes mu itself.
func (s *sharedContexts) forget(e sharedEntry) {
	s.mu.Lock()
	if s.m[e.key] == e.wp {
		delete(s.m, e.key)
	}
	s.mu.Unlock()
}

// doneContext returns a context already cancelled with cause.
func doneContext(cause error) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return ctx
}
