package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

var h0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestHistoryInsertCloseInOneTransaction(t *testing.T) {
	db := MustOpenDB(t)
	var recs []presence.Record
	var ids []int64
	for _, name := range []string{"alice", "bob", "carol"} {
		u, err := db.CreateUser(ctx, name, "password1")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	// A batch: alice starts and ends a session and starts another; bob
	// starts one; carol a whole one; a user deleted meanwhile (999) gets
	// nothing and does not fail the batch.
	recs = []presence.Record{
		{UserID: ids[0], HasStatus: true, Online: true, Sessions: []presence.SessionChange{
			{Start: h0, End: h0.Add(time.Minute), Device: presence.DeviceMobile},
			{Start: h0.Add(2 * time.Minute), Device: presence.DeviceDesktop},
		}},
		{UserID: ids[1], Sessions: []presence.SessionChange{{Start: h0, Device: presence.DeviceTablet}}},
		{UserID: ids[2], Sessions: []presence.SessionChange{{Start: h0, End: h0.Add(time.Hour)}}},
		{UserID: 999, Sessions: []presence.SessionChange{{Start: h0}}},
	}
	before := db.Stats().WriteTxs
	if err := db.SavePresence(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().WriteTxs - before; n != 1 {
		t.Fatalf("%d transactions for one batch of %d session changes, want 1", n, 5)
	}
	// The next batch ends bob's open session.
	if err := db.SavePresence(ctx, []presence.Record{{UserID: ids[1], Sessions: []presence.SessionChange{{End: h0.Add(30 * time.Minute)}}}}); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]store.Session{
		{{Start: h0, End: h0.Add(time.Minute), Device: "mobile"}, {Start: h0.Add(2 * time.Minute), Device: "desktop"}},
		{{Start: h0, End: h0.Add(30 * time.Minute), Device: "tablet"}},
		{{Start: h0, End: h0.Add(time.Hour), Device: "unknown"}},
	} {
		got, err := db.History(ctx, ids[i], h0.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("user %d: history = %+v\nwant %+v", i, got, want)
		}
	}
	// since leaves out sessions that ended before it, never open ones.
	got, _ := db.History(ctx, ids[0], h0.Add(90*time.Second))
	if len(got) != 1 || !got[0].End.IsZero() {
		t.Fatalf("history since 12:01:30 = %+v, want the open session only", got)
	}
}

func TestHistoryPrune(t *testing.T) {
	db := MustOpenDB(t)
	u, _ := db.CreateUser(ctx, "alice", "password1")
	old := h0.Add(-40 * 24 * time.Hour)
	db.SavePresence(ctx, []presence.Record{{UserID: u.ID, Sessions: []presence.SessionChange{
		{Start: old, End: old.Add(time.Hour)},                                    // pruned
		{Start: h0.Add(-31 * 24 * time.Hour), End: h0.Add(-29 * 24 * time.Hour)}, // ended within: kept
		{Start: old.Add(2 * time.Hour)},                                          // open: kept
	}}})
	n, err := db.PruneHistory(ctx, h0.Add(-30*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	got, _ := db.History(ctx, u.ID, time.Time{})
	if len(got) != 2 {
		t.Fatalf("left %+v, want 2 sessions", got)
	}
}

func TestHistoryClosedAfterCrash(t *testing.T) {
	db := MustOpenDB(t)
	alice, _ := db.CreateUser(ctx, "alice", "password1")
	bob, _ := db.CreateUser(ctx, "bob", "password1")
	// Alice was last active at 12:10 in a session from 12:00; bob's session
	// started after his last recorded activity.
	db.SavePresence(ctx, []presence.Record{
		{UserID: alice.ID, HasStatus: true, Online: true, LastActivity: h0.Add(10 * time.Minute),
			Sessions: []presence.SessionChange{{Start: h0, Device: "desktop"}}},
		{UserID: bob.ID, HasStatus: true, Online: true, LastSeen: h0.Add(-time.Hour),
			Sessions: []presence.SessionChange{{Start: h0}}},
	})
	// The crash: nothing else is written. At start-up:
	if _, err := db.ResetPresence(ctx, h0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.History(ctx, alice.ID, time.Time{}); len(got) != 1 || !got[0].End.Equal(h0.Add(10*time.Minute)) {
		t.Fatalf("alice = %+v, want the session closed at her last activity 12:10", got)
	}
	if got, _ := db.History(ctx, bob.ID, time.Time{}); len(got) != 1 || !got[0].End.Equal(h0) {
		t.Fatalf("bob = %+v, want the session closed at its start", got)
	}
}
