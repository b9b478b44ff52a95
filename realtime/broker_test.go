package realtime

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSSEBroker_SlowConsumer: a subscriber that stops reading is cut off by
// the write deadline; a healthy subscriber keeps receiving every event, in
// order, and the publisher is never stuck behind the stalled one.
func TestSSEBroker_SlowConsumer(t *testing.T) {
	b := NewBroker(time.Hour, 300*time.Millisecond, &ConnCap{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.Serve(context.Background(), w, r, "") }))
	defer srv.Close()

	// The stalled peer: sends its request, then never reads a byte.
	stalled, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(stalled, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan int, 1024)
	go func() {
		defer close(got)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "data: %d", &n); err == nil {
				got <- n
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for b.Subscribers() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("subscribers did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}

	const events = 200
	pad := strings.Repeat("x", 64<<10) // 200 × 64 KiB: far more than socket buffers hold
	published := make(chan struct{})
	go func() {
		for i := range events {
			b.Publish("presence", []byte(fmt.Sprintf("%d %s", i, pad)))
		}
		close(published)
	}()
	for i := range events {
		select {
		case n, ok := <-got:
			if !ok || n != i {
				t.Fatalf("healthy subscriber got %d (open=%v), want %d", n, ok, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("healthy subscriber stuck at event %d: the stalled one blocks the stream", i)
		}
	}
	<-published
	for b.cutOff.Load() != 1 || b.Subscribers() != 1 {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("stalled subscriber not cut off: cut=%d subscribers=%d", b.cutOff.Load(), b.Subscribers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	goroutines := runtime.NumGoroutine()
	resp.Body.Close()
	if err := b.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("goroutines before shutdown: %d", goroutines)
}

// TestSSEBroker_RefusesEmptyEvents: an empty event would end every stream
// in r3labs/sse; publish must drop it.
func TestSSEBroker_RefusesEmptyEvents(t *testing.T) {
	b := NewBroker(time.Hour, time.Second, &ConnCap{})
	defer b.Shutdown(t.Context())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.Serve(context.Background(), w, r, "") }))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for b.Subscribers() != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	b.Publish("presence", nil)
	b.Publish("presence", []byte("still here"))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: still here" {
			return
		}
	}
	t.Fatal("stream ended: an empty event got through")
}
