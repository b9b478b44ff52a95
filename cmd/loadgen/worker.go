package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A worker process holds a slice of the simulated tabs, dialling from its
// own loopback source address so that many processes together can exceed
// one process's file limit and one address's ephemeral ports. It reads one
// JSON command per line on stdin and answers one JSON line on stdout.

type command struct {
	Cmd     string  `json:"cmd"`
	Target  int64   `json:"target,omitempty"`  // await-total: the count every widget must show
	Probe   string  `json:"probe,omitempty"`   // probe-reset: the username whose WS event is timed
	Rate    float64 `json:"rate,omitempty"`    // pings: per tab per second
	Seconds float64 `json:"seconds,omitempty"` // pings, await-total: duration or timeout
	Conc    int     `json:"conc,omitempty"`    // connect: connections in flight
}

type reply struct {
	OK        bool      `json:"ok"`
	Err       string    `json:"err,omitempty"`
	Tabs      int       `json:"tabs,omitempty"`
	FirstAt   int64     `json:"first_at,omitempty"` // unix ns
	LastAt    int64     `json:"last_at,omitempty"`  // unix ns
	Times     []int64   `json:"times,omitempty"`    // unix ns, one per tab
	RxTimes   []int64   `json:"rx_times,omitempty"` // probe-collect: the kernel's receive stamps, unix ns, one per tab
	Pongs     int64     `json:"pongs,omitempty"`
	Sent      int64     `json:"sent,omitempty"`
	Latencies []float64 `json:"latencies,omitempty"` // ms
	Drops     int64     `json:"drops,omitempty"`
	Failed    int64     `json:"failed,omitempty"`
}

type tab struct {
	token string
	ws    *wsConn
	wmu   sync.Mutex
	sse   io.Closer

	total    atomic.Int64           // latest data-presence-total seen on the stream
	totalAt  atomic.Int64           // when it changed to that value
	probe    atomic.Pointer[[]byte] // `"username":"…"` of the user whose status event is timed
	probeAt  atomic.Int64
	probeRx  atomic.Int64 // the kernel's receive stamp of the probe's event (rxstamp_linux.go)
	pmu      sync.Mutex
	pending  []int64 // send times of unanswered pings
	lat      []float64
	pongs    atomic.Int64
	closing  atomic.Bool
	sseReady chan struct{}
	// follower: another tab of the same simulated browser holds the
	// stream and would relay it (BroadcastChannel); this one opens none.
	follower bool

	// Crash phase: a gone tab was closed by its user while the server was
	// down and never reconnects; the others do, like presence.js and the
	// widget's stream.
	gone        atomic.Bool
	sseRetry    atomic.Int64 // ms, as the stream announced
	wsUp, sseUp atomic.Bool
	wsAt, sseAt atomic.Int64 // when each last (re)connected, unix ns
	redialing   [2]atomic.Bool
}

type worker struct {
	base   string
	events bool
	tabs   []*tab
	dialer *net.Dialer
	http   *http.Client
	drops  atomic.Int64

	reconnect atomic.Bool  // crash phase: redial dropped connections
	redials   atomic.Int64 // redial attempts, failed ones included
	sseBytes  atomic.Int64 // bytes read on every tab's stream (see slow.go)
	statuses  atomic.Int64 // user.status.changed read on every tab's WebSocket
	lastWS    atomic.Int64 // unix ns of the last message read on any WebSocket
}

// Backoff of a redialling tab, as presence.js: min(max, min·2ⁿ) ±50%.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
)

var errNoConn = errors.New("not connected")

var totalAttr = []byte(`data-presence-total="`)

// parseTotal finds the widget's online count in a fragment, cheaply: the
// loadgen shares the machine with the server, so its own CPU counts.
func parseTotal(b []byte) (int64, bool) {
	i := bytes.Index(b, totalAttr)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(totalAttr):]
	var n int64
	j := 0
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + int64(b[j]-'0')
	}
	return n, j > 0
}

func runWorker(base, source string, events bool, tabsPerBrowser int, tokens []string) error {
	d := &net.Dialer{Timeout: 30 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	w := &worker{
		base:   base,
		events: events,
		dialer: d,
		http:   &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64, DisableCompression: true}},
	}
	for i, t := range tokens {
		w.tabs = append(w.tabs, &tab{token: t, sseReady: make(chan struct{}), follower: i%tabsPerBrowser != 0})
	}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			out.Encode(reply{Err: err.Error()})
			continue
		}
		r := w.do(c)
		r.OK = r.Err == ""
		out.Encode(r)
		if c.Cmd == "stop" {
			return nil
		}
	}
	return in.Err()
}

func (w *worker) do(c command) reply {
	switch c.Cmd {
	case "ws-connect":
		return w.connect(c.Conc, w.openWS)
	case "sse-connect":
		return w.connect(c.Conc, w.openSSE)
	case "ws-redial":
		// -nodes: dial again the tabs whose WebSocket failed, as
		// presence.js would.
		return w.connectTabs(w.missing(func(t *tab) bool { return !t.wsUp.Load() }), c.Conc, w.openWS)
	case "sse-redial":
		return w.connectTabs(w.missing(func(t *tab) bool { return !t.follower && !t.sseUp.Load() }), c.Conc, w.openSSE)
	case "ws-close":
		for _, t := range w.tabs {
			t.closing.Store(true)
			if ws := t.conn(); ws != nil {
				ws.Close()
			}
		}
		return reply{Tabs: len(w.tabs)}
	case "await-total":
		return w.awaitTotal(c.Target, time.Duration(c.Seconds*float64(time.Second)))
	case "probe-reset":
		// Its coming online only: at 9,000 sockets the previous round's
		// offline event may still be on its way, and must not be taken
		// for this round's event.
		marker := []byte(`"username":"` + c.Probe + `","is_online":true`)
		for _, t := range w.tabs {
			t.probe.Store(&marker)
			t.probeAt.Store(0)
			t.probeRx.Store(0)
		}
		return reply{}
	case "probe-collect":
		return w.probeCollect(time.Duration(c.Seconds * float64(time.Second)))
	case "pings":
		return w.pings(c.Rate, time.Duration(c.Seconds*float64(time.Second)))
	case "drops":
		return reply{Drops: w.drops.Load()}
	case "sse-bytes":
		return reply{Sent: w.sseBytes.Load()}
	case "ws-events":
		return reply{Sent: w.statuses.Load()}
	case "ws-quiet":
		return w.quiet(time.Duration(c.Seconds * float64(time.Second)))
	case "crash-prep":
		// The first Target tabs will be closed during the outage; every
		// other tab redials when its connections drop.
		for i, t := range w.tabs {
			t.gone.Store(i < int(c.Target))
		}
		w.reconnect.Store(true)
		return reply{}
	case "await-reconnect":
		return w.awaitReconnect(time.Duration(c.Seconds * float64(time.Second)))
	case "stop":
		for _, t := range w.tabs {
			t.closing.Store(true)
			t.closeAll()
		}
		return reply{}
	}
	return reply{Err: "unknown command " + c.Cmd}
}

// connect opens one connection per tab with conc in flight and reports when
// the first and the last finished.
func (w *worker) connect(conc int, open func(*tab) error) reply {
	return w.connectTabs(w.tabs, conc, open)
}

// missing returns the tabs for which lacks is true.
func (w *worker) missing(lacks func(*tab) bool) []*tab {
	var out []*tab
	for _, t := range w.tabs {
		if lacks(t) {
			out = append(out, t)
		}
	}
	return out
}

// connectTabs is connect for some of the worker's tabs.
func (w *worker) connectTabs(tabs []*tab, conc int, open func(*tab) error) reply {
	if conc <= 0 {
		conc = 256
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var first, last atomic.Int64
	for _, t := range tabs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := open(t); err != nil {
				if failed.Add(1) == 1 {
					fmt.Fprintln(os.Stderr, "loadgen worker:", err)
				}
				return
			}
			now := time.Now().UnixNano()
			first.CompareAndSwap(0, now)
			for {
				l := last.Load()
				if now <= l || last.CompareAndSwap(l, now) {
					break
				}
			}
		}()
	}
	wg.Wait()
	return reply{Tabs: len(tabs), FirstAt: first.Load(), LastAt: last.Load(), Failed: failed.Load()}
}

func (w *worker) openWS(t *tab) error {
	u := "ws" + w.base[len("http"):] + "/ws/user-status/?token=" + url.QueryEscape(t.token)
	if !w.events {
		u += "&events=0"
	}
	t.closing.Store(false)
	t.pmu.Lock()
	t.pending = nil // pings to a lost connection get no pong
	t.pmu.Unlock()
	conn, err := dialWS(context.Background(), w.dialer, u, 30*time.Second, nil, []byte("connection.ack"),
		func(c *wsConn, msg []byte, now int64) { w.onWSMessage(t, c, msg, now) },
		func() { t.wsUp.Store(false); w.dropped(t, 0) })
	if err != nil {
		return err
	}
	// Up before its reader starts: an end the reader sees at once must
	// find it up, to mark it down and redial.
	t.wmu.Lock()
	t.ws = conn
	t.wmu.Unlock()
	t.wsUp.Store(true)
	t.wsAt.Store(time.Now().UnixNano())
	if err := conn.start(); err != nil {
		t.wsUp.Store(false)
		return err
	}
	return nil
}

// conn returns the tab's current WebSocket, or nil.
func (t *tab) conn() *wsConn {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.ws
}

// closeAll closes the tab's WebSocket and stream.
func (t *tab) closeAll() {
	t.wmu.Lock()
	ws, sse := t.ws, t.sse
	t.wmu.Unlock()
	if ws != nil {
		ws.Close()
	}
	if sse != nil {
		sse.Close()
	}
}

// dropped handles the end of one of a tab's connections (0 = WebSocket,
// 1 = SSE): an unexpected drop, or in the crash phase a redial with
// backoff until it is back.
func (w *worker) dropped(t *tab, which int) {
	if t.closing.Load() {
		return
	}
	if !w.reconnect.Load() {
		w.drops.Add(1)
		return
	}
	if t.gone.Load() || !t.redialing[which].CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer t.redialing[which].Store(false)
		if which == 1 {
			w.redialSSE(t)
			return
		}
		for attempt := 0; ; attempt++ { // presence.js
			base := min(backoffMax, backoffMin<<min(attempt, 6))
			time.Sleep(base/2 + time.Duration(rand.Int64N(int64(base))))
			if t.closing.Load() || t.gone.Load() {
				return
			}
			w.redials.Add(1)
			if w.openWS(t) == nil {
				return
			}
		}
	}()
}

// redialSSE reconnects a tab's stream as the widget's EventSource does: after
// the delay the stream announced (retry:, or the browser's 3 s), again at
// that delay while the network fails; after an HTTP error EventSource gives
// up and htmx's sse extension retries at 0.5 s × 1, 2, 4 … 128.
func (w *worker) redialSSE(t *tab) {
	delay := time.Duration(t.sseRetry.Load()) * time.Millisecond
	if delay <= 0 {
		delay = 3 * time.Second
	}
	htmxRetry := 0
	for {
		time.Sleep(delay)
		if t.closing.Load() || t.gone.Load() {
			return
		}
		w.redials.Add(1)
		err := w.openSSE(t)
		if err == nil {
			return
		}
		var se statusError
		if errors.As(err, &se) {
			htmxRetry = max(min(htmxRetry*2, 128), 1)
			delay = time.Duration(htmxRetry) * 500 * time.Millisecond
		}
	}
}

// statusError is an HTTP error answer to a stream request.
type statusError struct{ status string }

func (e statusError) Error() string { return "sse: " + e.status }

// awaitReconnect waits until every tab that is not gone has both its
// connections back, and reports when each came back and how many redials
// it took.
func (w *worker) awaitReconnect(timeout time.Duration) reply {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		var times []int64
		for _, t := range w.tabs {
			if t.gone.Load() {
				continue
			}
			if !t.wsUp.Load() || (!t.follower && !t.sseUp.Load()) {
				missing++
			}
			times = append(times, max(t.wsAt.Load(), t.sseAt.Load()))
		}
		if missing == 0 {
			return reply{Times: times, Sent: w.redials.Load()}
		}
		if time.Now().After(deadline) {
			return reply{Err: fmt.Sprintf("%d tabs not reconnected after %v", missing, timeout)}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onWSMessage handles a message of the tab's WebSocket conn, read at
// now (unix ns). It runs on the worker's reader (reactor_linux.go) and
// must not wait.
func (w *worker) onWSMessage(t *tab, conn *wsConn, msg []byte, now int64) {
	w.lastWS.Store(now)
	switch {
	case bytes.Contains(msg, []byte(`"pong"`)):
		t.pongs.Add(1)
		t.pmu.Lock()
		if len(t.pending) > 0 {
			t.lat = append(t.lat, float64(now-t.pending[0])/1e6)
			t.pending = t.pending[1:]
		}
		t.pmu.Unlock()
	case bytes.Contains(msg, []byte("user.status.changed")):
		w.statuses.Add(1)
		if p := t.probe.Load(); p != nil && t.probeAt.Load() == 0 && bytes.Contains(msg, *p) {
			t.probeRx.Store(conn.rx.Load())
			t.probeAt.Store(now)
		}
	}
}

func (w *worker) openSSE(t *tab) error {
	if t.follower {
		return nil // its browser's stream is another tab's
	}
	stream, err := dialSSE(context.Background(), w.dialer, w.base+"/widgets/online-users/stream", "Bearer "+t.token, 30*time.Second,
		func(line []byte) { w.onSSELine(t, line) },
		func() { t.sseUp.Store(false); w.dropped(t, 1) })
	if err != nil {
		return err
	}
	t.wmu.Lock()
	t.sse = stream
	t.wmu.Unlock()
	t.sseUp.Store(true) // before its reader starts, as for the WebSocket
	t.sseAt.Store(time.Now().UnixNano())
	opened := time.Now().UnixNano()
	if err := stream.start(); err != nil {
		t.sseUp.Store(false)
		return err
	}
	// Like the widget, fetch the current list once the stream is open. The
	// stream is up either way, so a failed fetch is retried here (the
	// widget shows its error state and retries) rather than reported.
	var body []byte
	for attempt := range 10 {
		lr, _ := http.NewRequest("GET", w.base+"/widgets/online-users/list", nil)
		lr.Header.Set("Authorization", "Bearer "+t.token)
		list, err := w.http.Do(lr)
		if err == nil {
			body, err = io.ReadAll(list.Body)
			list.Body.Close()
			if err == nil && list.StatusCode == 200 {
				break
			}
		}
		if attempt == 9 {
			fmt.Fprintln(os.Stderr, "loadgen worker: list:", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The list wins unless the stream has pushed since it opened.
	if n, ok := parseTotal(body); ok && t.totalAt.Load() < opened {
		t.total.Store(n)
		t.totalAt.Store(time.Now().UnixNano())
	}
	return nil
}

// onSSELine handles a line of the tab's widget stream. It runs on the
// worker's reader and must not wait.
func (w *worker) onSSELine(t *tab, line []byte) {
	w.sseBytes.Add(int64(len(line) + 1))
	if v, ok := bytes.CutPrefix(line, []byte("retry: ")); ok {
		if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			t.sseRetry.Store(ms)
		}
		return
	}
	if n, ok := parseTotal(line); ok {
		if t.total.Swap(n) != n {
			t.totalAt.Store(time.Now().UnixNano())
		}
	}
}

// awaitTotal waits until every tab's widget shows target, then returns
// when each got there.
func (w *worker) awaitTotal(target int64, timeout time.Duration) reply {
	deadline := time.Now().Add(timeout)
	for {
		ok, open := 0, 0
		for _, t := range w.tabs {
			if t.gone.Load() || t.follower {
				continue // closed by its user in the crash phase; no stream of its own
			}
			open++
			if t.total.Load() == target {
				ok++
			}
		}
		if ok == open {
			break
		}
		if time.Now().After(deadline) {
			return reply{Err: fmt.Sprintf("%d of %d widgets show %d after %v (shown: %s)", ok, open, target, timeout, w.shown())}
		}
		time.Sleep(5 * time.Millisecond)
	}
	times := make([]int64, 0, len(w.tabs))
	for _, t := range w.tabs {
		if !t.gone.Load() && !t.follower {
			times = append(times, t.totalAt.Load())
		}
	}
	return reply{Times: times}
}

// shown summarizes the counts the widgets show, most frequent first.
func (w *worker) shown() string {
	n := map[int64]int{}
	for _, t := range w.tabs {
		if !t.gone.Load() && !t.follower {
			n[t.total.Load()]++
		}
	}
	var out []string
	for len(n) > 0 && len(out) < 5 {
		var best int64
		for v, c := range n {
			if c > n[best] || (c == n[best] && v < best) {
				best = v
			}
		}
		out = append(out, fmt.Sprintf("%d×%d", n[best], best))
		delete(n, best)
	}
	return strings.Join(out, ", ")
}

// probeCollect waits for every tab's WebSocket to see the probe's event.
func (w *worker) probeCollect(timeout time.Duration) reply {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, t := range w.tabs {
			if t.probeAt.Load() == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return reply{Err: fmt.Sprintf("%d sockets missed the probe event", missing)}
		}
		time.Sleep(5 * time.Millisecond)
	}
	times := make([]int64, len(w.tabs))
	rx := make([]int64, len(w.tabs))
	for i, t := range w.tabs {
		times[i] = t.probeAt.Load()
		rx[i] = t.probeRx.Load()
	}
	return reply{Times: times, RxTimes: rx}
}

// quiet waits until no WebSocket of the worker has read anything for a
// second, and reports when the last message came (LastAt).
func (w *worker) quiet(timeout time.Duration) reply {
	deadline := time.Now().Add(timeout)
	for time.Since(time.Unix(0, w.lastWS.Load())) < time.Second {
		if time.Now().After(deadline) {
			return reply{Err: "sockets still receiving after " + timeout.String()}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return reply{LastAt: w.lastWS.Load()}
}

// pings makes every tab ping at rate per second for d, then reports pong
// latencies.
func (w *worker) pings(rate float64, d time.Duration) reply {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, t := range w.tabs {
		t.pmu.Lock()
		t.pending, t.lat = nil, nil
		t.pmu.Unlock()
		t.pongs.Store(0)
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	// One goroutine per 100 tabs, spreading sends over the interval.
	for start := 0; start < len(w.tabs); start += 100 {
		group := w.tabs[start:min(start+100, len(w.tabs))]
		wg.Go(func() {
			tick := time.NewTicker(interval / time.Duration(len(group)))
			defer tick.Stop()
			i := 0
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				t := group[i%len(group)]
				i++
				t.wmu.Lock()
				err := errNoConn
				if t.ws != nil && t.wsUp.Load() {
					t.pmu.Lock()
					t.pending = append(t.pending, time.Now().UnixNano())
					t.pmu.Unlock()
					err = t.ws.WriteText([]byte(`{"type":"ping"}`))
				}
				t.wmu.Unlock()
				if err == nil {
					sent.Add(1)
				}
			}
		})
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // last pongs in flight
	var r reply
	r.Sent = sent.Load()
	for _, t := range w.tabs {
		r.Pongs += t.pongs.Load()
		t.pmu.Lock()
		r.Latencies = append(r.Latencies, t.lat...)
		t.pmu.Unlock()
	}
	return r
}
