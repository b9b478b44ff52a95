package cluster

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/redis/go-redis/v9"
)

// Review: the full read (resync → applyRead) compares sequence numbers
// under the read lock, lets go, then applies with force, which skips the
// comparison. A live aggregate applied in that gap is overwritten by the
// older one read before it, and the replica keeps the older state (and
// the older seq) until the user's next change. Here the two race many
// times; the replica must always end on the later aggregate (seq 6).
func TestReview_ResyncOverwritesNewerLiveAggregate(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never used
	defer rdb.Close()
	n, err := New(Config{Redis: rdb, NodeID: "a", Clock: presence.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)
	read := aggregate{online: true, mode: presence.ModeOnline, since: since, visibility: presence.VisibleEveryone, username: "alice"}
	live := read
	live.mode = presence.ModeDND
	bad := 0
	const rounds = 20000
	for i := range rounds {
		id := int64(i + 1)
		n.apply("b", id, 4, read, false)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); n.applyRead("", id, 5, read, false) }()
		go func() { defer wg.Done(); runtime.Gosched(); n.apply("b", id, 6, live, false) }()
		wg.Wait()
		n.rmu.RLock()
		en := n.users[id]
		if en.seq != 6 || en.st.Mode != presence.ModeDND {
			bad++
		}
		n.rmu.RUnlock()
	}
	if bad > 0 {
		t.Fatalf("%d of %d rounds: the full read's older aggregate (seq 5) replaced the live one (seq 6)", bad, rounds)
	}
}
