package handlers_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
)

// BenchmarkWSPingPong is the keep-alive's hot path over real loopback
// sockets: 256 sockets (64 users) ping in parallel and wait for each pong.
// Client and server share the process, so ns/op includes both sides.
func BenchmarkWSPingPong(b *testing.B) {
	ts := MustStartServer(b, handlers.Config{WSMessageRate: -1})
	var conns []*websocket.Conn
	for i := range 64 {
		_, tok := ts.MustCreateUser(b, fmt.Sprintf("user%02d", i))
		for range 4 {
			c, _, err := websocket.DefaultDialer.Dial(ts.wsURL("?events=0&token="+tok), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			if _, _, err := c.ReadMessage(); err != nil { // the ack
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
	}
	ping := []byte(`{"type":"ping"}`)
	var next atomic.Int64
	b.SetParallelism(len(conns) / 2) // 256 goroutines on 2 procs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := conns[int(next.Add(1)-1)%len(conns)]
		for pb.Next() {
			if err := c.WriteMessage(websocket.TextMessage, ping); err != nil {
				b.Error(err)
				return
			}
			_, msg, err := c.ReadMessage()
			if err != nil || !bytes.Contains(msg, []byte("pong")) {
				b.Errorf("%q %v", msg, err)
				return
			}
		}
	})
}

// BenchmarkWSFanout is the original protocol's event fan-out over real
// loopback sockets: 1,000 sockets (250 users, 4 tabs each) that want
// events; one op is one status change published on the engine's bus, until
// every socket has read its user.status.changed. ns/op is the time from
// publishing to the last socket's read, ns/delivery that over the sockets;
// p50-ms and p99-ms are over every socket's read of every change. Client
// and server share the process, so the readers' CPU is in the figures too,
// as in the loadgen.
func BenchmarkWSFanout(b *testing.B) {
	const users, tabs = 250, 4
	ts := MustStartServer(b, handlers.Config{WSMessageRate: -1})
	n := users * tabs
	var (
		remaining atomic.Int64
		published atomic.Int64 // unix ns of the change being read
		done      = make(chan struct{}, 1)
		lat       = make([]int64, 1<<20) // ns, the first million reads
		nlat      atomic.Int64
	)
	marker := []byte(`"username":"fanout-probe"`)
	for i := range users {
		_, tok := ts.MustCreateUser(b, fmt.Sprintf("fan%03d", i))
		for range tabs {
			c, _, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tok), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			go func() {
				for {
					_, msg, err := c.ReadMessage()
					if err != nil {
						return
					}
					if !bytes.Contains(msg, marker) {
						continue // the ack, and the others coming online
					}
					if k := nlat.Add(1) - 1; k < int64(len(lat)) {
						lat[k] = time.Now().UnixNano() - published.Load()
					}
					if remaining.Add(-1) == 0 {
						done <- struct{}{}
					}
				}
			}()
		}
	}
	// Every socket has its ack; let the connects' own events drain.
	time.Sleep(500 * time.Millisecond)
	bus := ts.Engine.Bus()
	ev := presence.Event{UserID: 1 << 40, Username: "fanout-probe", Mode: presence.ModeOnline}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		remaining.Store(int64(n))
		ev.Online = i%2 == 0
		i++
		published.Store(time.Now().UnixNano())
		bus.Publish(ev)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.Fatalf("change %d: %d of %d sockets did not read it", i, remaining.Load(), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i)/float64(n), "ns/delivery")
	got := lat[:min(nlat.Load(), int64(len(lat)))]
	slices.Sort(got)
	if len(got) > 0 {
		b.ReportMetric(float64(got[len(got)/2])/1e6, "p50-ms")
		b.ReportMetric(float64(got[len(got)*99/100])/1e6, "p99-ms")
	}
}
