package store_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/presencehq/presence/store"
)

// TestFriends_RequestAcceptRemove walks the friends model: a request, no
// duplicate, none to oneself, accept, symmetric friendship and removal.
func TestFriends_RequestAcceptRemove(t *testing.T) {
	db := MustOpenDB(t)
	alice, bob, carol := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")

	if _, err := db.RequestFriend(ctx, alice.ID, alice.ID); !errors.Is(err, store.ErrSelfFriend) {
		t.Fatalf("request to self: %v", err)
	}
	if _, err := db.RequestFriend(ctx, alice.ID, 9999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("request to nobody: %v", err)
	}
	res, err := db.RequestFriend(ctx, alice.ID, bob.ID)
	if err != nil || res.Accepted || res.Request.ID == 0 {
		t.Fatalf("request = %+v, %v", res, err)
	}
	if _, err := db.RequestFriend(ctx, alice.ID, bob.ID); !errors.Is(err, store.ErrRequestPending) {
		t.Fatalf("second request: %v", err)
	}
	in, out, err := db.FriendRequests(ctx, bob.ID)
	if err != nil || len(in) != 1 || len(out) != 0 || in[0].ID != res.Request.ID || in[0].Other.Username != "alice" {
		t.Fatalf("bob's requests = %+v, %+v, %v", in, out, err)
	}
	in, out, _ = db.FriendRequests(ctx, alice.ID)
	if len(in) != 0 || len(out) != 1 || out[0].Other.Username != "bob" {
		t.Fatalf("alice's requests = %+v, %+v", in, out)
	}
	// Only the recipient accepts.
	if _, err := db.AcceptFriendRequest(ctx, alice.ID, res.Request.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("sender accepting: %v", err)
	}
	if _, err := db.AcceptFriendRequest(ctx, carol.ID, res.Request.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stranger accepting: %v", err)
	}
	r, err := db.AcceptFriendRequest(ctx, bob.ID, res.Request.ID)
	if err != nil || r.FromID != alice.ID || r.ToID != bob.ID {
		t.Fatalf("accept = %+v, %v", r, err)
	}
	for _, pair := range [][2]int64{{alice.ID, bob.ID}, {bob.ID, alice.ID}} {
		if ok, err := db.AreFriends(ctx, pair[0], pair[1]); !ok || err != nil {
			t.Fatalf("AreFriends%v = %v, %v", pair, ok, err)
		}
	}
	if ok, _ := db.AreFriends(ctx, alice.ID, carol.ID); ok {
		t.Fatal("alice and carol are not friends")
	}
	if ids, _ := db.FriendIDs(ctx, bob.ID); !slices.Equal(ids, []int64{alice.ID}) {
		t.Fatalf("bob's friends = %v", ids)
	}
	if _, err := db.RequestFriend(ctx, bob.ID, alice.ID); !errors.Is(err, store.ErrAlreadyFriends) {
		t.Fatalf("request between friends: %v", err)
	}
	if in, out, _ := db.FriendRequests(ctx, alice.ID); len(in)+len(out) != 0 {
		t.Fatal("accepted request still pending")
	}
	fs, err := db.Friends(ctx, alice.ID)
	if err != nil || len(fs) != 1 || fs[0].Username != "bob" || fs[0].Since.IsZero() {
		t.Fatalf("Friends(alice) = %+v, %v", fs, err)
	}

	// Removing is symmetric, whoever removes.
	if err := db.RemoveFriend(ctx, bob.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.AreFriends(ctx, alice.ID, bob.ID); ok {
		t.Fatal("still friends one way")
	}
	if ids, _ := db.FriendIDs(ctx, alice.ID); len(ids) != 0 {
		t.Fatalf("alice's friends after removal = %v", ids)
	}
	if err := db.RemoveFriend(ctx, bob.ID, alice.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing a non-friend: %v", err)
	}
}

// TestFriends_CrossedRequestsAccept: asking someone who already asked you
// makes you friends, and leaves no request behind.
func TestFriends_CrossedRequestsAccept(t *testing.T) {
	db := MustOpenDB(t)
	alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
	if _, err := db.RequestFriend(ctx, alice.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	res, err := db.RequestFriend(ctx, bob.ID, alice.ID)
	if err != nil || !res.Accepted {
		t.Fatalf("crossed request = %+v, %v; want accepted", res, err)
	}
	if ok, _ := db.AreFriends(ctx, alice.ID, bob.ID); !ok {
		t.Fatal("not friends")
	}
	if in, out, _ := db.FriendRequests(ctx, bob.ID); len(in)+len(out) != 0 {
		t.Fatalf("requests left: %v %v", in, out)
	}
}

// TestFriends_DeclineAndWithdraw: the recipient declines, the sender
// withdraws, a stranger can do neither; then the sender may ask again.
func TestFriends_DeclineAndWithdraw(t *testing.T) {
	db := MustOpenDB(t)
	alice, bob, carol := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")
	res, _ := db.RequestFriend(ctx, alice.ID, bob.ID)
	if _, err := db.DeclineFriendRequest(ctx, carol.ID, res.Request.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stranger declining: %v", err)
	}
	if _, err := db.DeclineFriendRequest(ctx, bob.ID, res.Request.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeclineFriendRequest(ctx, bob.ID, res.Request.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("declining twice: %v", err)
	}
	res, err := db.RequestFriend(ctx, alice.ID, bob.ID)
	if err != nil {
		t.Fatalf("asking again after a decline: %v", err)
	}
	st, _ := db.FriendStateOf(ctx, alice.ID, bob.ID)
	if st.Outgoing != res.Request.ID || st.Friends || st.Incoming != 0 {
		t.Fatalf("state = %+v", st)
	}
	if st, _ := db.FriendStateOf(ctx, bob.ID, alice.ID); st.Incoming != res.Request.ID {
		t.Fatalf("bob's state = %+v", st)
	}
	if _, err := db.DeclineFriendRequest(ctx, alice.ID, res.Request.ID); err != nil {
		t.Fatalf("withdrawing: %v", err)
	}
	if ok, _ := db.AreFriends(ctx, alice.ID, bob.ID); ok {
		t.Fatal("friends after a decline")
	}
}

// TestFriends_SetFriends replaces a user's friends among those keep
// selects, both ways, leaving the others.
func TestFriends_SetFriends(t *testing.T) {
	db := MustOpenDB(t)
	a, b, c, local := MustCreateUser(t, db, "aaa"), MustCreateUser(t, db, "bbb"), MustCreateUser(t, db, "ccc"), MustCreateUser(t, db, "local")
	notLocal := func(u store.User) bool { return u.ID != local.ID }
	res, _ := db.RequestFriend(ctx, local.ID, a.ID)
	db.AcceptFriendRequest(ctx, a.ID, res.Request.ID)
	db.RequestFriend(ctx, c.ID, a.ID) // pending, becomes a friendship

	added, removed, err := db.SetFriends(ctx, a.ID, []int64{b.ID, c.ID, b.ID}, notLocal)
	if err != nil || !slices.Equal(added, []int64{b.ID, c.ID}) || len(removed) != 0 {
		t.Fatalf("SetFriends = %v, %v, %v", added, removed, err)
	}
	if ids, _ := db.FriendIDs(ctx, a.ID); !slices.Equal(ids, sorted(b.ID, c.ID, local.ID)) {
		t.Fatalf("a's friends = %v", ids)
	}
	if ok, _ := db.AreFriends(ctx, c.ID, a.ID); !ok {
		t.Fatal("not symmetric")
	}
	if in, out, _ := db.FriendRequests(ctx, a.ID); len(in)+len(out) != 0 {
		t.Fatal("the pending request between new friends is left")
	}
	added, removed, err = db.SetFriends(ctx, a.ID, []int64{c.ID}, notLocal)
	if err != nil || len(added) != 0 || !slices.Equal(removed, []int64{b.ID}) {
		t.Fatalf("SetFriends = %v, %v, %v", added, removed, err)
	}
	if ok, _ := db.AreFriends(ctx, b.ID, a.ID); ok {
		t.Fatal("b still a's friend")
	}
	if ok, _ := db.AreFriends(ctx, local.ID, a.ID); !ok {
		t.Fatal("the friend keep excludes was removed")
	}
	if _, _, err := db.SetFriends(ctx, a.ID, []int64{a.ID}, notLocal); !errors.Is(err, store.ErrSelfFriend) {
		t.Fatalf("self in the set: %v", err)
	}
}

// TestFriends_Notify stores the opt-in.
func TestFriends_Notify(t *testing.T) {
	db := MustOpenDB(t)
	a := MustCreateUser(t, db, "alice")
	if on, _ := db.FriendNotify(ctx, a.ID); on {
		t.Fatal("on by default")
	}
	for _, on := range []bool{true, true, false, true} {
		if err := db.SetFriendNotify(ctx, a.ID, on); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FriendNotify(ctx, a.ID); got != on {
			t.Fatalf("FriendNotify = %v, want %v", got, on)
		}
	}
	if ids, _ := db.FriendNotifyUsers(ctx); !slices.Equal(ids, []int64{a.ID}) {
		t.Fatalf("FriendNotifyUsers = %v", ids)
	}
}

// TestFriends_AreFriendsUsesIndex: the friends-only visibility check is a
// primary-key probe, never a scan.
func TestFriends_AreFriendsUsesIndex(t *testing.T) {
	SQLiteOnly(t, "reads SQLite's query plan")
	db := MustOpenDB(t)
	plan, err := store.QueryPlan(db, "SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = 1 AND friend_id = 2)")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "PRIMARY KEY") || strings.Contains(plan, "SCAN friendships") {
		t.Fatalf("plan = %q", plan)
	}
}

func sorted(ids ...int64) []int64 {
	slices.Sort(ids)
	return ids
}

// TestFriends_PendingLimit: one user cannot ask everyone.
func TestFriends_PendingLimit(t *testing.T) {
	db := MustOpenDB(t)
	spammer := MustCreateUser(t, db, "spammer")
	var last store.User
	for i := range store.MaxPendingRequests + 1 {
		last = MustCreateUser(t, db, fmt.Sprintf("user%03d", i))
		_, err := db.RequestFriend(ctx, spammer.ID, last.ID)
		if i < store.MaxPendingRequests && err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == store.MaxPendingRequests && !errors.Is(err, store.ErrTooManyRequests) {
			t.Fatalf("request over the limit: %v", err)
		}
	}
	// Being asked is not limited: last may still ask the spammer.
	if res, err := db.RequestFriend(ctx, last.ID, spammer.ID); err != nil || res.Accepted {
		t.Fatalf("asking the spammer = %+v, %v", res, err)
	}
}
