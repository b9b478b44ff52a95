package handlers

import (
	"context"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/views"
)

// FriendChecker says whether two users are friends, for users who show
// their presence to friends only (Deps.Friends; the Store by default).
type FriendChecker interface {
	AreFriends(ctx context.Context, a, b int64) (bool, error)
}

// viewerCanSee reports whether viewer may see st as online (see
// presence.CanSee); a failing friend check counts as "no".
func viewerCanSee(ctx context.Context, friends FriendChecker, viewer int64, st presence.Status) bool {
	return presence.CanSee(viewer, st, func() bool { return areFriends(ctx, friends, viewer, st.UserID) })
}

// mayShowLastSeen reports whether viewer may see when owner, whose
// settings are s, was last seen.
func mayShowLastSeen(ctx context.Context, friends FriendChecker, viewer, owner int64, s presence.Settings) bool {
	switch s.Normalized().Visibility {
	case presence.VisibleEveryone:
		return true
	case presence.VisibleFriends:
		return viewer == owner || areFriends(ctx, friends, viewer, owner)
	}
	return viewer == owner
}

func areFriends(ctx context.Context, friends FriendChecker, a, b int64) bool {
	if friends == nil || a == 0 || b == 0 {
		return false
	}
	ok, err := friends.AreFriends(ctx, a, b)
	return err == nil && ok
}

// agoText is "last seen" in words: "5 minutes ago", or "just now".
func agoText(now, then time.Time) string { return views.Ago(now, then, " ago") }
