package store_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/store"
)

// twoNodes opens two handles on one fresh, migrated database: two nodes
// (on SQLite, two processes) sharing it.
func twoNodes(tb testing.TB) (*store.DB, *store.DB) {
	tb.Helper()
	open := NewOpener(tb)
	a := open()
	if _, err := a.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return a, open()
}

// TestSetAvatar: an avatar set through one handle is served by the other;
// users uploading the same picture share one row; the row goes with its
// last user; host users have no uploaded avatar.
func TestSetAvatar(t *testing.T) {
	a, b := twoNodes(t)
	alice, bob := MustCreateUser(t, a, "alice"), MustCreateUser(t, a, "bob")
	png1, png2 := []byte("\x89PNG one"), []byte("\x89PNG two")
	if old, err := a.SetAvatar(ctx, alice.ID, "one.png", png1); err != nil || old != "" {
		t.Fatalf("set = %q, %v", old, err)
	}
	if got, err := b.AvatarPNG(ctx, "one.png"); err != nil || !bytes.Equal(got, png1) {
		t.Fatalf("the other node reads %q, %v", got, err)
	}
	if _, err := b.SetAvatar(ctx, bob.ID, "one.png", png1); err != nil { // the same picture
		t.Fatal(err)
	}
	if old, err := a.SetAvatar(ctx, alice.ID, "two.png", png2); err != nil || old != "/avatars/one.png" {
		t.Fatalf("replace = %q, %v", old, err)
	}
	if _, err := b.AvatarPNG(ctx, "one.png"); err != nil {
		t.Fatalf("bob still uses one.png, but: %v", err)
	}
	if _, err := b.SetAvatar(ctx, bob.ID, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AvatarPNG(ctx, "one.png"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("one.png after its last user removed it: %v, want ErrNotFound", err)
	}
	if u, _ := a.UserByID(ctx, alice.ID); u.ProfileImageURL != "/avatars/two.png" {
		t.Fatalf("alice's avatar = %q", u.ProfileImageURL)
	}
	if _, err := a.SetAvatar(ctx, 9999, "x.png", png1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := a.AvatarPNG(ctx, "x.png"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the bytes of a refused avatar were stored")
	}

	// An imported file is kept once; the sweep deletes what nobody uses.
	if ok, err := a.ImportAvatar(ctx, "two.png", []byte("other")); err != nil || ok {
		t.Fatalf("import over a stored one = %v, %v", ok, err)
	}
	if ok, err := a.ImportAvatar(ctx, "orphan.png", png1); err != nil || !ok {
		t.Fatalf("import = %v, %v", ok, err)
	}
	if n, err := b.SweepAvatars(ctx); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want the orphan", n, err)
	}
	if got, _ := a.AvatarPNG(ctx, "two.png"); !bytes.Equal(got, png2) {
		t.Fatal("the sweep or the import changed an avatar in use")
	}
}

// TestUpdateBucket: two handles taking tokens from one bucket at once
// never take more than it holds.
func TestUpdateBucket(t *testing.T) {
	a, b := twoNodes(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	const burst = 20
	take := func(db *store.DB) bool {
		ok := false
		err := db.UpdateBucket(ctx, "test:k", func(tokens float64, at time.Time, found bool) (float64, time.Time) {
			if !found {
				tokens = burst
			}
			if tokens >= 1 {
				ok = true
				tokens--
			}
			return tokens, t0
		})
		if err != nil {
			t.Error(err)
		}
		return ok
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for i := range 40 {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if take(db) {
				mu.Lock()
				taken++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if taken != burst {
		t.Fatalf("took %d tokens from a bucket of %d", taken, burst)
	}
	if n, err := a.PruneBuckets(ctx, "other:", t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("prune another limit = %d, %v", n, err)
	}
	if n, err := a.PruneBuckets(ctx, "test:", t0); err != nil || n != 0 {
		t.Fatalf("prune before its update = %d, %v", n, err)
	}
	if n, err := b.PruneBuckets(ctx, "test:", t0.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v", n, err)
	}
}

// TestClaimWebhooks: a delivery claimed by one node is not due on another
// until its attempt is recorded, its claim released or its lease out; the
// one behind it in its line waits meanwhile.
func TestClaimWebhooks(t *testing.T) {
	a, b := twoNodes(t)
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	d := func(ev, user string) store.WebhookDelivery {
		return store.WebhookDelivery{EventID: ev, URL: "U", UserKey: user, Type: "user.online", Payload: []byte(`{}`), CreatedAt: t0, NextAttemptAt: t0}
	}
	if err := a.EnqueueWebhooks(ctx, []store.WebhookDelivery{d("e1", "1"), d("e2", "1"), d("e3", "2")}); err != nil {
		t.Fatal(err)
	}
	lease := t0.Add(30 * time.Second)
	gotA, err := a.ClaimWebhooks(ctx, t0, "U", 1, "A", lease)
	if err != nil || len(gotA) != 1 || gotA[0].EventID != "e1" {
		t.Fatalf("A claims %v, %v", gotA, err)
	}
	gotB, err := b.ClaimWebhooks(ctx, t0, "U", 10, "B", lease)
	if err != nil || len(gotB) != 1 || gotB[0].EventID != "e3" {
		t.Fatalf("B claims %v, %v; want only e3 (e1 is A's, e2 waits behind it)", gotB, err)
	}
	if got, _ := b.ClaimWebhooks(ctx, t0.Add(time.Second), "U", 10, "B", lease); len(got) != 0 {
		t.Fatalf("B claims again %v", got)
	}
	if n, err := b.ExpediteWebhooks(ctx, "U", t0); err != nil || n != 0 {
		t.Fatalf("expedite moved %d claimed deliveries (%v), want none", n, err)
	}
	if next, ok, _ := b.NextWebhookAfter(ctx, t0); !ok || !next.Equal(lease) {
		t.Fatalf("next due on B = %v %v, want the lease's end", next, ok)
	}
	// A delivers e1: e2 is due, on any node.
	if err := a.RecordWebhookAttempt(ctx, gotA[0].ID, store.WebhookAttempt{At: t0, HTTPStatus: 200, Status: store.WebhookDelivered}); err != nil {
		t.Fatal(err)
	}
	gotB, _ = b.ClaimWebhooks(ctx, t0.Add(time.Second), "U", 10, "B", lease)
	if len(gotB) != 1 || gotB[0].EventID != "e2" {
		t.Fatalf("after e1 delivered B claims %v, want e2", gotB)
	}
	// B dies holding e2 and e3: nobody sends them before the lease ends,
	// then A does.
	if got, _ := a.ClaimWebhooks(ctx, lease.Add(-time.Millisecond), "U", 10, "A", lease.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("A claims %v during B's lease", got)
	}
	if got, _ := a.ClaimWebhooks(ctx, lease, "U", 10, "A", lease.Add(time.Minute)); len(got) != 2 {
		t.Fatalf("A claims %v after B's lease, want e2 and e3", got)
	}
	// A stops: its claims are released, due at once.
	if n, err := a.ReleaseWebhooks(ctx, "A", lease); err != nil || n != 2 {
		t.Fatalf("release = %d, %v", n, err)
	}
	if n, _ := a.ReleaseWebhooks(ctx, "B", lease); n != 0 {
		t.Fatalf("B's claims were taken over, yet %d released", n)
	}
	if got, _ := b.ClaimWebhooks(ctx, lease, "U", 10, "B", lease.Add(time.Minute)); len(got) != 2 {
		t.Fatalf("after A released, B claims %v", got)
	}
}
