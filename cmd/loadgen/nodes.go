package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// This file is the load test of several nodes sharing presence through
// Redis (-nodes N, issue 14 §3): N server processes on one PostgreSQL
// database and one Redis, the tabs spread over them, and what docs/
// PERFORMANCE.md tracks for a cluster: one change on one node reaching the
// widgets of every node, a storm over all nodes, a node's death, Redis
// commands per ping, memory per node.

// node is one server process of the cluster.
type node struct {
	id, addr, base, data string
	cmd                  *exec.Cmd
	tabs                 int // tabs whose sockets go to this node
	dead                 bool
}

// nodesReport is what -nodes N measured; it is also written as JSON.
type nodesReport struct {
	Nodes, Tabs, Workers int
	Streams              int
	RedisPrefix          string
	LoadAverage          string // /proc/loadavg at the start and the end
	LoadAverageEnd       string
	PerNode              []nodeFigures

	// One change → all widgets: the probe connects on node 1.
	Fanout                  stats // every widget, every node
	FanoutLocal             stats // widgets on node 1
	FanoutRemote            stats // widgets on the other nodes
	BytesPerWidgetPerChange float64
	PublishesPerChange      float64

	// Storm: every tab's WebSocket closes, then all reconnect at once.
	ConnectFailedWS, ConnectFailedSSE int64 // failed dials (redialled) in the first connect
	StormFailedDials                  int64 // failed dials (redialled) in the storm
	StormConnectSeconds               float64
	StormConvergedAfterLastMS         float64
	StormConvergedPerNodeMS           []float64
	StormSeconds                      float64 // first connect until converged
	StormPublishes                    int64
	StormPublishesPerSec              float64
	StormRedisCmdsPerSec              float64
	StormStreamBytesPerSec            float64 // read by all the widgets' streams

	// Pings: Redis commands while every tab pings, against an idle window
	// of the same length just before (heartbeats, other Redis users).
	PingsPerSec         float64
	Pong                stats
	Pings               int64
	RedisCmdsIdle       int64
	RedisCmdsPings      int64
	RedisCmdsIdleSecs   float64
	RedisCmdsPingSecs   float64
	RedisCmdsPerPing    float64          // (commands in the ping window − the heartbeats') / pings
	RedisHeartbeatCmds  int64            // commands in the ping window explained by heartbeats
	RedisIdleByCommand  map[string]int64 // calls per command in the idle window
	RedisPingsByCommand map[string]int64 // and in the ping window
	EdgeChangesInPings  int64            // all nodes

	// Node death: SIGKILL of the last node while every tab pings; its tabs
	// do not reconnect anywhere.
	DeathUsers         int
	DeathConverged     stats   // kill until each surviving widget shows them gone, ms
	DeathConvergedSecs float64 // kill until the last surviving widget does
	DeathReapedEdges   int64
	DeathError         string `json:",omitempty"` // the survivors' widgets did not converge
	UnexpectedDrops    int64  // on surviving nodes
	ShutdownSeconds    float64
}

// nodeFigures are one node's numbers.
type nodeFigures struct {
	ID                    string
	Tabs                  int
	RSSBaseKiB, RSSKiB    int64
	PerTabKiB             float64
	StormEdgeChanges      int64
	StormRoundTrips       int64
	StormDeliveriesPerSec float64 // widget fragments × streams on this node, per second of the storm
	StormReceived         int64
	EdgeChangesTotal      int64 // at the end of the ping phase
	RoundTripsTotal       int64
	PublishedTotal        int64
	ReceivedTotal         int64
	ReapedEdges           int64
}

// clusterMetrics are a node's counters read from /metrics.
type clusterMetrics struct {
	edges, trips, published, received, reaped, ssePublished, subscribers float64
}

func readClusterMetrics(base string) clusterMetrics {
	m := metrics(base)
	return clusterMetrics{
		edges: m["presence_cluster_edge_changes_total"], trips: m["presence_cluster_redis_round_trips_total"],
		published: m["presence_cluster_changes_published_total"], received: m["presence_cluster_changes_received_total"],
		reaped: m["presence_cluster_reaped_edges_total"], ssePublished: m["presence_sse_events_published_total"],
		subscribers: m["presence_sse_subscribers"],
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// freshDatabase creates the database loadgen_<pid> next to the one admin
// names and returns its URL and a function that drops it.
func freshDatabase(admin string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	name := fmt.Sprintf("loadgen_%d", os.Getpid())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	conn.Close(ctx)
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				logf("drop database %s: %v", name, err)
			}
			conn.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// redisCalls sums the calls of every command in INFO commandstats
// (commands a script runs are counted too), less the INFO calls that read
// them, and returns the calls per command.
func redisCalls(rdb *redis.Client) (total, publishes int64, per map[string]int64, err error) {
	s, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("redis info: %w", err)
	}
	per = map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		v, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, _ := strconv.ParseInt(v, 10, 64)
		per[strings.TrimPrefix(name, "cmdstat_")] = n
		total += n
	}
	return total, per["publish"], per, nil
}

// callsSince is the calls per command between two readings of redisCalls.
func callsSince(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if v -= before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

// fileLimit is the hard RLIMIT_NOFILE, to which Go raises every process's
// soft limit at start-up (the server and the workers alike).
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Max > 1<<30 {
		return 1 << 30
	}
	return int(rl.Max)
}

// coordinateNodes is coordinate for -nodes N above 1: N servers on one
// fresh PostgreSQL database and one Redis prefix, the tabs spread over
// them, and the phases of docs/PERFORMANCE.md's "Issue 14: three nodes".
func coordinateNodes(c config) (err error) {
	r := nodesReport{Nodes: c.nodes, Tabs: c.tabs, LoadAverage: loadavg()}
	perNode := (c.tabs + c.nodes - 1) / c.nodes
	if need := 2*perNode + 600; need > fileLimit() {
		return fmt.Errorf("%d tabs on %d nodes need about %d files per server process, over the limit of %d: use more -nodes", c.tabs, c.nodes, need, fileLimit())
	}
	dir, err := os.MkdirTemp("", "presence-loadgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	dbURL := c.databaseURL
	if dbURL == "" {
		u, drop, err := freshDatabase("postgres://postgres@127.0.0.1:5432/postgres")
		if err != nil {
			return err
		}
		defer drop()
		dbURL = u
	}
	opt, err := redis.ParseURL(c.redisURL)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	prefix := fmt.Sprintf("loadgen:%d:%d:", os.Getpid(), time.Now().Unix())
	r.RedisPrefix = prefix
	defer deletePrefix(rdb, prefix)

	host, port0, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	p0, _ := strconv.Atoi(port0)
	keys := filepath.Join(dir, "session.keys")
	nodes := make([]*node, c.nodes)
	for i := range nodes {
		addr := net.JoinHostPort(host, strconv.Itoa(p0+i))
		nodes[i] = &node{id: fmt.Sprintf("n%d", i+1), addr: addr, base: "http://" + addr, data: filepath.Join(dir, fmt.Sprintf("n%d", i+1))}
	}
	start := func(n *node) error {
		n.cmd = exec.Command(c.server, "serve", "--addr", n.addr, "--data", n.data,
			"--database-url", dbURL, "--redis", c.redisURL, "--redis-prefix", prefix, "--node-id", n.id,
			"--session-keys", keys,
			"--bcrypt-cost", "4", "--grace", c.grace.String(), "--log-level", "warn", "--max-conns-per-user", "0",
			"--register-limit", "0", "--login-limit", "0")
		n.cmd.Stdout, n.cmd.Stderr = os.Stderr, os.Stderr
		if err := addrFree(n.addr); err != nil {
			return err
		}
		if err := n.cmd.Start(); err != nil {
			return fmt.Errorf("start node %s: %w", n.id, err)
		}
		return nil
	}
	defer func() {
		for _, n := range nodes {
			if n.cmd != nil && !n.dead {
				n.cmd.Process.Kill()
				n.cmd.Wait()
			}
		}
	}()
	// The first node migrates the database and makes the session keys;
	// the others start once it is healthy.
	for i, n := range nodes {
		if err := start(n); err != nil {
			return err
		}
		if i == 0 || i == len(nodes)-1 {
			for _, m := range nodes[:i+1] {
				if err := waitHealthy(m.base); err != nil {
					return fmt.Errorf("node %s: %w", m.id, err)
				}
			}
		}
	}
	base1 := nodes[0].base

	logf("registering %d users through %s", c.tabs+1, nodes[0].id)
	tokens, err := register(base1, c.tabs+1)
	if err != nil {
		return err
	}
	probeTok := tokens[c.tabs]
	tokens = tokens[:c.tabs]

	var workers []*workerProc
	parts, workerNode := spreadTabs(tokens, c.nodes, c.perWorker)
	self, _ := os.Executable()
	for i, part := range parts {
		ni := workerNode[i]
		nodes[ni].tabs += len(part)
		tf := filepath.Join(dir, fmt.Sprintf("tokens-%d", i))
		if err := os.WriteFile(tf, []byte(strings.Join(part, "\n")), 0o600); err != nil {
			return err
		}
		r.Streams += (len(part) + c.tabsPerBrowser - 1) / c.tabsPerBrowser
		if 2+i > 254 {
			return fmt.Errorf("%d workers: more than 127.0.0.2–254 can give source addresses to", len(parts))
		}
		args := []string{"-worker", "-base", nodes[ni].base, "-source", fmt.Sprintf("127.0.0.%d", 2+i), "-tokens", tf, "-tabs-per-browser", strconv.Itoa(c.tabsPerBrowser)}
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
	r.Workers = len(workers)
	r.PerNode = make([]nodeFigures, c.nodes)
	for i, n := range nodes {
		r.PerNode[i] = nodeFigures{ID: n.id, Tabs: n.tabs, RSSBaseKiB: rssKiB(n.cmd.Process.Pid)}
	}
	settle := func() { time.Sleep(3 * time.Second) }

	// Every tab's WebSocket, then every browser's stream; every widget on
	// every node must show every tab.
	logf("%d WebSockets over %d nodes (%d workers)", c.tabs, c.nodes, len(workers))
	if _, _, r.ConnectFailedWS, err = connectAll(workers, "ws", c.connectConc); err != nil {
		return err
	}
	logf("%d SSE streams", r.Streams)
	if _, _, r.ConnectFailedSSE, err = connectAll(workers, "sse", c.connectConc); err != nil {
		return err
	}
	if _, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs), Seconds: 180}); err != nil {
		return fmt.Errorf("%w; nodes: %s", err, nodesState(nodes))
	}
	settle()
	for i, n := range nodes {
		f := &r.PerNode[i]
		f.RSSKiB = rssKiB(n.cmd.Process.Pid)
		f.PerTabKiB = float64(f.RSSKiB-f.RSSBaseKiB) / float64(n.tabs)
	}

	// Storm.
	if !c.skipStorm {
		if err := nodesStorm(c, nodes, workers, workerNode, rdb, &r); err != nil {
			return err
		}
	}

	// One change on node 1 → every widget on every node.
	logf("%d fan-out rounds, the probe on %s", c.rounds, nodes[0].id)
	var lat, local, remote []float64
	bytes0, err := streamBytes(workers)
	if err != nil {
		return err
	}
	_, pub0, _, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	for i := range c.rounds {
		time.Sleep(c.roundGap)
		t0 := time.Now().UnixNano()
		probe, err := dialProbe(base1, probeTok)
		if err != nil {
			return err
		}
		reps, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs + 1), Seconds: 10})
		if err != nil {
			return fmt.Errorf("round %d: %w; nodes: %s", i, err, nodesState(nodes))
		}
		for wi, rep := range reps {
			l := since(t0, []reply{rep})
			lat = append(lat, l...)
			if workerNode[wi] == 0 {
				local = append(local, l...)
			} else {
				remote = append(remote, l...)
			}
		}
		probe.Close()
		if _, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs), Seconds: 10 + c.grace.Seconds()}); err != nil {
			return err
		}
	}
	r.Fanout, r.FanoutLocal, r.FanoutRemote = summarize(lat), summarize(local), summarize(remote)
	bytes1, err := streamBytes(workers)
	if err != nil {
		return err
	}
	_, pub1, _, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	r.BytesPerWidgetPerChange = perViewerPerChange(bytes1-bytes0, r.Streams, 2*c.rounds)
	r.PublishesPerChange = float64(pub1-pub0) / float64(2*c.rounds)

	// Pings: an idle window, then the same length of pings; the Redis
	// commands of the second less those of the first are the pings'.
	logf("idle %.0fs, then pings at %.1f/s per tab for %.0fs", c.pingSecs, c.pingRate, c.pingSecs)
	cmd0, _, per0, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	ti := time.Now()
	time.Sleep(time.Duration(c.pingSecs*float64(time.Second)) + 500*time.Millisecond) // as long as the ping phase
	cmd1, _, per1, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	r.RedisCmdsIdle, r.RedisCmdsIdleSecs = cmd1-cmd0, time.Since(ti).Seconds()
	r.RedisIdleByCommand = callsSince(per0, per1)
	var edges0 float64
	for _, n := range nodes {
		edges0 += readClusterMetrics(n.base).edges
	}
	tp := time.Now()
	cmd2, _, per2, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	reps, err := all(workers, command{Cmd: "pings", Rate: c.pingRate, Seconds: c.pingSecs})
	if err != nil {
		return err
	}
	cmd3, _, per3, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	r.RedisCmdsPings, r.RedisCmdsPingSecs = cmd3-cmd2, time.Since(tp).Seconds()
	r.RedisPingsByCommand = callsSince(per2, per3)
	var pl []float64
	for _, rep := range reps {
		r.Pings += rep.Pongs
		pl = append(pl, rep.Latencies...)
	}
	r.PingsPerSec = float64(r.Pings) / c.pingSecs
	r.Pong = summarize(pl)
	// Heartbeats: one EVALSHA per node every 2 s, with the commands its
	// script runs (as many per EVALSHA as in the idle window). With no
	// edge change during the pings, every EVALSHA is a heartbeat.
	perBeat := 1.0
	if n := r.RedisIdleByCommand["evalsha"]; n > 0 {
		perBeat = float64(r.RedisCmdsIdle) / float64(n)
	}
	r.RedisHeartbeatCmds = int64(float64(r.RedisPingsByCommand["evalsha"]) * perBeat)
	r.RedisCmdsPerPing = float64(r.RedisCmdsPings-r.RedisHeartbeatCmds) / float64(max(1, r.Pings))
	for i, n := range nodes {
		m := readClusterMetrics(n.base)
		r.EdgeChangesInPings += int64(m.edges)
		f := &r.PerNode[i]
		f.EdgeChangesTotal, f.RoundTripsTotal, f.PublishedTotal, f.ReceivedTotal = int64(m.edges), int64(m.trips), int64(m.published), int64(m.received)
	}
	r.EdgeChangesInPings -= int64(edges0)

	// Node death.
	if c.nodes > 1 && c.crash {
		if err := nodeDeath(c, nodes, workers, workerNode, &r); err != nil {
			return err
		}
	}
	for wi, w := range workers {
		if nodes[workerNode[wi]].dead {
			continue
		}
		rep, err := w.call(command{Cmd: "drops"})
		if err != nil {
			return err
		}
		r.UnexpectedDrops += rep.Drops
	}
	for i, n := range nodes {
		if !n.dead {
			r.PerNode[i].ReapedEdges = int64(readClusterMetrics(n.base).reaped)
		}
	}

	// Graceful stop of the survivors, with everything connected.
	t0 := time.Now()
	for _, n := range nodes {
		if !n.dead {
			n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range nodes {
		if !n.dead {
			n.cmd.Wait()
			n.dead = true
		}
	}
	r.ShutdownSeconds = time.Since(t0).Seconds()
	r.LoadAverageEnd = loadavg()

	printNodes(r)
	b, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(c.out, append(b, '\n'), 0o644)
}

// nodesState is what each live node's /metrics says, for an error.
func nodesState(nodes []*node) string {
	var b strings.Builder
	for _, n := range nodes {
		if n.dead {
			continue
		}
		m := metrics(n.base)
		fmt.Fprintf(&b, "%s: %.0f users online, %.0f websockets, %.0f streams, %.0f edge changes, %.0f received, %.0f gaps, %.0f resyncs; ", n.id,
			m["presence_users_online"], m["presence_websockets_open"], m["presence_sse_subscribers"], m["presence_cluster_edge_changes_total"],
			m["presence_cluster_changes_received_total"], m["presence_cluster_sequence_gaps_total"], m["presence_cluster_resyncs_total"])
	}
	return b.String()
}

// connectAll opens every tab's WebSocket (kind "ws") or stream ("sse")
// and dials the failed ones again, as a browser would, up to ten times a
// second apart. It returns when the first and the last succeeded and how
// many dials failed.
func connectAll(workers []*workerProc, kind string, conc int) (first, last, failed int64, err error) {
	reps, err := all(workers, command{Cmd: kind + "-connect", Conc: conc})
	if err != nil {
		return 0, 0, 0, err
	}
	first, last, f := span(reps)
	failed = f
	for try := 0; f > 0; try++ {
		if try == 10 {
			return first, last, failed, fmt.Errorf("%d %s connections still failing after 10 redials", f, kind)
		}
		logf("%d %s connections failed; dialling them again", f, kind)
		time.Sleep(time.Second)
		if reps, err = all(workers, command{Cmd: kind + "-redial", Conc: conc}); err != nil {
			return first, last, failed, err
		}
		_, l, ff := span(reps)
		last, f = max(last, l), ff
		failed += ff
	}
	return first, last, failed, nil
}

// nodesStorm closes every WebSocket, waits for every widget to show
// nobody, then reconnects every tab on every node at once: time from the
// last connect until every widget on every node shows them all, and what
// the storm cost each node and Redis.
func nodesStorm(c config, nodes []*node, workers []*workerProc, workerNode []int, rdb *redis.Client, r *nodesReport) error {
	logf("storm: %d tabs over %d nodes", c.tabs, len(nodes))
	if _, err := all(workers, command{Cmd: "ws-close"}); err != nil {
		return err
	}
	if _, err := all(workers, command{Cmd: "await-total", Target: 0, Seconds: 60 + c.grace.Seconds()}); err != nil {
		return fmt.Errorf("storm: everyone gone: %w; nodes: %s", err, nodesState(nodes))
	}
	time.Sleep(time.Second)
	before := make([]clusterMetrics, len(nodes))
	for i, n := range nodes {
		before[i] = readClusterMetrics(n.base)
	}
	cmds0, pub0, _, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	bytes0, err := streamBytes(workers)
	if err != nil {
		return err
	}
	first, last, failed, err := connectAll(workers, "ws", c.connectConc)
	if err != nil {
		return fmt.Errorf("storm: %w", err)
	}
	r.StormFailedDials = failed
	r.StormConnectSeconds = float64(last-first) / 1e9
	reps, err := all(workers, command{Cmd: "await-total", Target: int64(c.tabs), Seconds: 120})
	if err != nil {
		return fmt.Errorf("storm: %w; nodes: %s", err, nodesState(nodes))
	}
	cmds1, pub1, _, err := redisCalls(rdb)
	if err != nil {
		return err
	}
	bytes1, err := streamBytes(workers)
	if err != nil {
		return err
	}
	var converged int64
	perNode := make([]int64, len(nodes))
	for wi, rep := range reps {
		for _, t := range rep.Times {
			converged = max(converged, t)
			perNode[workerNode[wi]] = max(perNode[workerNode[wi]], t)
		}
	}
	r.StormConvergedAfterLastMS = float64(converged-last) / 1e6
	for _, t := range perNode {
		r.StormConvergedPerNodeMS = append(r.StormConvergedPerNodeMS, float64(t-last)/1e6)
	}
	// The window is first connect → converged; the counters were read
	// just before and just after it (idle otherwise).
	dt := float64(converged-first) / 1e9
	r.StormSeconds = dt
	r.StormPublishes = pub1 - pub0
	r.StormPublishesPerSec = float64(pub1-pub0) / dt
	r.StormRedisCmdsPerSec = float64(cmds1-cmds0) / dt
	r.StormStreamBytesPerSec = float64(bytes1-bytes0) / dt
	for i, n := range nodes {
		a := readClusterMetrics(n.base)
		f := &r.PerNode[i]
		f.StormEdgeChanges = int64(a.edges - before[i].edges)
		f.StormRoundTrips = int64(a.trips - before[i].trips)
		f.StormReceived = int64(a.received - before[i].received)
		f.StormDeliveriesPerSec = (a.ssePublished - before[i].ssePublished) * a.subscribers / dt
	}
	return nil
}

// nodeDeath SIGKILLs the last node while every tab pings. Its tabs do not
// reconnect anywhere (their users left with it): every widget on the
// surviving nodes must show them gone once a survivor has found the node
// dead and reaped its edges.
func nodeDeath(c config, nodes []*node, workers []*workerProc, workerNode []int, r *nodesReport) error {
	victim := len(nodes) - 1
	logf("node death: SIGKILL %s under pings", nodes[victim].id)
	var survivors []*workerProc
	for wi, w := range workers {
		if workerNode[wi] != victim {
			survivors = append(survivors, w)
		}
	}
	r.DeathUsers = nodes[victim].tabs
	const pingFor = 25.0 // covers the kill, dead-after and the reaping
	pinging := make(chan error, 1)
	go func() {
		_, err := all(workers, command{Cmd: "pings", Rate: c.pingRate, Seconds: pingFor})
		pinging <- err
	}()
	time.Sleep(3 * time.Second)
	killed := time.Now()
	nodes[victim].cmd.Process.Signal(syscall.SIGKILL)
	nodes[victim].cmd.Wait()
	nodes[victim].dead = true
	if err := <-pinging; err != nil {
		return err
	}
	// Times are when each widget's count last changed, so asking after
	// the pings ended loses nothing.
	reps, err := all(survivors, command{Cmd: "await-total", Target: int64(c.tabs - r.DeathUsers), Seconds: 60})
	if err != nil {
		// Reported, not fatal: the other phases' figures stand.
		r.DeathError = fmt.Sprintf("after %s's death: %v; nodes: %s", nodes[victim].id, err, nodesState(nodes))
		logf("%s", r.DeathError)
		return nil
	}
	r.DeathConverged = summarize(since(killed.UnixNano(), reps))
	r.DeathConvergedSecs = r.DeathConverged.MaxMS / 1000
	for _, n := range nodes {
		if !n.dead {
			r.DeathReapedEdges += int64(readClusterMetrics(n.base).reaped)
		}
	}
	return nil
}

// spreadTabs gives tab j to node j mod nodes, and splits each node's tabs
// evenly over as few workers as perWorker allows. It returns each
// worker's tokens and node.
func spreadTabs(tokens []string, nodes, perWorker int) (parts [][]string, nodeOf []int) {
	byNode := make([][]string, nodes)
	for j, t := range tokens {
		byNode[j%nodes] = append(byNode[j%nodes], t)
	}
	for ni, toks := range byNode {
		if len(toks) == 0 {
			continue
		}
		nw := (len(toks) + perWorker - 1) / perWorker
		size := (len(toks) + nw - 1) / nw
		for k := 0; k < len(toks); k += size {
			parts = append(parts, toks[k:min(len(toks), k+size)])
			nodeOf = append(nodeOf, ni)
		}
	}
	return parts, nodeOf
}

// deletePrefix removes the run's keys from Redis (a killed node leaves
// its own; the survivors' shutdown removes theirs).
func deletePrefix(rdb *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			rdb.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}

func printNodes(r nodesReport) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("nodes, tabs", fmt.Sprintf("%d nodes, %d tabs in %d workers (%d streams), load average %s → %s", r.Nodes, r.Tabs, r.Workers, r.Streams, r.LoadAverage, r.LoadAverageEnd))
	for _, f := range r.PerNode {
		row("  node "+f.ID, fmt.Sprintf("%d tabs, RSS %d MiB (%.1f KiB per tab), storm: %d edge changes in %d round trips, %d received, %.0f deliveries/s; total %d edge changes in %d round trips, reaped %d",
			f.Tabs, f.RSSKiB/1024, f.PerTabKiB, f.StormEdgeChanges, f.StormRoundTrips, f.StormReceived, f.StormDeliveriesPerSec, f.EdgeChangesTotal, f.RoundTripsTotal, f.ReapedEdges))
	}
	row("one change on n1 → all widgets", r.Fanout.String())
	row("  widgets on n1", r.FanoutLocal.String())
	row("  widgets on other nodes", r.FanoutRemote.String())
	row("bytes per widget per change", fmt.Sprintf("%.0f B; %.1f PUBLISH per change", r.BytesPerWidgetPerChange, r.PublishesPerChange))
	row("first connect: failed dials (redialled)", fmt.Sprintf("%d WebSockets, %d streams", r.ConnectFailedWS, r.ConnectFailedSSE))
	row("storm: all WS connected in", fmt.Sprintf("%.2f s (%d failed dials redialled)", r.StormConnectSeconds, r.StormFailedDials))
	row("storm: converged after last connect", fmt.Sprintf("%.0f ms (per node %.0f ms)", r.StormConvergedAfterLastMS, r.StormConvergedPerNodeMS))
	row("storm: Redis", fmt.Sprintf("%d PUBLISH, %.0f PUBLISH/s, %.0f commands/s over %.2f s; widgets read %.1f MB/s", r.StormPublishes, r.StormPublishesPerSec, r.StormRedisCmdsPerSec, r.StormSeconds, r.StormStreamBytesPerSec/1e6))
	row("pings handled", fmt.Sprintf("%.0f/s (%d), pong %s", r.PingsPerSec, r.Pings, r.Pong.String()))
	row("Redis commands per ping", fmt.Sprintf("%.4f (%d in %.1f s of pings %v, of them %d heartbeats'; %d in %.1f s idle %v); edge changes during pings: %d",
		r.RedisCmdsPerPing, r.RedisCmdsPings, r.RedisCmdsPingSecs, r.RedisPingsByCommand, r.RedisHeartbeatCmds, r.RedisCmdsIdle, r.RedisCmdsIdleSecs, r.RedisIdleByCommand, r.EdgeChangesInPings))
	if r.DeathError != "" {
		row("node death: NOT CONVERGED", r.DeathError)
	} else if r.DeathUsers > 0 {
		row("node death: widgets show its users gone", fmt.Sprintf("%.2f s after SIGKILL (%d users; per widget %s); %d edges reaped",
			r.DeathConvergedSecs, r.DeathUsers, r.DeathConverged.String(), r.DeathReapedEdges))
	}
	row("unexpected drops (surviving nodes)", strconv.FormatInt(r.UnexpectedDrops, 10))
	row("graceful shutdown of the survivors", fmt.Sprintf("%.2f s", r.ShutdownSeconds))
	tw.Flush()
}

// metrics reads every unlabelled value of a server's /metrics.
func metrics(base string) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			m[name] = f
		}
	}
	return m
}
