package store_test

import (
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// TestPresenceSettings: settings written through the batcher's records
// come back at start-up; users back to the defaults are not loaded; a bad
// mode is refused by the table's CHECK.
func TestPresenceSettings(t *testing.T) {
	db := MustOpenDB(t)
	a := MustCreateUser(t, db, "alice")
	b := MustCreateUser(t, db, "bob")
	c := MustCreateUser(t, db, "carol")
	exp := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	want := presence.Settings{Mode: presence.ModeDND, Text: "deep work", Emoji: "🎧", Expires: exp, Visibility: presence.VisibleFriends}
	err := db.SavePresence(ctx, []presence.Record{
		{UserID: a.ID, HasSettings: true, Settings: want},
		{UserID: b.ID, HasSettings: true, Settings: presence.Settings{Mode: presence.ModeInvisible}},
		{UserID: c.ID, HasStatus: true, Online: true}, // no settings: left alone
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.PresenceSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a.ID] != want || got[b.ID] != (presence.Settings{Mode: presence.ModeInvisible, Visibility: presence.VisibleEveryone}) {
		t.Fatalf("loaded %+v", got)
	}
	if err := db.SavePresence(ctx, []presence.Record{{UserID: b.ID, HasSettings: true, Settings: presence.Settings{}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.PresenceSettings(ctx); len(got) != 1 {
		t.Fatalf("after bob's reset: %+v", got)
	}
	if err := db.SavePresence(ctx, []presence.Record{{UserID: c.ID, HasSettings: true, Settings: presence.Settings{Mode: "busy"}}}); err == nil {
		t.Fatal("a mode outside the CHECK was stored")
	}
}
