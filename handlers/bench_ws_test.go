package handlers_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
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
