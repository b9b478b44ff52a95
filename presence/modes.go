package presence

import (
	"time"
)

// Mode is a user's presence mode, as chosen by the user or derived by the
// engine (automatic away).
type Mode string

// Modes. A user chooses ModeOnline (the default: the engine then shows
// them away after Config.AwayAfter without activity), ModeAway (away until
// they choose otherwise), ModeDND or ModeInvisible. ModeOffline is never
// chosen: it is the mode shown for a user who is not online, or whom the
// viewer may not see.
const (
	ModeOnline    Mode = "online"
	ModeAway      Mode = "away"
	ModeDND       Mode = "dnd"
	ModeInvisible Mode = "invisible"
	ModeOffline   Mode = "offline"
)

// Valid reports whether m is a mode a user may choose.
func (m Mode) Valid() bool {
	switch m {
	case ModeOnline, ModeAway, ModeDND, ModeInvisible:
		return true
	}
	return false
}

// Visibility says who may see a user's online state and last seen.
type Visibility string

// Visibilities. VisibleFriends means the people the user is friends with;
// the engine treats it like VisibleNobody in everything shared by all
// viewers (the widget list, WebSocket events), and the HTTP layer asks a
// friend checker for per-viewer answers.
const (
	VisibleEveryone Visibility = "everyone"
	VisibleFriends  Visibility = "friends"
	VisibleNobody   Visibility = "nobody"
)

// Valid reports whether v is a known visibility.
func (v Visibility) Valid() bool {
	switch v {
	case VisibleEveryone, VisibleFriends, VisibleNobody:
		return true
	}
	return false
}

// Settings are what a user chose about their presence. They are kept by
// the engine for every user who changed them, online or not, and persisted
// through the Recorder (see SettingsRecorder).
type Settings struct {
	// Mode is the chosen mode: ModeOnline (automatic), ModeAway (manual),
	// ModeDND or ModeInvisible. Empty means ModeOnline.
	Mode Mode
	// Text (at most MaxStatusText characters) and Emoji (one emoji) are the
	// custom status; either may be empty.
	Text, Emoji string
	// Expires is when Text and Emoji are cleared; zero means never.
	Expires time.Time
	// Visibility says who may see the user's online state and last seen.
	// Empty means VisibleEveryone.
	Visibility Visibility
}

// MaxStatusText is the longest custom status text, in characters.
const MaxStatusText = 100

// Normalized returns s with empty fields set to their defaults and an
// expiry without a status dropped.
func (s Settings) Normalized() Settings {
	if s.Mode == "" {
		s.Mode = ModeOnline
	}
	if s.Visibility == "" {
		s.Visibility = VisibleEveryone
	}
	if s.Text == "" && s.Emoji == "" {
		s.Expires = time.Time{}
	}
	if !s.Expires.IsZero() {
		s.Expires = s.Expires.UTC()
	}
	return s
}

// IsDefault reports whether s is what a user who never chose anything has.
func (s Settings) IsDefault() bool {
	return s.Normalized() == Settings{Mode: ModeOnline, Visibility: VisibleEveryone}
}

// Hidden reports whether a user with these settings is shown offline to
// viewers in general: invisible, or visible only to some.
func (s Settings) Hidden() bool {
	s = s.Normalized()
	return s.Mode == ModeInvisible || s.Visibility != VisibleEveryone
}

// SettingsRecorder is a Recorder that also persists presence settings. The
// engine uses it when its Recorder implements it (Batcher does).
type SettingsRecorder interface {
	Recorder
	// RecordSettings records the user's settings, replacing earlier ones.
	RecordSettings(userID int64, s Settings)
}

// Scope says who may receive an Event.
type Scope uint8

// Scopes. ScopeAll is the zero value.
const (
	// ScopeAll events go to every subscriber.
	ScopeAll Scope = iota
	// ScopeOthers events go to everyone but the user the event is about:
	// it is what others see (offline) of a hidden user; the user gets a
	// ScopeSelf event with the truth.
	ScopeOthers
	// ScopeSelf events go only to the user's own connections: a change
	// that nobody else may see (an invisible user's own status).
	ScopeSelf
)

// view is how a user appears, to others or to themselves: what an Event
// carries. Two views that compare equal need no event between them.
type view struct {
	online      bool
	mode        Mode
	text, emoji string
}

var offlineView = view{mode: ModeOffline}

// settingsFor returns the user's settings. Caller must hold e.mu.
func (e *Engine) settingsFor(id int64) Settings {
	if s, ok := e.settings[id]; ok {
		return s.s
	}
	return Settings{Mode: ModeOnline, Visibility: VisibleEveryone}
}

// effectiveMode is the mode the user is in now: the chosen one, or away
// when they chose online and have been idle. Caller must hold e.mu.
func (e *Engine) effectiveMode(us *userState, s Settings) Mode {
	if s.Mode == ModeOnline && us.away.Load() {
		return ModeAway
	}
	return s.Mode
}

// views returns how an online user appears to others and to themselves.
// Caller must hold e.mu.
func (e *Engine) views(us *userState) (public, self view) {
	s := e.settingsFor(us.user.ID)
	mode := e.effectiveMode(us, s)
	self = view{online: mode != ModeInvisible, mode: mode, text: s.Text, emoji: s.Emoji}
	if s.Hidden() {
		return offlineView, self
	}
	return self, self
}

// publishViews announces what changed in how us appears since it was last
// announced, and remembers the new views. A hidden user's change reaches
// only their own connections; a user becoming hidden is seen going offline
// by others, once. Caller must hold e.mu.
func (e *Engine) publishViews(us *userState) {
	pub, self := e.views(us)
	pubChanged, selfChanged := pub != us.pub, self != us.self
	if pubChanged && !pub.online || selfChanged && !self.online {
		us.hiddenAt = e.clock.Now()
	}
	us.pub, us.self = pub, self
	switch {
	case pubChanged && pub == self:
		e.bus.Publish(e.event(us, pub, ScopeAll))
		return
	case pubChanged:
		e.bus.Publish(e.event(us, pub, ScopeOthers))
	}
	if selfChanged && pub != self {
		e.bus.Publish(e.event(us, self, ScopeSelf))
	}
}

// event builds the event that shows v. Caller must hold e.mu.
func (e *Engine) event(us *userState, v view, scope Scope) Event {
	lastSeen := us.since
	if !v.online {
		lastSeen = us.hiddenAt
	}
	return Event{UserID: us.user.ID, Username: us.user.Username, PublicID: us.user.PublicID,
		Online: v.online, LastSeen: lastSeen, Mode: v.mode, StatusText: v.text, StatusEmoji: v.emoji, Scope: scope}
}

// Settings returns the user's presence settings (the defaults when they
// never chose any).
func (e *Engine) Settings(userID int64) Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.settingsFor(userID)
}

// LoadSettings installs settings read from storage at start-up, before any
// connection. They are not recorded again, except a status whose expiry
// has passed meanwhile, which is cleared.
func (e *Engine) LoadSettings(all map[int64]Settings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	for id, s := range all {
		expired := !s.Expires.IsZero() && !s.Expires.After(now)
		e.setSettings(id, s, expired)
	}
}

// SetSettings replaces the user's presence settings, persists them and, when
// the user is online, announces the change to whoever may see it. It
// returns the settings as stored (normalized; a status whose expiry has
// passed already cleared).
func (e *Engine) SetSettings(userID int64, s Settings) Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.setSettings(userID, s, true)
}

// ApplySettings installs settings another node recorded (they are already
// stored) and announces the change like SetSettings, without recording
// them again.
func (e *Engine) ApplySettings(userID int64, s Settings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setSettings(userID, s, false)
}

// setSettings is SetSettings, recording the settings when record is set.
// Caller must hold e.mu.
func (e *Engine) setSettings(userID int64, s Settings, record bool) Settings {
	now := e.clock.Now()
	s = s.Normalized()
	if !s.Expires.IsZero() && !s.Expires.After(now) {
		s.Text, s.Emoji, s.Expires = "", "", time.Time{}
	}
	old := e.settings[userID]
	if old != nil && old.expiry != nil {
		old.expiry.Stop()
	}
	if s.IsDefault() {
		delete(e.settings, userID)
	} else {
		st := &settingsState{s: s}
		if !s.Expires.IsZero() {
			st.expiry = e.clock.AfterFunc(s.Expires.Sub(now), func() { e.expireStatus(userID, st) })
		}
		e.settings[userID] = st
	}
	if sr, ok := e.rec.(SettingsRecorder); ok && record {
		sr.RecordSettings(userID, s)
	}
	if us := e.users[userID]; us != nil && !e.closed {
		e.applyHidden(us, now)
		e.publishViews(us)
		e.syncSession(us, now)
	}
	return s
}

// applyHidden keeps an online user's invisibility in step with their
// settings: going invisible records them offline (their last seen frozen
// at this moment), coming back records them online. Caller must hold e.mu.
func (e *Engine) applyHidden(us *userState, now time.Time) {
	inv := e.settingsFor(us.user.ID).Mode == ModeInvisible
	if inv == us.invisible.Load() {
		return
	}
	us.invisible.Store(inv)
	if inv {
		e.rec.RecordStatus(us.user.ID, false, now)
	} else {
		e.rec.RecordStatus(us.user.ID, true, time.Time{})
		e.rec.RecordActivity(us.user.ID, now)
	}
}

// expireStatus clears a custom status at its expiry, unless it was
// replaced meanwhile.
func (e *Engine) expireStatus(userID int64, st *settingsState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.settings[userID] != st {
		return
	}
	s := st.s
	s.Text, s.Emoji, s.Expires = "", "", time.Time{}
	e.setSettings(userID, s, true)
}

// settingsState is a user's settings with the timer that clears their
// status at its expiry.
type settingsState struct {
	s      Settings
	expiry Timer
}

// checkAway marks away every online user idle for AwayAfter. Caller must
// hold e.mu.
func (e *Engine) checkAway(now time.Time) {
	if e.awayAfter <= 0 {
		return
	}
	cutoff := now.Add(-e.awayAfter).UnixNano()
	for _, us := range e.users {
		if !us.away.Load() && us.lastActivity.Load() <= cutoff && len(us.conns) > 0 {
			us.away.Store(true)
			// Activity stores its time, then looks at away: if it ran
			// between the check above and the store, its time shows now
			// (and it saw away unset, so it will not end the away itself).
			if us.lastActivity.Load() > cutoff {
				us.away.Store(false)
				continue
			}
			e.publishViews(us)
		}
	}
}

// back ends a user's automatic away after activity.
func (e *Engine) back(us *userState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.users[us.user.ID] != us || !us.away.Load() {
		return
	}
	us.away.Store(false)
	e.publishViews(us)
}

// SeenByFriends reports whether the user's friends may see them online:
// they are not invisible and show their presence to someone.
func (s Status) SeenByFriends() bool {
	return s.Mode != ModeInvisible && s.Visibility != VisibleNobody
}

// LastSeenHidden reports whether the user hides when they were last seen
// from everyone but themselves (visibility "nobody").
func (s Settings) LastSeenHidden() bool { return s.Normalized().Visibility == VisibleNobody }

// CanSee reports whether viewer may see st as online, given whether the
// two are friends (asked only when it matters): always themselves;
// nobody an invisible user; friends a friends-only user; everyone else a
// user visible to everyone.
func CanSee(viewer int64, st Status, friends func() bool) bool {
	switch {
	case viewer == st.UserID:
		return true
	case st.Mode == ModeInvisible:
		return false
	case st.Visibility == VisibleFriends:
		return viewer != 0 && friends()
	}
	return st.Visibility != VisibleNobody
}
