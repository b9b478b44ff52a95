package realtime

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// ringStore is a FriendsStore whose users are a ring: user i (1..n) is
// friends with the k/2 users on each side.
type ringStore struct{ n, k int }

func (r ringStore) FriendIDs(_ context.Context, id int64) ([]int64, error) {
	out := make([]int64, 0, r.k)
	for d := 1; d <= r.k/2; d++ {
		out = append(out, (id-1+int64(d))%int64(r.n)+1, (id-1-int64(d)+int64(r.n))%int64(r.n)+1)
	}
	return out, nil
}

func (r ringStore) UsersByIDs(_ context.Context, ids []int64) (map[int64]store.User, error) {
	out := map[int64]store.User{}
	for _, id := range ids {
		out[id] = store.User{ID: id, Username: "user"}
	}
	return out, nil
}

func (ringStore) FriendNotifyUsers(context.Context) ([]int64, error) { return nil, nil }

// viewerStreams registers one subscriber (no writer: its queue is read by
// the test) per viewer 1..n, scoped or not.
func viewerStreams(tb testing.TB, b *Broker, n int, scoped bool) []*subscriber {
	subs := make([]*subscriber, n)
	for i := range subs {
		subs[i] = &subscriber{owner: "", viewer: int64(i + 1), scoped: scoped, cancel: func() {}, wake: make(chan struct{}, 1)}
		if err := b.register(subs[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return subs
}

// TestFriendsFeed_OnlyFriendsStreams: a change of one user is rendered
// once and queued on the scoped streams of that user's friends only — not
// on other viewers' scoped streams, nor on any stream of the shared list.
func TestFriendsFeed_OnlyFriendsStreams(t *testing.T) {
	e := presence.New(presence.Config{Grace: -1, Deadline: -1})
	defer e.Close()
	b := NewBroker(BrokerConfig{})
	scoped := viewerStreams(t, b, 100, true)
	shared := &subscriber{viewer: 500, cancel: func() {}, wake: make(chan struct{}, 1)}
	b.register(shared)
	f := NewFriendsFeed(e, ringStore{n: 100, k: 10}, b, slog.New(slog.DiscardHandler))
	defer f.Close()

	f.route(50, "50", presence.Status{UserID: 50, Username: "user", Since: time.Unix(1, 0)}, true)
	for i, s := range scoped {
		got := len(s.take(nil, nil))
		want := 0
		if d := i + 1 - 50; d != 0 && d >= -5 && d <= 5 {
			want = 1
		}
		if got != want {
			t.Fatalf("viewer %d got %d events, want %d", i+1, got, want)
		}
	}
	if len(shared.take(nil, nil)) != 0 {
		t.Fatal("a shared-list stream got a friends event")
	}
	if st := f.Stats(); st.Renders != 1 || st.Routed != 10 {
		t.Fatalf("stats %+v, want 1 render routed to 10 streams", st)
	}
}

// BenchmarkFriendsFeed_Change: the server's cost of one change with 50
// friends watching among 9,000 viewers (render once, route to 50 queues).
func BenchmarkFriendsFeed_Change(b *testing.B) {
	e := presence.New(presence.Config{Grace: -1, Deadline: -1})
	defer e.Close()
	br := NewBroker(BrokerConfig{})
	subs := viewerStreams(b, br, 9000, true)
	f := NewFriendsFeed(e, ringStore{n: 9000, k: 50}, br, slog.New(slog.DiscardHandler))
	defer f.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := int64(i%9000 + 1)
		f.route(id, strconv.FormatInt(id, 10), presence.Status{UserID: id, Username: "user"}, i%2 == 0)
		if i%32 == 31 {
			b.StopTimer()
			for _, s := range subs {
				s.take(nil, nil)
			}
			b.StartTimer()
		}
	}
}

// TestBroker_ScopedStreams: a scoped stream gets no shared-list events,
// PublishTo reaches only the named viewers (their shared streams too only
// when asked), and a lagging scoped stream is told to refetch instead of
// being sent the shared snapshot.
func TestBroker_ScopedStreams(t *testing.T) {
	b := NewBroker(BrokerConfig{})
	scoped := viewerStreams(t, b, 3, true) // viewers 1..3
	shared := &subscriber{viewer: 2, cancel: func() {}, wake: make(chan struct{}, 1)}
	b.register(shared)
	b.SetSnapshot("presence", []byte("whole list"))

	b.Publish("presence-delta", []byte("d"))
	if len(scoped[0].take(nil, nil)) != 0 || len(shared.take(nil, nil)) != 1 {
		t.Fatal("the shared event reached a scoped stream, or missed the shared one")
	}
	if n := b.PublishTo([]int64{2, 99}, "friends-delta", []byte("x"), false); n != 1 {
		t.Fatalf("reached %d streams, want 1", n)
	}
	if len(scoped[0].take(nil, nil)) != 0 || len(scoped[1].take(nil, nil)) != 1 || len(shared.take(nil, nil)) != 0 {
		t.Fatal("PublishTo reached the wrong streams")
	}
	if n := b.PublishTo([]int64{2}, "friend-online", []byte("t"), true); n != 2 {
		t.Fatalf("with alsoShared reached %d streams, want 2", n)
	}
	if got := b.Watching([]int64{1, 2, 5}, false); len(got) != 2 {
		t.Fatalf("Watching = %v", got)
	}
	for range maxQueued + 1 {
		b.PublishTo([]int64{3}, "friends-delta", []byte("x"), false)
	}
	out := scoped[2].take(b.snapshot.Load(), nil)
	if len(out) != 1 || string(out[0]) != "event: friends-refresh\ndata: refresh\n\n" {
		t.Fatalf("lagging scoped stream got %q", out)
	}
	b.unregister(scoped[1])
	if got := b.Watching([]int64{2}, true); len(got) != 0 {
		t.Fatalf("an unregistered stream is still watching: %v", got)
	}
}
