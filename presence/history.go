package presence

import "time"

// Device kinds of an online session (see SessionRecorder).
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
	DeviceUnknown = "unknown"
)

// SessionRecorder records users' online sessions, for their history. A
// session runs from the user coming online as their friends see them (a
// first connection, or leaving invisible while connected) to going offline
// (the end of the grace period, dated when the last connection ended; or
// going invisible). A reload within the grace period is therefore one
// session, and time spent invisible is in none. Calls happen with the
// engine's lock held and must not block on I/O; Batcher is the
// implementation.
type SessionRecorder interface {
	// RecordSessionStart records that a session of the user started at
	// at, on a device of the given kind (DeviceDesktop ...).
	RecordSessionStart(userID int64, at time.Time, device string)
	// RecordSessionEnd records that the user's open session ended at at.
	RecordSessionEnd(userID int64, at time.Time)
}

// SessionChange is one pending change to a user's history: a session that
// started at Start (and, when End is set too, ended before it was written),
// or, with Start zero, the end at End of the user's open session.
type SessionChange struct {
	Start, End time.Time
	// Device is the kind of the session's first connection.
	Device string
}

// DeviceKinder is a Peer that knows what kind of device it runs on
// (DeviceDesktop, DeviceMobile, DeviceTablet or DeviceUnknown). A session
// takes the kind of the connection that started it.
type DeviceKinder interface {
	DeviceKind() string
}

// deviceOf is the kind of device of a peer.
func deviceOf(p Peer) string {
	if dk, ok := p.(DeviceKinder); ok {
		if k := dk.DeviceKind(); k != "" {
			return k
		}
	}
	return DeviceUnknown
}

// inHistory reports whether the user's online time now goes into their
// history: what their friends would see, so neither while invisible nor
// while they show their presence to nobody. Caller must hold e.mu.
func (e *Engine) inHistory(us *userState) bool {
	s := e.settingsFor(us.user.ID).Normalized()
	return s.Mode != ModeInvisible && s.Visibility != VisibleNobody
}

// syncSession starts or ends the user's session so that it matches
// inHistory, at now. Caller must hold e.mu.
func (e *Engine) syncSession(us *userState, now time.Time) {
	if e.sessions == nil {
		return
	}
	switch want := e.inHistory(us); {
	case want && !us.session:
		us.session, us.sessionStart = true, now
		e.sessions.RecordSessionStart(us.user.ID, now, us.device)
	case !want && us.session:
		e.endSession(us, now)
	}
}

// endSession ends the user's open session at at (never before it
// started). Caller must hold e.mu.
func (e *Engine) endSession(us *userState, at time.Time) {
	if e.sessions == nil || !us.session {
		return
	}
	us.session = false
	if at.Before(us.sessionStart) {
		at = us.sessionStart
	}
	e.sessions.RecordSessionEnd(us.user.ID, at)
}

// RecordSessionStart implements SessionRecorder.
func (b *Batcher) RecordSessionStart(userID int64, at time.Time, device string) {
	b.mu.Lock()
	r := b.entry(userID)
	r.Sessions = append(r.Sessions, SessionChange{Start: at, Device: device})
	b.mu.Unlock()
}

// RecordSessionEnd implements SessionRecorder. The end of a session that
// started in the same batch is folded into it: one row is written.
func (b *Batcher) RecordSessionEnd(userID int64, at time.Time) {
	b.mu.Lock()
	r := b.entry(userID)
	if n := len(r.Sessions); n > 0 && !r.Sessions[n-1].Start.IsZero() && r.Sessions[n-1].End.IsZero() {
		r.Sessions[n-1].End = at
	} else {
		r.Sessions = append(r.Sessions, SessionChange{End: at})
	}
	b.mu.Unlock()
}
