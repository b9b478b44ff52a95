package store_test

import (
	"errors"
	"testing"

	"github.com/presencehq/presence/store"
)

func TestUploadedAvatars(t *testing.T) {
	db := MustOpenDB(t)
	alice, _ := db.CreateUser(ctx, "alice", "password1")
	host, _, err := db.UpsertHostUser(ctx, store.HostProfile{ExternalID: "42", ProfileImageURL: "https://img.example.com/a.png"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetAvatar(ctx, alice.ID, "bbb.png", []byte("png")); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.UploadedAvatars(ctx); len(got) != 1 || got[0] != "/avatars/bbb.png" {
		t.Fatalf("uploaded avatars = %v, want [/avatars/bbb.png] (not the host's URL)", got)
	}
	if _, err := db.SetAvatar(ctx, host.ID, "aaa.png", []byte("png")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("host user's avatar set: %v", err)
	}
	if _, err := db.SetAvatar(ctx, alice.ID, "../x.png", []byte("png")); err == nil {
		t.Fatal("a name that is a path was stored")
	}
	if u, _ := db.UserByID(ctx, host.ID); u.ProfileImageURL != "https://img.example.com/a.png" {
		t.Fatalf("host avatar = %q", u.ProfileImageURL)
	}
}

func TestTimeZones(t *testing.T) {
	db := MustOpenDB(t)
	alice, _ := db.CreateUser(ctx, "alice", "password1")
	bob, _ := db.CreateUser(ctx, "bob", "password1")
	if lt, err := db.LocalTimeOf(ctx, alice.ID); err != nil || lt.Zone != "" || !lt.Show {
		t.Fatalf("default = %+v, %v; want no zone, shown", lt, err)
	}
	before := db.Stats().WriteTxs
	if err := db.SaveTimeZones(ctx, map[int64]string{alice.ID: "Asia/Tokyo", bob.ID: "Europe/Paris", 999: "UTC"}); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().WriteTxs - before; n != 1 {
		t.Fatalf("%d transactions for one batch, want 1", n)
	}
	if lt, _ := db.LocalTimeOf(ctx, bob.ID); lt.Zone != "Europe/Paris" {
		t.Fatalf("bob = %+v", lt)
	}
	if err := db.SetShowLocalTime(ctx, alice.ID, false); err != nil {
		t.Fatal(err)
	}
	if lt, _ := db.LocalTimeOf(ctx, alice.ID); lt.Show || lt.Zone != "Asia/Tokyo" {
		t.Fatalf("alice = %+v", lt)
	}
	if err := db.SetShowLocalTime(ctx, 999, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := db.LocalTimeOf(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}
