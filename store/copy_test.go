package store_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/presencehq/presence/store"
)

// TestCopyFrom: a SQLite installation copied into PostgreSQL keeps its
// accounts, passwords, tokens, server keys, friends and webhook queue, ids
// included, and new rows get ids after the copied ones. A second copy into
// the now non-empty database is refused.
func TestCopyFrom(t *testing.T) {
	if !onPostgres {
		t.Skip("PostgreSQL only (runs in the PostgreSQL pass)")
	}
	src, err := store.Open(filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.BcryptCost = bcrypt.MinCost
	if _, err := src.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	alice, bob := MustCreateUser(t, src, "alice"), MustCreateUser(t, src, "bob")
	if _, _, err := src.UpsertHostUser(ctx, store.HostProfile{ExternalID: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.DeleteHostUser(ctx, "gone"); err != nil { // a gap in the ids
		t.Fatal(err)
	}
	carol := MustCreateUser(t, src, "carol")
	tok, err := src.CreateToken(ctx, alice.ID, store.TokenAPI, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := src.CreateServerKey(ctx, "backend")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.SetFriends(ctx, alice.ID, []int64{bob.ID}, nil); err != nil {
		t.Fatal(err)
	}
	if err := src.EnqueueWebhooks(ctx, []store.WebhookDelivery{{EventID: "e1", URL: "https://h.example/hook",
		UserKey: "1", Type: "user.online", Payload: []byte(`{"id":"e1"}`), CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}

	db := MustOpenDB(t)
	counts, err := db.CopyFrom(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if counts["users"] != 3 || counts["tokens"] != 1 || counts["friendships"] != 2 || counts["webhook_deliveries"] != 1 {
		t.Fatalf("copied %v", counts)
	}
	if u, err := db.Authenticate(ctx, "carol", "correct horse"); err != nil || u.ID != carol.ID {
		t.Fatalf("carol signs in = %+v, %v; want id %d", u, err, carol.ID)
	}
	if u, err := db.UserByToken(ctx, store.TokenAPI, tok); err != nil || u.ID != alice.ID || !u.IsAdmin {
		t.Fatalf("alice's token = %+v, %v", u, err)
	}
	if _, err := db.ResolveServerKey(ctx, key); err != nil {
		t.Fatalf("server key: %v", err)
	}
	if ok, err := db.AreFriends(ctx, bob.ID, alice.ID); err != nil || !ok {
		t.Fatalf("friends = %v, %v", ok, err)
	}
	if n, err := db.PendingWebhooks(ctx); err != nil || n != 1 {
		t.Fatalf("pending webhooks = %d, %v", n, err)
	}
	dave := MustCreateUser(t, db, "dave")
	if dave.ID <= carol.ID || dave.IsAdmin {
		t.Fatalf("new user after the copy = %+v; want an id after %d, not an administrator", dave, carol.ID)
	}
	if _, err := db.CreateToken(ctx, dave.ID, store.TokenSession, time.Hour); err != nil {
		t.Fatalf("new token after the copy: %v", err)
	}
	if _, err := db.CopyFrom(ctx, src); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("second copy = %v, want ErrNotEmpty", err)
	}
}
