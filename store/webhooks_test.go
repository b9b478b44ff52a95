package store_test

import (
	"testing"
	"time"

	"github.com/presencehq/presence/store"
)

// TestWebhookQueue: only the first pending delivery of each (url, user)
// line is due; recording attempts moves the line on; expediting, giving
// up removed URLs, finding users left online and pruning keep to their
// own rows.
func TestWebhookQueue(t *testing.T) {
	db := MustOpenDB(t)
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	d := func(ev, url, user, typ string, at time.Time) store.WebhookDelivery {
		return store.WebhookDelivery{EventID: ev, URL: url, UserKey: user, Type: typ, Payload: []byte(`{}`), CreatedAt: at, NextAttemptAt: at}
	}
	err := db.EnqueueWebhooks(ctx, []store.WebhookDelivery{
		d("e1", "A", "1", "user.online", t0), d("e1", "B", "1", "user.online", t0),
		d("e2", "A", "1", "user.offline", t0), d("e3", "A", "2", "user.online", t0.Add(time.Second)),
		d("e1", "A", "1", "user.online", t0), // a duplicate is skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	events := func(ds []store.WebhookDelivery) (out []string) {
		for _, d := range ds {
			out = append(out, d.EventID+"@"+d.URL)
		}
		return out
	}
	dueAll := func(now time.Time) ([]store.WebhookDelivery, error) {
		a, err := db.DueWebhooks(ctx, now, "A", 10)
		if err != nil {
			return nil, err
		}
		b, err := db.DueWebhooks(ctx, now, "B", 10)
		return append(a, b...), err
	}
	due, err := dueAll(t0)
	if got := events(due); err != nil || len(got) != 2 || got[0] != "e1@A" || got[1] != "e1@B" {
		t.Fatalf("due at t0 = %v, %v (e2 waits behind e1; e3 is not due)", got, err)
	}
	if n, _ := db.PendingWebhooks(ctx); n != 4 {
		t.Fatalf("pending = %d, want 4", n)
	}
	// e1@A fails: the line waits, e3 (another user) is not held up.
	if err := db.RecordWebhookAttempt(ctx, due[0].ID, store.WebhookAttempt{At: t0, HTTPStatus: 503, Err: "HTTP 503", Status: store.WebhookPending, Next: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	behind, _ := db.WebhookLog(ctx, store.WebhookPending, 10)
	for _, l := range behind {
		if l.EventID == "e2" && !l.NextAttemptAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("e2, behind e1@A, is due at %v, want with e1's retry", l.NextAttemptAt)
		}
	}
	due, _ = dueAll(t0.Add(time.Second))
	if got := events(due); len(got) != 2 || got[0] != "e3@A" || got[1] != "e1@B" {
		t.Fatalf("due after e1@A failed = %v", got)
	}
	next, ok, err := db.NextWebhookAfter(ctx, t0.Add(time.Second))
	if err != nil || !ok || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next = %v %v %v", next, ok, err)
	}
	if n, err := db.ExpediteWebhooks(ctx, "A", t0.Add(2*time.Second)); err != nil || n != 2 { // e1 and e2 behind it
		t.Fatalf("expedite = %d, %v", n, err)
	}
	log, _ := db.WebhookLog(ctx, store.WebhookPending, 10)
	for _, l := range log {
		if l.EventID == "e1" && l.URL == "A" && (l.Attempts != 1 || l.LastHTTPStatus != 503 || !l.NextAttemptAt.Equal(t0.Add(2*time.Second))) {
			t.Fatalf("e1@A = %+v", l)
		}
	}
	// e1@A delivered: e2 is next in its line.
	if err := db.RecordWebhookAttempt(ctx, log[len(log)-1].ID, store.WebhookAttempt{At: t0.Add(3 * time.Second), HTTPStatus: 200, Status: store.WebhookDelivered}); err != nil {
		t.Fatal(err)
	}
	due, _ = dueAll(t0.Add(3 * time.Second))
	if got := events(due); len(got) != 3 || got[0] != "e3@A" || got[1] != "e2@A" || got[2] != "e1@B" { // by due time
		t.Fatalf("due after e1@A delivered = %v", got)
	}
	// URL B removed from the configuration: its delivery is given up.
	if n, err := db.AbandonWebhooks(ctx, []string{"A"}, t0.Add(4*time.Second)); err != nil || n != 1 {
		t.Fatalf("abandon = %d, %v", n, err)
	}
	failed, _ := db.WebhookLog(ctx, store.WebhookFailed, 10)
	if len(failed) != 1 || failed[0].URL != "B" || failed[0].LastError != "URL no longer configured" || failed[0].DoneAt.IsZero() {
		t.Fatalf("failed = %+v", failed)
	}
	// Users whose latest delivery is user.online: 1 at B (given up, but
	// the latest), 2 at A; 1 at A ends with user.offline.
	left, err := db.WebhooksLeftOnline(ctx, "user.online")
	if got := events(left); err != nil || len(got) != 2 || got[0] != "e1@B" || got[1] != "e3@A" {
		t.Fatalf("left online = %v, %v", got, err)
	}
	// Pruning deletes old finished rows, except the latest of each line.
	if n, err := db.PruneWebhooks(ctx, t0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v (only e1@A is finished and not its line's latest)", n, err)
	}
	all, _ := db.WebhookLog(ctx, "", 10)
	if got := events(all); len(got) != 3 || got[0] != "e3@A" || got[1] != "e2@A" || got[2] != "e1@B" {
		t.Fatalf("after pruning = %v", got)
	}
}
