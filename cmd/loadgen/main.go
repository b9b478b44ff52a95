// Command loadgen drives a real presence server over loopback with
// simulated browser tabs — each tab one keep-alive WebSocket speaking the
// real protocol plus one SSE stream exactly like the widget's (with
// -tabs-per-browser N, one stream per browser of N tabs, shared as
// presence.js shares it) — and reports
// what docs/PERFORMANCE.md tracks: connect rate, storm convergence, one-change
// fan-out latency, memory and goroutines per connection, ping throughput and
// pong latency, and database writes.
//
// It starts the server itself (--server, a built presence binary) on a
// fresh data dir, spreads the tabs over worker processes (each its own
// 127.0.0.x source address, since one process may hold 20,000 files and one
// address has ~28,000 ephemeral ports), runs the phases and stops
// everything. With -nodes N it starts N servers sharing presence through
// Redis on one PostgreSQL database instead (nodes.go). Every loop is
// bounded in count and time.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type config struct {
	server, addr, out   string
	tabs, perWorker     int
	events              bool
	grace, hold         time.Duration
	pingRate, pingSecs  float64
	rounds, connectConc int
	skipStorm           bool
	skipSlow            bool
	roundGap            time.Duration
	crash               bool
	crashClosed         float64
	tabsPerBrowser      int
	friends             bool
	friendsPerUser      int
	statuses            float64
	nodes               int    // -nodes N: N servers sharing presence through Redis (nodes.go)
	databaseURL         string // -nodes: the shared PostgreSQL database (default: a fresh one)
	redisURL            string // -nodes: the shared Redis
	centrifugo          string // -centrifugo BIN: measure Centrifugo instead (centrifugo.go)
	centrifugoQueue     int    // -centrifugo-queue: its client.queue_max_size (0: its default)
}

func run(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var c config
	worker := fs.Bool("worker", false, "internal: run as a worker process")
	base := fs.String("base", "", "internal: server URL for a worker")
	source := fs.String("source", "", "internal: source address for a worker")
	tokens := fs.String("tokens", "", "internal: token file for a worker")
	fs.StringVar(&c.server, "server", "bin/presence", "presence binary to start")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:18431", "address for the server")
	fs.StringVar(&c.out, "out", "loadgen.json", "JSON report file")
	fs.IntVar(&c.tabs, "tabs", 9000, "simulated tabs (each 1 WebSocket, and 1 SSE stream per -tabs-per-browser tabs)")
	fs.IntVar(&c.perWorker, "per-worker", 4000, "tabs per worker process (2 sockets each)")
	fs.BoolVar(&c.events, "events", false, "tabs' WebSockets also subscribe to user.status.changed (the original protocol's default); the widget's keep-alive does not")
	fs.DurationVar(&c.grace, "grace", time.Second, "server grace period")
	fs.DurationVar(&c.hold, "hold", 5*time.Minute, "how long to hold every tab open at the end")
	fs.Float64Var(&c.pingRate, "ping-rate", 2.5, "pings per tab per second in the ping phase")
	fs.Float64Var(&c.pingSecs, "ping-seconds", 10, "length of the ping phase")
	fs.IntVar(&c.rounds, "rounds", 10, "one-change fan-out rounds")
	fs.IntVar(&c.connectConc, "conc", 256, "connections in flight per worker")
	fs.DurationVar(&c.roundGap, "round-gap", 250*time.Millisecond, "quiet time before each one-change round, longer than the server's 50 ms coalescing window, so a round measures one change and not the tail of the previous one")
	fs.BoolVar(&c.skipStorm, "skip-storm", false, "skip the storm phase (with -events a storm is N² messages by design)")
	fs.BoolVar(&c.skipSlow, "skip-slow", false, "skip the slow-consumer phase (6), e.g. for quick fan-out runs")
	fs.BoolVar(&c.crash, "crash", true, "end with a SIGKILL under load, a restart and every tab reconnecting on its own")
	fs.Float64Var(&c.crashClosed, "crash-closed", 0.1, "fraction of tabs closed while the killed server is down")
	fs.Float64Var(&c.statuses, "statuses", 0, "fraction of users (0-1) given a mode (away or dnd, alternately) and a custom status text and emoji before they connect, so the widget's tiles carry modes and statuses (issue 12)")
	fs.IntVar(&c.tabsPerBrowser, "tabs-per-browser", 1, "tabs per simulated browser: each tab holds its WebSocket, but the browser's tabs share one SSE stream (held by its first tab), as presence.js does")
	fs.BoolVar(&c.friends, "friends", false, "friends mode (friends.go): a ring of -tabs users with -friends-per-user friends each, every one with a friends-scoped widget stream; -rounds probes come and go")
	fs.IntVar(&c.friendsPerUser, "friends-per-user", 50, "friends mode: friends of each user (even)")
	fs.IntVar(&c.nodes, "nodes", 1, "server processes sharing presence through Redis on one PostgreSQL database (nodes.go); tabs go round-robin to them")
	fs.StringVar(&c.databaseURL, "database-url", "", "with -nodes above 1: the PostgreSQL database the nodes share (default: a fresh loadgen_<pid> on postgres://postgres@127.0.0.1:5432, dropped after)")
	fs.StringVar(&c.redisURL, "redis", "redis://127.0.0.1:6379", "with -nodes above 1: the Redis the nodes share (under a --redis-prefix of the run's own)")
	fs.StringVar(&c.centrifugo, "centrifugo", "", "measure this Centrifugo binary instead of presence, for issue 16's comparison (centrifugo.go): -tabs sockets on one channel, -rounds joins to all, -conc dials in flight")
	fs.IntVar(&c.centrifugoQueue, "centrifugo-queue", 0, "with -centrifugo: its client.queue_max_size in bytes (0: its default, 1 MiB, which cuts sockets that lag that far; the ramp's N²/2 joins do at several thousand)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.centrifugo != "" {
		return runCentrifugo(c)
	}
	if c.friends {
		return runFriends(c)
	}
	if c.tabsPerBrowser < 1 {
		return fmt.Errorf("-tabs-per-browser must be at least 1")
	}
	if *worker {
		b, err := os.ReadFile(*tokens)
		if err != nil {
			return err
		}
		return runWorker(*base, *source, c.events, c.tabsPerBrowser, strings.Fields(string(b)))
	}
	return coordinate(c)
}

// report is everything measured; it is also written as JSON.
type report struct {
	Tabs, Workers    int
	TabsPerBrowser   int
	Streams          int // SSE streams: one per simulated browser
	EventsOnSockets  bool
	ServerRSSBaseKiB int64
	WSConnectPerSec  float64
	WSPerConnKiB     float64
	SSEPerConnKiB    float64
	PerTabKiB        float64 // server RSS per tab: its WebSocket and its share of its browser's stream
	GoroutinesPerTab float64
	// RampEventsQuietAfterMS: with -events, how long after the last
	// connect of phase 1 the sockets went quiet.
	RampEventsQuietAfterMS    float64 `json:",omitempty"`
	StormConnectSeconds       float64
	StormConvergedAfterLastMS float64
	// With -events: the status events the sockets received from the
	// first connect of the storm until they went quiet, when that was
	// (after the last connect), and the sockets the server cut meanwhile
	// (presence_websockets_slow_cut_total and the 1013s of a bus gap).
	StormEvents             int64   `json:",omitempty"`
	StormEventsQuietAfterMS float64 `json:",omitempty"`
	StormSocketsCut         float64 `json:",omitempty"`
	FanoutSSE               stats
	FanoutWS                *stats `json:",omitempty"`
	// FanoutWSArrival is FanoutWS timed by the kernel's receive stamps:
	// when the event reached each client socket, before the loadgen's
	// own reader ran (rxstamp_linux.go).
	FanoutWSArrival *stats `json:",omitempty"`
	// FanoutWSRoundP99MS is each round's own p99 to all sockets. A
	// round is 1/rounds of the samples, so the p99 over all of them is
	// set by the slowest round or two; this says whether one round was
	// slow or all were.
	FanoutWSRoundP99MS []float64 `json:",omitempty"`
	// FanoutRoundStartUnixNano is when each one-change round began (the
	// probe's dial), on the wall clock: to line rounds up with a
	// system-wide profile (perf record -k realtime) of the same run.
	FanoutRoundStartUnixNano   []int64 `json:",omitempty"`
	PingsPerSec                float64
	Pong                       stats
	PingPhaseDBTxPerSec        float64
	StormDBTxPerSec            float64
	StormRowsPerSec            float64
	CountChangeBytesPerViewer  float64 // phase 4: bytes each stream read per count-only change
	ListChangeBytesPerViewer   float64 // phase 6 control: bytes each stream read per change to the users shown
	SlowControl                stats   // one-change latency with a first-sorting probe (list changes)
	SlowWithReading            stats   // the same rounds while one stream reads 8 KiB every 100 ms (slow.go)
	SlowReadingP99MovedPercent float64
	SlowReadingKiB             float64 // what the slow-but-reading stream read in those rounds
	SlowReadingCut             bool    // whether the server cut it off (it should not: it reads)
	SlowWithStalled            stats   // the same rounds while one subscriber has stopped reading
	SlowP99MovedPercent        float64 // how much the others' p99 moved
	SlowCutAfterSeconds        float64 // from the stalled reader's first unsent push to its cut-off; -1 if never cut
	HoldSeconds                float64
	UnexpectedDrops            int64
	Crash                      *crashReport `json:",omitempty"`
	ShutdownSeconds            float64
}

type stats struct {
	N                   int
	P50MS, P99MS, MaxMS float64
}

// String is how the reports print a distribution.
func (s stats) String() string {
	return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)", s.P50MS, s.P99MS, s.MaxMS, s.N)
}

// roundsLine summarizes each round's own p99 for the reports ("" for none).
func roundsLine(p99s []float64) string {
	rs := slices.Sorted(slices.Values(p99s))
	if len(rs) == 0 {
		return ""
	}
	return fmt.Sprintf("median %.1f ms, min %.1f ms, max %.1f ms (%d rounds)", rs[len(rs)/2], rs[0], rs[len(rs)-1], len(rs))
}

func summarize(ms []float64) stats {
	if len(ms) == 0 {
		return stats{}
	}
	sort.Float64s(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(q*float64(len(ms))))] }
	return stats{N: len(ms), P50MS: at(0.50), P99MS: at(0.99), MaxMS: ms[len(ms)-1]}
}

type workerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex
}

func (w *workerProc) call(c command) (reply, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, _ := json.Marshal(c)
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		return reply{}, err
	}
	if !w.out.Scan() {
		return reply{}, fmt.Errorf("worker ended: %v", w.out.Err())
	}
	var r reply
	if err := json.Unmarshal(w.out.Bytes(), &r); err != nil {
		return r, err
	}
	if !r.OK {
		return r, fmt.Errorf("worker: %s", r.Err)
	}
	return r, nil
}

// all sends c to every worker at once.
func all(ws []*workerProc, c command) ([]reply, error) {
	out := make([]reply, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { out[i], errs[i] = w.call(c) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", a...) }

func coordinate(c config) error {
	if c.nodes > 1 {
		return coordinateNodes(c)
	}
	r := report{Tabs: c.tabs, TabsPerBrowser: c.tabsPerBrowser, EventsOnSockets: c.events}
	dir, err := os.MkdirTemp("", "presence-loadgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base := "http://" + c.addr

	data := filepath.Join(dir, "data")
	startServer := func() (*exec.Cmd, error) {
		srv := exec.Command(c.server, "serve", "--addr", c.addr, "--data", data,
			"--bcrypt-cost", "4", "--grace", c.grace.String(), "--log-level", "warn", "--max-conns-per-user", "0",
			"--register-limit", "0", "--login-limit", "0") // 9,000 users and tokens from one address
		srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
		if err := addrFree(c.addr); err != nil {
			return nil, err
		}
		if err := srv.Start(); err != nil {
			return nil, fmt.Errorf("start server: %w", err)
		}
		return srv, nil
	}
	srv, err := startServer()
	if err != nil {
		return err
	}
	defer func() { srv.Process.Kill() }()
	pid := srv.Process.Pid
	if err := waitHealthy(base); err != nil {
		return err
	}

	logf("registering %d users", c.tabs+3)
	tokens, err := register(base, c.tabs+1)
	if err != nil {
		return err
	}
	probeTok := tokens[c.tabs]
	tokens = tokens[:c.tabs]
	if n := int(c.statuses * float64(len(tokens))); n > 0 {
		logf("setting a mode and status for %d users", n)
		if err := setStatuses(base, tokens[:n]); err != nil {
			return err
		}
	}
	// For the slow-consumer phase: a probe whose name sorts before every
	// load user (so each of its changes pushes the whole list) and a user
	// whose stream will stop reading.
	firstTok, err := registerNamed(base, "a-probe")
	if err != nil {
		return err
	}
	stalledTok, err := registerNamed(base, "stalled")
	if err != nil {
		return err
	}

	nWorkers := (c.tabs + c.perWorker - 1) / c.perWorker
	r.Workers = nWorkers
	var workers []*workerProc
	self, _ := os.Executable()
	for i := range nWorkers {
		part := tokens[i*c.perWorker : min(len(tokens), (i+1)*c.perWorker)]
		tf := filepath.Join(dir, fmt.Sprintf("tokens-%d", i))
		os.WriteFile(tf, []byte(strings.Join(part, "\n")), 0o600)
		r.Streams += (len(part) + c.tabsPerBrowser - 1) / c.tabsPerBrowser // browsers do not straddle workers
		args := []string{"-worker", "-base", base, "-source", fmt.Sprintf("127.0.0.%d", 2+i), "-tokens", tf, "-tabs-per-browser", strconv.Itoa(c.tabsPerBrowser)}
		if c.events {
			args = append(args, "-events")
		}
		cmd := exec.Command(self, args...)
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		outp, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(outp)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		w := &workerProc{cmd: cmd, in: in, out: sc}
		workers = append(workers, w)
		defer func() { w.call(command{Cmd: "stop"}); cmd.Wait() }()
	}

	settle := func() { time.Sleep(3 * time.Second) }
	rss0 := rssKiB(pid)
	g0 := metric(base, "go_goroutines")
	r.ServerRSSBaseKiB = rss0

	// Phase 1: every tab's WebSocket, as fast as the workers can.
	logf("phase 1: %d WebSockets", c.tabs)
	reps, err := all(workers, command{Cmd: "ws-connect", Conc: c.connectConc})
	if err != nil {
		return err
	}
	first, last, failed := span(reps)
	if failed > 0 {
		return fmt.Errorf("%d WebSockets failed to connect", failed)
	}
	r.WSConnectPerSec = float64(c.tabs) / (float64(last-first) / 1e9)
	if c.events {
		// Connecting N sockets that want events is itself N²/2 of them.
		if r.RampEventsQuietAfterMS, err = quietAfter(workers, last); err != nil {
			return fmt.Errorf("phase 1: %w", err)
		}
	}
	settle()
	rss1 := rssKiB(pid)
	r.WSPerConnKiB = float64(rss1-rss0) / float64(c.tabs)

	// Phase 2: every browser's SSE stream; each widget must show everyone.
	logf("phase 2: %d SSE streams (%d tabs per browser)", r.Streams, c.tabsPerBrowser)
	if reps, err = all(workers, command{Cmd: "sse-connect", Conc: c.connectConc}); err != nil {
		return err
	}
	if _, _, failed := span(reps); failed > 0 {
		return fmt.Errorf("%d SSE streams failed to connect", failed)
	}
	if _, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs), Seconds: 30}); err != nil {
		return err
	}
	settle()
	rss2 := rssKiB(pid)
	r.SSEPerConnKiB = float64(rss2-rss1) / float64(r.Streams)
	r.PerTabKiB = float64(rss2-rss0) / float64(c.tabs)
	r.GoroutinesPerTab = (metric(base, "go_goroutines") - g0) / float64(c.tabs)

	// Phase 3: storm. Everyone leaves, the widgets watch the count fall to
	// zero, then every tab's WebSocket reconnects at once.
	if !c.skipStorm {
		if err := storm(c, base, workers, &r); err != nil {
			return err
		}
	}

	// Phase 4: one change, many watchers. A probe user comes online; time
	// until every widget (and, with --events, every socket) knows.
	logf("phase 4: %d fan-out rounds", c.rounds)
	var sseLat, wsLat, wsRx []float64
	bytes0, err := streamBytes(workers)
	if err != nil {
		return err
	}
	for i := range c.rounds {
		if _, err := all(workers, command{Cmd: "probe-reset", Probe: fmt.Sprintf("load%05d", c.tabs)}); err != nil {
			return err
		}
		time.Sleep(c.roundGap)
		start := time.Now().UnixNano()
		r.FanoutRoundStartUnixNano = append(r.FanoutRoundStartUnixNano, start)
		probe, err := dialProbe(base, probeTok)
		if err != nil {
			return err
		}
		reps, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs + 1), Seconds: 10})
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		sseLat = append(sseLat, since(start, reps)...)
		if c.events {
			if reps, err = all(workers, command{Cmd: "probe-collect", Seconds: 10}); err != nil {
				return fmt.Errorf("round %d: %w", i, err)
			}
			round := since(start, reps)
			r.FanoutWSRoundP99MS = append(r.FanoutWSRoundP99MS, summarize(slices.Clone(round)).P99MS)
			wsLat = append(wsLat, round...)
			for _, rep := range reps {
				for _, t := range rep.RxTimes {
					if t > 0 {
						wsRx = append(wsRx, float64(max(0, t-start))/1e6)
					}
				}
			}
		}
		probe.Close()
		if _, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs), Seconds: 10 + c.grace.Seconds()}); err != nil {
			return err
		}
	}
	r.FanoutSSE = summarize(sseLat)
	bytes1, err := streamBytes(workers)
	if err != nil {
		return err
	}
	r.CountChangeBytesPerViewer = perViewerPerChange(bytes1-bytes0, c.tabs, 2*c.rounds) // the probe comes and goes
	if c.events {
		s := summarize(wsLat)
		r.FanoutWS = &s
		if len(wsRx) > 0 {
			a := summarize(wsRx)
			r.FanoutWSArrival = &a
		}
	}

	// Phase 5: pings from every tab.
	logf("phase 5: pings at %.1f/s per tab for %.0fs", c.pingRate, c.pingSecs)
	tx0, t0 := metric(base, "presence_db_write_transactions_total"), time.Now()
	reps, err = all(workers, command{Cmd: "pings", Rate: c.pingRate, Seconds: c.pingSecs})
	if err != nil {
		return err
	}
	var pongs int64
	var lat []float64
	for _, rep := range reps {
		pongs += rep.Pongs
		lat = append(lat, rep.Latencies...)
	}
	r.PingsPerSec = float64(pongs) / c.pingSecs
	r.Pong = summarize(lat)
	r.PingPhaseDBTxPerSec = (metric(base, "presence_db_write_transactions_total") - tx0) / time.Since(t0).Seconds()

	// Phase 6: a slow consumer. Control rounds with a probe that changes
	// the shown list, then the same rounds while one stream has stopped
	// reading: it must be cut off, and the others must not notice.
	if !c.skipSlow {
		logf("phase 6: slow consumer")
		if err := slowConsumer(c, base, workers, firstTok, stalledTok, &r); err != nil {
			return err
		}
	}

	// Phase 7: hold everything open.
	logf("phase 7: holding for %v", c.hold)
	time.Sleep(c.hold)
	r.HoldSeconds = c.hold.Seconds()
	for _, w := range workers {
		rep, err := w.call(command{Cmd: "drops"})
		if err != nil {
			return err
		}
		r.UnexpectedDrops += rep.Drops
	}

	// Phase 8: SIGKILL under load, restart, and every tab back on its own.
	if c.crash {
		logf("phase 8: SIGKILL during pings, restart, reconnect")
		if srv, err = crash(c, base, data, workers, srv, startServer, &r); err != nil {
			return err
		}
	}

	// Graceful stop with everything connected.
	start := time.Now()
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
	r.ShutdownSeconds = time.Since(start).Seconds()

	print(r)
	b, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(c.out, append(b, '\n'), 0o644)
}

// fanoutRounds connects and disconnects the probe n times and returns the
// widgets' latencies for the connects.
func fanoutRounds(c config, base string, workers []*workerProc, tok string, n int, during func()) ([]float64, error) {
	var lat []float64
	for i := range n {
		time.Sleep(c.roundGap)
		start := time.Now().UnixNano()
		probe, err := dialProbe(base, tok)
		if err != nil {
			return nil, err
		}
		reps, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs + 2), Seconds: 10})
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", i, err)
		}
		lat = append(lat, since(start, reps)...)
		probe.Close()
		if _, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs + 1), Seconds: 10 + c.grace.Seconds()}); err != nil {
			return nil, err
		}
		if during != nil {
			during()
		}
	}
	return lat, nil
}

// slowConsumer measures the cost of a subscriber that cannot keep up: one
// that reads slowly (slow.go), then one that stops reading.
func slowConsumer(c config, base string, workers []*workerProc, firstTok, stalledTok string, r *report) error {
	// The stalled user is online (so counts are tabs+1 at rest).
	stalledWS, err := dialProbe(base, stalledTok)
	if err != nil {
		return err
	}
	defer stalledWS.Close()
	if _, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs + 1), Seconds: 10}); err != nil {
		return err
	}
	bytes0, err := streamBytes(workers)
	if err != nil {
		return err
	}
	control, err := fanoutRounds(c, base, workers, firstTok, c.rounds, nil)
	if err != nil {
		return err
	}
	r.SlowControl = summarize(control)
	bytes1, err := streamBytes(workers)
	if err != nil {
		return err
	}
	r.ListChangeBytesPerViewer = perViewerPerChange(bytes1-bytes0, c.tabs, 2*c.rounds)
	if err := slowReadingRounds(c, base, workers, firstTok, stalledTok, r); err != nil {
		return err
	}

	// A stream that sends its request and never reads a byte, with a small
	// receive window so the server's buffers fill in a few pushes.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /widgets/online-users/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", stalledTok)
	cut0 := metric(base, "presence_sse_slow_clients_cut_total")
	stalledAt := time.Now()
	var cutAt time.Time
	stalled, err := fanoutRounds(c, base, workers, firstTok, max(c.rounds, 20), func() {
		if cutAt.IsZero() && metric(base, "presence_sse_slow_clients_cut_total") > cut0 {
			cutAt = time.Now()
		}
	})
	if err != nil {
		return err
	}
	for i := 0; cutAt.IsZero() && i < 100; i++ { // up to 10 s more
		if metric(base, "presence_sse_slow_clients_cut_total") > cut0 {
			cutAt = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.SlowWithStalled = summarize(stalled)
	r.SlowP99MovedPercent = 100 * (r.SlowWithStalled.P99MS - r.SlowControl.P99MS) / r.SlowControl.P99MS
	r.SlowCutAfterSeconds = -1
	if !cutAt.IsZero() {
		r.SlowCutAfterSeconds = cutAt.Sub(stalledAt).Seconds()
	}
	return nil
}

// storm: everyone leaves, the widgets watch the count fall to zero, then
// every tab's WebSocket reconnects at once.
func storm(c config, base string, workers []*workerProc, r *report) error {
	logf("phase 3: storm")
	if _, err := all(workers, command{Cmd: "ws-close"}); err != nil {
		return err
	}
	if _, err := all(workers, command{Cmd: "await-total", Target: 0, Seconds: 30 + c.grace.Seconds()}); err != nil {
		return err
	}
	tx0, rows0, t0 := metric(base, "presence_db_write_transactions_total"), metric(base, "presence_db_presence_rows_written_total"), time.Now()
	cut0 := metric(base, "presence_websockets_slow_cut_total") + metric(base, "presence_websockets_gap_closed_total")
	ev0, err := statusEvents(workers)
	if err != nil {
		return err
	}
	reps, err := all(workers, command{Cmd: "ws-connect", Conc: c.connectConc})
	if err != nil {
		return err
	}
	first, last, failed := span(reps)
	if failed > 0 {
		return fmt.Errorf("storm: %d WebSockets failed", failed)
	}
	r.StormConnectSeconds = float64(last-first) / 1e9
	reps, err = all(workers, command{Cmd: "await-total", Target: int64(c.tabs), Seconds: 60})
	if err != nil {
		return err
	}
	var converged int64
	for _, rep := range reps {
		for _, t := range rep.Times {
			converged = max(converged, t)
		}
	}
	r.StormConvergedAfterLastMS = float64(converged-last) / 1e6
	time.Sleep(2 * time.Second) // let the batcher write the storm
	dt := time.Since(t0).Seconds()
	r.StormDBTxPerSec = (metric(base, "presence_db_write_transactions_total") - tx0) / dt
	r.StormRowsPerSec = (metric(base, "presence_db_presence_rows_written_total") - rows0) / dt

	if c.events {
		// Each connect is news to every socket already there: N²/2
		// events.
		if r.StormEventsQuietAfterMS, err = quietAfter(workers, last); err != nil {
			return fmt.Errorf("storm: %w", err)
		}
		ev1, err := statusEvents(workers)
		if err != nil {
			return err
		}
		r.StormEvents = ev1 - ev0
		r.StormSocketsCut = metric(base, "presence_websockets_slow_cut_total") + metric(base, "presence_websockets_gap_closed_total") - cut0
	}
	return nil
}

// quietAfter waits for every worker's sockets to go quiet, so that no
// later phase measures behind a backlog of events, and returns how long
// after last (unix ns) the last message came, in ms.
func quietAfter(workers []*workerProc, last int64) (float64, error) {
	reps, err := all(workers, command{Cmd: "ws-quiet", Seconds: 600})
	if err != nil {
		return 0, err
	}
	var quiet int64
	for _, rep := range reps {
		quiet = max(quiet, rep.LastAt)
	}
	return float64(quiet-last) / 1e6, nil
}

// statusEvents returns how many user.status.changed the workers' sockets
// have received.
func statusEvents(workers []*workerProc) (int64, error) {
	reps, err := all(workers, command{Cmd: "ws-events"})
	var n int64
	for _, rep := range reps {
		n += rep.Sent
	}
	return n, err
}

func span(reps []reply) (first, last, failed int64) {
	for _, r := range reps {
		if r.FirstAt != 0 && (first == 0 || r.FirstAt < first) {
			first = r.FirstAt
		}
		last = max(last, r.LastAt)
		failed += r.Failed
	}
	return
}

func since(start int64, reps []reply) []float64 {
	var out []float64
	for _, r := range reps {
		for _, t := range r.Times {
			out = append(out, float64(max(0, t-start))/1e6)
		}
	}
	return out
}

func print(r report) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("tabs (1 WS each; 1 SSE per browser)", fmt.Sprintf("%d in %d workers, %d per browser (%d streams), WS events: %v", r.Tabs, r.Workers, r.TabsPerBrowser, r.Streams, r.EventsOnSockets))
	row("WS connect rate", fmt.Sprintf("%.0f/s", r.WSConnectPerSec))
	if r.RampEventsQuietAfterMS > 0 {
		row("  status events of the connects quiet after", fmt.Sprintf("%.1f s", r.RampEventsQuietAfterMS/1e3))
	}
	row("RSS per idle WebSocket", fmt.Sprintf("%.1f KiB", r.WSPerConnKiB))
	row("RSS per idle SSE stream", fmt.Sprintf("%.1f KiB", r.SSEPerConnKiB))
	row("RSS per tab", fmt.Sprintf("%.1f KiB (%d tabs per browser)", r.PerTabKiB, r.TabsPerBrowser))
	row("goroutines per tab", fmt.Sprintf("%.2f", r.GoroutinesPerTab))
	row("storm: all WS connected in", fmt.Sprintf("%.2f s", r.StormConnectSeconds))
	row("storm: converged after last connect", fmt.Sprintf("%.0f ms", r.StormConvergedAfterLastMS))
	if r.StormEvents > 0 {
		row("storm: status events to sockets", fmt.Sprintf("%d, quiet %.1f s after the last connect, %.0f sockets cut", r.StormEvents, r.StormEventsQuietAfterMS/1e3, r.StormSocketsCut))
	}
	row("storm: DB tx/s, rows/s", fmt.Sprintf("%.1f, %.0f", r.StormDBTxPerSec, r.StormRowsPerSec))
	row("one change → all widgets", r.FanoutSSE.String())
	row("bytes per viewer per change", fmt.Sprintf("count only %.0f B, users shown %.0f B", r.CountChangeBytesPerViewer, r.ListChangeBytesPerViewer))
	row("list change → all widgets", r.SlowControl.String())
	if r.FanoutWS != nil {
		row("one change → all sockets", r.FanoutWS.String())
		if a := r.FanoutWSArrival; a != nil {
			row("  arrived at the sockets (kernel stamp)", a.String())
		}
		if line := roundsLine(r.FanoutWSRoundP99MS); line != "" {
			row("  each round's own p99", line)
		}
	}
	row("pings handled", fmt.Sprintf("%.0f/s", r.PingsPerSec))
	row("pong latency", fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms", r.Pong.P50MS, r.Pong.P99MS, r.Pong.MaxMS))
	row("DB tx/s during pings", fmt.Sprintf("%.1f", r.PingPhaseDBTxPerSec))
	row("slow reader: others' one-change p99", fmt.Sprintf("%.1f ms → %.1f ms with one reading 8 KiB/100 ms (%+.0f%%); it read %.0f KiB, cut off: %v",
		r.SlowControl.P99MS, r.SlowWithReading.P99MS, r.SlowReadingP99MovedPercent, r.SlowReadingKiB, r.SlowReadingCut))
	row("slow consumer: others' one-change p99", fmt.Sprintf("%.1f ms → %.1f ms with a stalled reader (%+.0f%%)", r.SlowControl.P99MS, r.SlowWithStalled.P99MS, r.SlowP99MovedPercent))
	row("slow consumer: cut off after", fmt.Sprintf("%.1f s after it stopped reading (-1 = never)", r.SlowCutAfterSeconds))
	row("held", fmt.Sprintf("%.0f s, unexpected drops: %d", r.HoldSeconds, r.UnexpectedDrops))
	if cr := r.Crash; cr != nil {
		row("SIGKILL during pings: database", fmt.Sprintf("integrity %s, %d users left online by the crash", cr.Integrity, cr.GhostsInDB))
		row("restart: healthy after", fmt.Sprintf("%.2f s (start-up reset included), %.2f s after the kill", cr.RestartSeconds, cr.DownSeconds))
		row("restart: tabs back (WS + SSE)", fmt.Sprintf("p50 %.2f s, p99 %.2f s, last %.2f s after healthy; %d redials for %d connections",
			cr.Reconnect.P50MS/1000, cr.Reconnect.P99MS/1000, cr.Reconnect.MaxMS/1000, cr.Redials, 2*cr.ExpectedOnline))
		row("restart: every widget converged", fmt.Sprintf("%.2f s after healthy, showing %d", cr.ConvergedSeconds, cr.ExpectedOnline))
		row("restart: database", fmt.Sprintf("%d online (want %d), closed tabs online: %d, offline without last_seen: %d",
			cr.OnlineInDB, cr.ExpectedOnline, cr.ClosedStillOnline, cr.MissingLastSeen))
	}
	row("graceful shutdown", fmt.Sprintf("%.2f s", r.ShutdownSeconds))
	tw.Flush()
}

// addrFree returns an error when something already listens on addr:
// typically the server of an earlier loadgen still running, which would
// otherwise answer this run while its own server fails to bind, and the
// report would measure the wrong server.
func addrFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("the server's address %s is taken (an earlier loadgen's server still running?): %w", addr, err)
	}
	return l.Close()
}

func waitHealthy(base string) error { return waitFor200(base + "/healthz") }

// waitFor200 polls url until it answers 200, for up to 10 s.
func waitFor200(url string) error {
	for range 200 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within 10 s", url)
}

// register creates n users and returns an API token for each.
func register(base string, n int) ([]string, error) {
	tokens := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			creds := fmt.Sprintf(`{"username":"load%05d","password":"password1"}`, i)
			if resp, err := http.Post(base+"/api/auth/register/", "application/json", strings.NewReader(creds)); err == nil {
				resp.Body.Close()
			}
			resp, err := http.Post(base+"/api/auth/token/", "application/json", strings.NewReader(creds))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var m map[string]string
			json.NewDecoder(resp.Body).Decode(&m)
			if m["access"] == "" {
				errs <- fmt.Errorf("no token for user %d: %s", i, resp.Status)
				return
			}
			tokens[i] = m["access"]
		})
	}
	wg.Wait()
	close(errs)
	return tokens, <-errs
}

// setStatuses gives each user of tokens a mode (away and dnd in turn) and
// a custom status with an emoji, through PUT /api/users/me/status/.
func setStatuses(base string, tokens []string) error {
	errs := make(chan error, len(tokens))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, tok := range tokens {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			mode := [2]string{"away", "dnd"}[i%2]
			body := fmt.Sprintf(`{"mode":%q,"text":"in a meeting about load test %d","emoji":"📅"}`, mode, i)
			req, _ := http.NewRequest(http.MethodPut, base+"/api/users/me/status/", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("set status of user %d: %s", i, resp.Status)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// registerNamed creates one user and returns an API token.
func registerNamed(base, name string) (string, error) {
	creds := fmt.Sprintf(`{"username":%q,"password":"password1"}`, name)
	if resp, err := http.Post(base+"/api/auth/register/", "application/json", strings.NewReader(creds)); err == nil {
		resp.Body.Close()
	}
	resp, err := http.Post(base+"/api/auth/token/", "application/json", strings.NewReader(creds))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var m map[string]string
	json.NewDecoder(resp.Body).Decode(&m)
	if m["access"] == "" {
		return "", fmt.Errorf("no token for %s: %s", name, resp.Status)
	}
	return m["access"], nil
}

func dialProbe(base, tok string) (*websocket.Conn, error) {
	conn, _, err := websocket.DefaultDialer.DialContext(context.Background(),
		"ws"+strings.TrimPrefix(base, "http")+"/ws/user-status/?events=0&token="+url.QueryEscape(tok), nil)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return conn, nil
}

// rssKiB reads the server's resident set from /proc.
func rssKiB(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// metric reads one value from the server's /metrics.
func metric(base, name string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			f, _ := strconv.ParseFloat(string(v), 64)
			return f
		}
	}
	return 0
}
