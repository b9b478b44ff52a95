package presence_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// BenchmarkEngineTransitions: a user's only connection opens and closes
// (online, then offline with no grace): two user-level transitions.
func BenchmarkEngineTransitions(b *testing.B) {
	e := presence.New(presence.Config{Grace: -1, Deadline: -1})
	defer e.Close()
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		i++
		c, _ := e.Connect(presence.User{ID: i % 10000, Username: "u"}, nil)
		c.Close()
	}
}

// BenchmarkEngineSecondTab: a connection of an already-online user: no
// transition, the common case of tabs and reloads.
func BenchmarkEngineSecondTab(b *testing.B) {
	e := presence.New(presence.Config{Grace: -1, Deadline: -1})
	defer e.Close()
	e.Connect(presence.User{ID: 1, Username: "u"}, nil)
	b.ReportAllocs()
	for b.Loop() {
		c, _ := e.Connect(presence.User{ID: 1, Username: "u"}, nil)
		c.Close()
	}
}

// BenchmarkEngineActivity is the ping path: liveness plus batched activity.
func BenchmarkEngineActivity(b *testing.B) {
	batcher := presence.NewBatcher(&memPersister{}, nil, time.Hour, nil)
	e := presence.New(presence.Config{Recorder: batcher, Deadline: -1})
	defer e.Close()
	conns := make([]*presence.Conn, 1000)
	for i := range conns {
		conns[i], _ = e.Connect(presence.User{ID: int64(i), Username: "u"}, nil)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			conns[i%len(conns)].Activity()
			i++
		}
	})
}

// BenchmarkBusPublish: one event to N subscribers that keep up.
func BenchmarkBusPublish(b *testing.B) {
	for _, n := range []int{100, 1000, 9000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			bus := presence.NewLocalBus()
			subs := make([]*presence.Subscription, n)
			for i := range subs {
				subs[i] = bus.Subscribe(1)
			}
			b.ReportAllocs()
			for b.Loop() {
				bus.Publish(presence.Event{UserID: 1, Username: "u", Online: true})
				for _, s := range subs {
					<-s.C
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkBatcher: status changes and activity from many users, flushed
// in one write per interval.
func BenchmarkBatcher(b *testing.B) {
	p := &memPersister{}
	batcher := presence.NewBatcher(p, presence.NewFakeClock(t0), time.Second, nil)
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		i++
		batcher.RecordStatus(i%20000, i%2 == 0, t0)
		if i%20000 == 0 {
			batcher.Flush(context.Background())
		}
	}
}
