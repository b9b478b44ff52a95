package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The -centrifugo mode measures Centrifugo (a built binary, e.g. `go
// install github.com/centrifugal/centrifugo/v6@v6.9.1`) the way issue 16
// quotes it, with the same clients, reader and kernel stamps as the
// presence runs, so the two can be compared on the same box in the same
// hour: -tabs sockets subscribe to one channel with join/leave pushes on;
// each round a probe client connects and subscribes, and its join push
// to every socket is timed from the start of the probe's dial. The probe
// then leaves, and the round waits for every socket to see that too.
//
// There are no widget streams here: the -events presence runs have one
// per tab as well, which the server also writes to on every change.

// cfChannel is the channel every socket subscribes to.
const cfChannel = "loadgen"

// cfReport is what -centrifugo measures; it is also written as JSON.
type cfReport struct {
	Server          string
	Tabs            int
	WSConnectPerSec float64
	// RampQuietAfterMS is how long after the last subscribe the ramp's
	// join pushes (N²/2) went quiet.
	RampQuietAfterMS float64
	ServerRSSBaseKiB int64
	WSPerConnKiB     float64
	FanoutWS         stats
	FanoutWSArrival  stats
	// FanoutWSRoundP99MS is each round's own p99 to all sockets.
	FanoutWSRoundP99MS []float64
	// FanoutRoundStartUnixNano is when each round began, as in report.
	FanoutRoundStartUnixNano []int64
}

// cfClient is one subscriber.
type cfClient struct {
	conn       *wsConn
	subscribed atomic.Bool
	// joinAt and joinRx are when this round's join push was read and
	// stamped by the kernel (0: not yet); left counts leave pushes.
	joinAt, joinRx atomic.Int64
	left           atomic.Int64
}

func runCentrifugo(c config) error {
	if err := addrFree(c.addr); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "loadgen-centrifugo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	client := map[string]any{"insecure": true, "allowed_origins": []string{"*"}}
	if c.centrifugoQueue > 0 {
		client["queue_max_size"] = c.centrifugoQueue
	}
	conf, _ := json.Marshal(map[string]any{
		"client":      client,
		"channel":     map[string]any{"without_namespace": map[string]any{"presence": true, "join_leave": true, "force_push_join_leave": true}},
		"http_server": map[string]any{"address": host, "port": json.Number(port)},
		"log":         map[string]any{"level": "error"},
		"health":      map[string]any{"enabled": true},
	})
	confPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return err
	}
	srv := exec.Command(c.centrifugo, "--config", confPath)
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start centrifugo: %w", err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	base := "http://" + c.addr
	if err := waitFor200(base + "/health"); err != nil {
		return err
	}
	r := cfReport{Server: c.centrifugo, Tabs: c.tabs}
	time.Sleep(time.Second)
	r.ServerRSSBaseKiB = rssKiB(srv.Process.Pid)

	wsURL := "ws://" + c.addr + "/connection/websocket"
	connect := []byte(`{"id":1,"connect":{}}`)
	subscribe := []byte(`{"id":2,"subscribe":{"channel":"` + cfChannel + `"}}`)
	// lastJoin is when a join push was last read, for the ramp's end.
	var lastJoin atomic.Int64
	// The sockets the server closed, by close code (0: none given).
	var cutMu sync.Mutex
	cutCodes := map[uint32]int{}
	cut := func() (n int, codes string) {
		cutMu.Lock()
		defer cutMu.Unlock()
		for code, k := range cutCodes {
			n += k
			codes += fmt.Sprintf(" %d×%d", k, code)
		}
		return n, codes
	}
	d := &net.Dialer{}
	// dial connects cl. A subscriber subscribes once connected, so that
	// its reader sees the reply; the probe sends both commands at once
	// (as the presence probe's dial alone makes it online).
	dial := func(cl *cfClient, probe bool, onMessage func(*wsConn, []byte, int64)) error {
		hello := connect
		if probe {
			hello = slices.Concat(connect, []byte("\n"), subscribe)
		}
		conn, err := dialWS(context.Background(), d, wsURL, 30*time.Second, hello, []byte(`"client"`), onMessage, func() {
			cutMu.Lock()
			cutCodes[cl.conn.closeCode.Load()]++
			cutMu.Unlock()
		})
		if err != nil {
			return err
		}
		cl.conn = conn
		if err := conn.start(); err != nil {
			return err
		}
		if probe {
			return nil
		}
		return conn.WriteText(subscribe)
	}

	// Phase 1: every socket connects and subscribes.
	clients := make([]*cfClient, c.tabs)
	for i := range clients {
		clients[i] = &cfClient{}
	}
	onMessage := func(cl *cfClient) func(*wsConn, []byte, int64) {
		return func(conn *wsConn, msg []byte, now int64) {
			// Replies and pushes come newline-separated, several per message.
			for line := range bytes.SplitSeq(msg, []byte("\n")) {
				switch {
				case string(line) == "{}": // the server's ping
					go conn.WriteText([]byte("{}")) // never wait in the reader, which serves every socket
				case bytes.HasPrefix(line, []byte(`{"id":2,"subscribe":`)):
					cl.subscribed.Store(true)
				case bytes.Contains(line, []byte(`"join":`)):
					lastJoin.Store(now)
					if cl.joinAt.Load() == 0 {
						cl.joinRx.Store(conn.rx.Load())
						cl.joinAt.Store(now)
					}
				case bytes.Contains(line, []byte(`"leave":`)):
					cl.left.Add(1)
				}
			}
		}
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c.connectConc)
	for range c.connectConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(clients) {
					return
				}
				if err := dial(clients[i], false, onMessage(clients[i])); err != nil {
					errs <- fmt.Errorf("socket %d: %w", i, err)
					next.Store(int64(len(clients))) // the other dialers stop too
					return
				}
			}
		}()
	}
	wg.Wait()
	last := time.Now()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	defer func() {
		for _, cl := range clients {
			if cl.conn != nil {
				cl.conn.Close()
			}
		}
	}()
	if err := await(30*time.Second, "subscribed", func() int {
		return countIf(clients, func(cl *cfClient) bool { return !cl.subscribed.Load() })
	}); err != nil {
		n, codes := cut()
		return fmt.Errorf("%w (the server closed %d sockets, by close code:%s)", err, n, codes)
	}
	r.WSConnectPerSec = float64(c.tabs) / last.Sub(start).Seconds()
	for time.Since(time.Unix(0, lastJoin.Load())) < time.Second {
		if time.Since(last) > 2*time.Minute {
			return fmt.Errorf("the ramp's join pushes still coming after 2 min")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.RampQuietAfterMS = max(0, float64(lastJoin.Load()-last.UnixNano())/1e6)
	if n, codes := cut(); n > 0 {
		return fmt.Errorf("the server closed %d sockets during the ramp (by close code:%s)", n, codes)
	}
	time.Sleep(time.Second)
	r.WSPerConnKiB = float64(rssKiB(srv.Process.Pid)-r.ServerRSSBaseKiB) / float64(c.tabs)
	logf("centrifugo: %d sockets subscribed at %.0f/s; measuring %d rounds", c.tabs, r.WSConnectPerSec, c.rounds)

	// Phase 2: rounds of one join to every socket.
	var lat, rx []float64
	for i := range c.rounds {
		time.Sleep(c.roundGap)
		for _, cl := range clients {
			cl.joinAt.Store(0)
			cl.joinRx.Store(0)
			cl.left.Store(0)
		}
		begin := time.Now().UnixNano()
		r.FanoutRoundStartUnixNano = append(r.FanoutRoundStartUnixNano, begin)
		probe := &cfClient{}
		if err := dial(probe, true, func(*wsConn, []byte, int64) {}); err != nil {
			return fmt.Errorf("round %d: probe: %w", i, err)
		}
		if err := await(10*time.Second, "the probe's join", func() int {
			return countIf(clients, func(cl *cfClient) bool { return cl.joinAt.Load() == 0 })
		}); err != nil {
			probe.conn.Close()
			n, codes := cut()
			return fmt.Errorf("round %d: %w (the server closed %d sockets, by close code:%s)", i, err, n, codes)
		}
		var round []float64
		for _, cl := range clients {
			ms := float64(cl.joinAt.Load()-begin) / 1e6
			round = append(round, ms)
			if s := cl.joinRx.Load(); s != 0 {
				rx = append(rx, float64(s-begin)/1e6)
			}
		}
		lat = append(lat, round...)
		r.FanoutWSRoundP99MS = append(r.FanoutWSRoundP99MS, summarize(round).P99MS)
		probe.conn.Close()
		if err := await(10*time.Second, "the probe's leave", func() int {
			return countIf(clients, func(cl *cfClient) bool { return cl.left.Load() == 0 })
		}); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
	}
	r.FanoutWS, r.FanoutWSArrival = summarize(lat), summarize(rx)
	if n, codes := cut(); n > 0 {
		return fmt.Errorf("the server closed %d sockets during the rounds (by close code:%s)", n, codes)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("server", r.Server)
	row("sockets", fmt.Sprintf("%d, subscribed to one channel at %.0f/s; joins of the ramp quiet %.1f s after the last", r.Tabs, r.WSConnectPerSec, r.RampQuietAfterMS/1e3))
	row("RSS per subscribed WebSocket", fmt.Sprintf("%.1f KiB", r.WSPerConnKiB))
	row("one join → all sockets", r.FanoutWS.String())
	row("  arrived at the sockets (kernel stamp)", r.FanoutWSArrival.String())
	if line := roundsLine(r.FanoutWSRoundP99MS); line != "" {
		row("  each round's own p99", line)
	}
	tw.Flush()
	out, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(c.out, out, 0o644)
}

// await polls missing until it returns 0, for up to timeout.
func await(timeout time.Duration, what string, missing func() int) error {
	deadline := time.Now().Add(timeout)
	for {
		n := missing()
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sockets lack %s after %s", n, what, timeout)
		}
		time.Sleep(5 * time.Millisecond) // as the presence workers poll
	}
}

func countIf(clients []*cfClient, f func(*cfClient) bool) int {
	n := 0
	for _, cl := range clients {
		if f(cl) {
			n++
		}
	}
	return n
}
