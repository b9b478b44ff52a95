package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/presencehq/presence/handlers"
)

// TestFriends_Visibility: friends see a user who shows their presence to
// everyone or to friends, and never one who is invisible or shows nobody:
// not in the friends list (nor their last seen), not in the original
// app's paginated list, not on the friends widget's stream.
func TestFriends_Visibility(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, aliceTok := ts.MustCreateUser(t, "alice")
	bob, bobTok := ts.MustCreateUser(t, "bob")
	ts.befriend(t, alice.ID, bob.ID)
	stream := ts.mustFriendsStream(t, aliceTok, "?scope=friends")
	ws := ts.MustDial(t, bobTok)
	defer ws.conn.Close()
	if ev := nextNamed(t, stream, "friends-delta"); !strings.Contains(ev.data, `data-user-id="`+itoa(bob.ID)+`"`) {
		t.Fatalf("bob online: %s", ev.data)
	}
	setStatus := func(t *testing.T, body string) {
		t.Helper()
		h := bearer(bobTok)
		h.Set("Content-Type", "application/json")
		if st, b := do(t, nil, http.MethodPut, ts.URL+"/api/users/me/status/", body, h); st != 200 {
			t.Fatalf("PUT status %s: %d %s", body, st, b)
		}
	}
	friendsSee := func(t *testing.T) (online bool, lastSeen *string) {
		t.Helper()
		st, body := do(t, nil, http.MethodGet, ts.URL+"/api/friends/", "", bearer(aliceTok))
		var fs []struct {
			IsOnline bool    `json:"is_online"`
			LastSeen *string `json:"last_seen"`
		}
		if err := json.Unmarshal([]byte(body), &fs); st != 200 || err != nil || len(fs) != 1 {
			t.Fatalf("GET /api/friends/: %d %s", st, body)
		}
		st, page := do(t, nil, http.MethodGet, ts.URL+"/api/auth/friends/", "", bearer(aliceTok))
		var p struct {
			Results []struct {
				Friend struct {
					IsOnline bool `json:"is_online"`
				}
			}
		}
		if err := json.Unmarshal([]byte(page), &p); st != 200 || err != nil || len(p.Results) != 1 || p.Results[0].Friend.IsOnline != fs[0].IsOnline {
			t.Fatalf("GET /api/auth/friends/: %d %s, against %s", st, page, body)
		}
		return fs[0].IsOnline, fs[0].LastSeen
	}

	t.Run("Nobody", func(t *testing.T) {
		setStatus(t, `{"visibility":"nobody"}`)
		if ev := nextNamed(t, stream, "friends-delta"); !strings.Contains(ev.data, "delete:") {
			t.Fatalf("bob hidden from friends: %s", ev.data)
		}
		if on, seen := friendsSee(t); on || seen != nil {
			t.Fatalf("friend sees online=%v last_seen=%v of a user who shows nobody", on, *seen)
		}
	})
	t.Run("Friends", func(t *testing.T) {
		setStatus(t, `{"visibility":"friends"}`)
		if on, _ := friendsSee(t); !on {
			t.Fatal("a friend does not see a user who shows friends")
		}
	})
	t.Run("Invisible", func(t *testing.T) {
		setStatus(t, `{"mode":"invisible"}`)
		if ev := nextNamed(t, stream, "friends-delta"); !strings.Contains(ev.data, "delete:") {
			t.Fatalf("bob invisible: %s", ev.data)
		}
		if on, _ := friendsSee(t); on {
			t.Fatal("a friend sees an invisible user online")
		}
	})
}
