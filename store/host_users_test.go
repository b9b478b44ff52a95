package store_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/presencehq/presence/store"
)

// TestHostUsers: created on first sight, updated only when the profile
// differs, kept apart from local accounts of the same id and name, and
// created once when two first requests race.
func TestHostUsers(t *testing.T) {
	db := MustOpenDB(t)
	local := MustCreateUser(t, db, "alice")

	u, created, err := db.UpsertHostUser(ctx, store.HostProfile{ExternalID: "1"})
	if err != nil || !created || u.Username != "1" || u.ID == local.ID || u.ExternalID != "1" || !u.IsHost() {
		t.Fatalf("first sight = %+v, %v, %v; want a new row named after its id", u, created, err)
	}
	u, created, err = db.UpsertHostUser(ctx, store.HostProfile{ExternalID: "1", Username: "alice", ProfileImageURL: "https://img.example.com/a.png"})
	if err != nil || created || u.Username != "alice" || u.ProfileImageURL != "https://img.example.com/a.png" {
		t.Fatalf("update = %+v, %v, %v", u, created, err)
	}
	if got, _ := db.UserByName(ctx, "alice"); got.ID != local.ID || got.IsHost() {
		t.Fatalf("UserByName(alice) = %+v, want the local account", got)
	}
	if _, err := db.HostUser(ctx, "2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown host user: %v", err)
	}
	if _, err := db.HostUser(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "@host:1", ""); !errors.Is(err, store.ErrInvalidLogin) {
		t.Fatalf("password login as a host user: %v", err)
	}
	for _, bad := range []store.HostProfile{
		{ExternalID: ""}, {ExternalID: "a b"}, {ExternalID: "x\x00"},
		{ExternalID: "3", Username: "bad\nname"},
		{ExternalID: "3", ProfileImageURL: "javascript:alert(1)"},
		{ExternalID: "3", ProfileImageURL: "/relative.png"},
	} {
		if _, _, err := db.UpsertHostUser(ctx, bad); !errors.Is(err, store.ErrInvalidHostUser) {
			t.Errorf("%+v: %v, want ErrInvalidHostUser", bad, err)
		}
	}

	// Two first requests at once: one row.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := db.UpsertHostUser(ctx, store.HostProfile{ExternalID: "race", Username: "r"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	m, err := db.HostUsers(ctx, []string{"race", "1", "nobody"})
	if err != nil || len(m) != 2 || m["race"].Username != "r" || m["1"].Username != "alice" {
		t.Fatalf("HostUsers = %+v, %v", m, err)
	}

	if _, err := db.DeleteHostUser(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteHostUser(ctx, "1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := db.UserByName(ctx, "alice"); err != nil {
		t.Fatalf("deleting host user 1 touched local alice: %v", err)
	}
}

// TestHostUsers_Locked: a known user whose new name cannot be written
// (database locked) is still let in, as they were.
func TestHostUsers_Locked(t *testing.T) {
	db, path := MustOpenDBPath(t)
	if _, _, err := db.UpsertHostUser(ctx, store.HostProfile{ExternalID: "1", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := store.SetWriterPragma(db, "busy_timeout = 50"); err != nil {
		t.Fatal(err)
	}
	release := holdWriteLock(t, path)
	u, _, err := db.UpsertHostUser(ctx, store.HostProfile{ExternalID: "1", Username: "renamed"})
	if err != nil || u.Username != "alice" {
		t.Fatalf("update while locked = %+v, %v; want the user as they were", u, err)
	}
	if _, _, err := db.UpsertHostUser(ctx, store.HostProfile{ExternalID: "new"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("create while locked: %v, want ErrUnavailable", err)
	}
	release()
}

// TestServerKeys: a key works until revoked (by name, short id or the key
// itself), is never a user token, and an ambiguous name is refused.
func TestServerKeys(t *testing.T) {
	db := MustOpenDB(t)
	k1, info, err := db.CreateServerKey(ctx, "backend")
	if err != nil || !store.IsServerKey(k1) {
		t.Fatalf("create = %q, %v", k1, err)
	}
	if got, err := db.ResolveServerKey(ctx, k1); err != nil || got.Name != "backend" || got.ShortID != info.ShortID {
		t.Fatalf("resolve = %+v, %v", got, err)
	}
	if _, err := db.UserByToken(ctx, store.TokenAPI, k1); !errors.Is(err, store.ErrInvalidToken) {
		t.Fatalf("server key as a user token: %v", err)
	}
	k2, _, _ := db.CreateServerKey(ctx, "worker")
	k3, _, _ := db.CreateServerKey(ctx, "worker")
	if _, err := db.RevokeServerKey(ctx, "worker"); !errors.Is(err, store.ErrAmbiguousToken) {
		t.Fatalf("ambiguous name: %v", err)
	}
	if _, err := db.RevokeServerKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeServerKey(ctx, info.ShortID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{k1, k2} {
		if _, err := db.ResolveServerKey(ctx, k); !errors.Is(err, store.ErrInvalidServerKey) {
			t.Fatalf("revoked key: %v", err)
		}
	}
	if _, err := db.ResolveServerKey(ctx, k3); err != nil {
		t.Fatalf("the other worker key: %v", err)
	}
	keys, err := db.ServerKeys(ctx)
	if err != nil || len(keys) != 3 || keys[0].RevokedAt.IsZero() || !keys[2].RevokedAt.IsZero() || keys[2].LastUsedAt.IsZero() {
		t.Fatalf("list = %+v, %v", keys, err)
	}
	if _, err := db.RevokeServerKey(ctx, "nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}
