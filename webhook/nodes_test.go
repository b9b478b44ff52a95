package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/store/storetest"
)

// openShared returns an opener of handles on one fresh, migrated
// database (PostgreSQL with PRESENCE_TEST_STORE=postgres, else SQLite):
// each handle is a node.
func openShared(t *testing.T) func() *store.DB {
	t.Helper()
	var open func() (*store.DB, error)
	if os.Getenv("PRESENCE_TEST_STORE") == "postgres" {
		url := storetest.URL(t)
		open = func() (*store.DB, error) { return store.OpenPostgres(context.Background(), url) }
	} else {
		path := filepath.Join(t.TempDir(), "presence.db")
		open = func() (*store.DB, error) { return store.Open(path) }
	}
	first := true
	return func() *store.DB {
		db, err := open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if first {
			first = false
			if _, err := db.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
}

// TestTwoNodes_NoDoubleSend: two dispatchers on one database, both
// sending what one of them stores, on the real clock: every delivery
// reaches the receiver once (never twice, never while it is being sent),
// each user's events in the order they were stored, and the second node
// sends some of them.
func TestTwoNodes_NoDoubleSend(t *testing.T) {
	open := openShared(t)
	rc := newReceiver(t)
	var mu sync.Mutex
	inflight, seen := map[string]bool{}, map[string]int{}
	rc.setAnswer(func(p map[string]any) int {
		id, _ := p["id"].(string)
		mu.Lock()
		if inflight[id] {
			seen[id] += 100 // sent twice at once
		}
		inflight[id] = true
		seen[id]++
		mu.Unlock()
		time.Sleep(3 * time.Millisecond)
		mu.Lock()
		delete(inflight, id)
		mu.Unlock()
		return 200
	})
	nodes := make([]*Dispatcher, 2)
	buses := make([]*presence.LocalBus, 2)
	for i := range nodes {
		buses[i] = presence.NewLocalBus()
		d, err := New(Config{URLs: []string{rc.srv.URL}, Secret: testSecret, Store: open(), Bus: buses[i],
			Concurrency: 2, Poll: 20 * time.Millisecond, Node: fmt.Sprintf("node-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(context.Background(), nil) })
		nodes[i] = d
	}
	const users, changes = 20, 6
	for c := range changes {
		for u := range users {
			buses[0].Publish(presence.Event{UserID: int64(u + 1), Username: fmt.Sprint("u", u), Online: c%2 == 0, LastSeen: time.Now()})
		}
	}
	waitFor(t, "every delivery made", func() bool { return nodes[0].Stats().Succeeded+nodes[1].Stats().Succeeded == users*changes })
	time.Sleep(50 * time.Millisecond) // a second send would come now
	mu.Lock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s received %d times (≥100: twice at once)", id, n)
		}
	}
	mu.Unlock()
	if len(seen) != users*changes {
		t.Fatalf("received %d events, want %d", len(seen), users*changes)
	}
	if nodes[1].Stats().Succeeded == 0 {
		t.Error("the second node sent nothing")
	}
	// Each user's events arrived in the order they were stored.
	log, err := open().WebhookLog(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string][]string{} // user → event ids, oldest first
	for i := len(log) - 1; i >= 0; i-- {
		stored[log[i].UserKey] = append(stored[log[i].UserKey], log[i].EventID)
	}
	got := map[string][]string{}
	for _, h := range rc.got() {
		u := fmt.Sprint(h.payload["username"])
		got[u] = append(got[u], h.payload["id"].(string))
	}
	for u := range users {
		key, name := fmt.Sprint(u+1), fmt.Sprint("u", u)
		if fmt.Sprint(got[name]) != fmt.Sprint(stored[key]) {
			t.Errorf("user %s: received %v, stored %v", name, got[name], stored[key])
		}
	}
	t.Logf("node 0 sent %d, node 1 sent %d", nodes[0].Stats().Succeeded, nodes[1].Stats().Succeeded)
}

// TestTwoNodes_DeadNodesClaims: a delivery claimed by a node that died is
// sent by another node once the claim runs out, and not before; a
// restarted node takes back its own claims at once.
func TestTwoNodes_DeadNodesClaims(t *testing.T) {
	open := openShared(t)
	rc := newReceiver(t)
	r := &rig{clock: presence.NewFakeClock(t0), db: open(), bus: presence.NewLocalBus()}
	r.start(t, Config{URLs: []string{rc.srv.URL}, Secret: testSecret, Store: r.db, Bus: r.bus, Clock: r.clock,
		Poll: 5 * time.Second, Node: "alive"})
	r.settle(t)

	other := open()
	ctx := context.Background()
	enqueue := func(ev string) {
		t.Helper()
		err := other.EnqueueWebhooks(ctx, []store.WebhookDelivery{{EventID: ev, URL: rc.srv.URL, UserKey: "1", Type: TypeOnline,
			Payload: []byte(`{"id":"` + ev + `"}`), CreatedAt: r.clock.Now(), NextAttemptAt: r.clock.Now()}})
		if err != nil {
			t.Fatal(err)
		}
	}
	enqueue("e1")
	lease := r.clock.Now().Add(time.Minute)
	if got, err := other.ClaimWebhooks(ctx, r.clock.Now(), rc.srv.URL, 10, "dead", lease); err != nil || len(got) != 1 {
		t.Fatalf("claim = %v, %v", got, err)
	}
	enqueue("e2")                    // behind e1 in its line
	r.clock.Advance(5 * time.Second) // the poll: finds e1 claimed, waits for the claim's end
	r.settle(t)
	r.clock.Advance(50 * time.Second)
	r.settle(t)
	if n := len(rc.got()); n != 0 {
		t.Fatalf("%d sent during the dead node's claim", n)
	}
	r.clock.Advance(5 * time.Second) // the claim has run out
	waitFor(t, "e1 and e2 sent by the live node", func() bool { return len(rc.got()) == 2 })
	r.settle(t)
	if got := rc.got(); got[0].payload["id"] != "e1" || got[1].payload["id"] != "e2" {
		t.Fatalf("sent %v then %v", got[0].payload["id"], got[1].payload["id"])
	}

	// A node restarted under its name releases its old claims at start.
	enqueue("e3")
	if got, _ := other.ClaimWebhooks(ctx, r.clock.Now(), rc.srv.URL, 10, "dead", r.clock.Now().Add(time.Hour)); len(got) != 1 {
		t.Fatalf("claim e3 = %v", got)
	}
	clock2 := presence.NewFakeClock(r.clock.Now())
	r2 := &rig{clock: clock2, db: open(), bus: presence.NewLocalBus()}
	r2.start(t, Config{URLs: []string{rc.srv.URL}, Secret: testSecret, Store: r2.db, Bus: r2.bus, Clock: clock2, Node: "dead"})
	waitFor(t, "e3 sent by the restarted node", func() bool { return len(rc.got()) == 3 })
}
