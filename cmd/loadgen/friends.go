package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, to write the friends graph
)

// The friends mode (-friends) measures friends-scoped widgets (issue 13):
// N users in a ring where each is friends with the -friends-per-user
// nearest (25 each side for 50), every one holding a friends-scoped widget
// stream (?scope=friends) and, but for the probes, a WebSocket. Each round
// one probe (who has the same number of friends, all watching) comes
// online and goes offline again; the run reports how long each friend's
// widget took to hear of it, how many bytes all the streams read per
// change, how many of those reached viewers who are not the probe's
// friends (should be 0), and the server's CPU time per change.
//
// It runs in one process (two sockets per user): keep -tabs under ~9,000
// (the per-process file limit is 20,000).

// friendsReport is what the friends mode measures; also written as JSON.
type friendsReport struct {
	Users, FriendsPerUser, Rounds int
	ConnectSeconds                float64 // every non-probe user's WebSocket, each an online change routed to its friends
	ChangeToFriendWidget          stats   // probe online → each friend's stream has the tile
	OfflineToFriendWidget         stats   // after the grace period, → each friend's stream has the delete
	BytesPerChange                float64 // every stream, summed, per probe change
	BytesPerReceivingViewer       float64 // per friend reached, per change
	NonFriendBytes                int64   // read by streams of viewers who are not the probe's friends, in all rounds
	ServerCPUMSPerChange          float64 // server user+system CPU per probe change (its WebSocket open or close included)
	ServerCPUMSPerChangeIdle      float64 // the same rounds' CPU when nobody watches (the cost of the change itself)
	FragmentsRenderedPerChange    float64 // presence_friends_fragments_rendered_total per change
	DeliveriesPerChange           float64 // presence_friends_deliveries_total per change
	ServerRSSKiB                  int64
}

type friendsStream struct {
	user  int // ring index
	bytes atomic.Int64
}

func runFriends(c config) error {
	n, k := c.tabs, c.friendsPerUser
	if k%2 != 0 || k >= n {
		return fmt.Errorf("-friends-per-user must be even and below -tabs")
	}
	rep := friendsReport{Users: n, FriendsPerUser: k, Rounds: c.rounds}
	dir, err := os.MkdirTemp("", "presence-loadgen-friends-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base := "http://" + c.addr
	data := filepath.Join(dir, "data")
	srv := exec.Command(c.server, "serve", "--addr", c.addr, "--data", data,
		"--bcrypt-cost", "4", "--grace", c.grace.String(), "--log-level", "warn", "--max-conns-per-user", "0",
		"--max-streams-per-user", "0", "--register-limit", "0", "--login-limit", "0")
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := addrFree(c.addr); err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	pid := srv.Process.Pid
	if err := waitHealthy(base); err != nil {
		return err
	}

	logf("friends: registering %d users", n)
	tokens, err := register(base, n)
	if err != nil {
		return err
	}
	ids, err := friendsGraph(filepath.Join(data, "presence.db"), n, k)
	if err != nil {
		return err
	}

	// Probes: spread over the ring; they watch but start offline.
	probes := make([]int, 0, c.rounds)
	isProbe := map[int]bool{}
	for i := range c.rounds {
		p := i * n / c.rounds
		probes = append(probes, p)
		isProbe[p] = true
	}

	logf("friends: %d friends-scoped streams", n)
	var current atomic.Int64 // the probe's user id this round
	var phase atomic.Int64   // 1: waiting for "on", 2: for "off"
	var roundStart atomic.Int64
	arrivals := make(chan float64, 4*k)
	streams := make([]*friendsStream, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		s := &friendsStream{user: i}
		streams[i] = s
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/widgets/online-users/stream?scope=friends", nil)
		req.Header.Set("Authorization", "Bearer "+tokens[i])
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("stream %d: %s", i, resp.Status)
		}
		wg.Go(func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, ":") || line == "" || strings.HasPrefix(line, "retry:") {
					continue // keep-alives and framing: not presence bytes
				}
				s.bytes.Add(int64(len(line) + 1))
				if !strings.HasPrefix(line, "data: ") {
					continue
				}
				id := current.Load()
				if id == 0 || !strings.Contains(line, `data-user-id=&#34;`+strconv.FormatInt(id, 10)+`&#34;`) {
					continue
				}
				on := strings.Contains(line, "afterbegin")
				if (on && phase.Load() == 1) || (!on && phase.Load() == 2) {
					arrivals <- float64(time.Now().UnixNano()-roundStart.Load()) / 1e6
				}
			}
		})
	}

	logf("friends: %d WebSockets", n-len(probes))
	var socks []interface{ Close() error }
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	t0 := time.Now()
	for i := range n {
		if isProbe[i] {
			continue
		}
		ws, err := dialProbe(base, tokens[i])
		if err != nil {
			return err
		}
		socks = append(socks, ws)
	}
	for metric(base, "presence_users_online") < float64(n-len(probes)) {
		if time.Since(t0) > time.Minute {
			return fmt.Errorf("users never all online")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.ConnectSeconds = time.Since(t0).Seconds()
	time.Sleep(2 * time.Second) // let the connect storm's deltas drain

	rounds := func(measure bool) (on, off []float64, cpuTicks int64, err error) {
		cpu0 := cpuTicksOf(pid)
		for _, p := range probes {
			time.Sleep(c.roundGap)
			current.Store(ids[p])
			phase.Store(1)
			roundStart.Store(time.Now().UnixNano())
			ws, err := dialProbe(base, tokens[p])
			if err != nil {
				return nil, nil, 0, err
			}
			if measure {
				lat, err := collect(arrivals, k, 10*time.Second)
				if err != nil {
					ws.Close()
					return nil, nil, 0, fmt.Errorf("probe %d online: %w", p, err)
				}
				on = append(on, lat...)
			} else {
				time.Sleep(200 * time.Millisecond)
			}
			phase.Store(2)
			ws.Close()
			closed := time.Now()
			if measure {
				// The offline change happens a grace period after the close:
				// time it from when it is due.
				roundStart.Store(closed.Add(c.grace).UnixNano())
				lat, err := collect(arrivals, k, 10*time.Second+c.grace)
				if err != nil {
					return nil, nil, 0, fmt.Errorf("probe %d offline: %w", p, err)
				}
				off = append(off, lat...)
			} else {
				time.Sleep(c.grace + 300*time.Millisecond)
			}
			phase.Store(0)
			current.Store(0)
		}
		return on, off, cpuTicksOf(pid) - cpu0, nil
	}

	logf("friends: %d rounds", c.rounds)
	before := make([]int64, n)
	for i, s := range streams {
		before[i] = s.bytes.Load()
	}
	r0, d0 := metric(base, "presence_friends_fragments_rendered_total"), metric(base, "presence_friends_deliveries_total")
	on, off, ticks, err := rounds(true)
	if err != nil {
		return err
	}
	changes := float64(2 * len(probes))
	rep.ChangeToFriendWidget, rep.OfflineToFriendWidget = summarize(on), summarize(off)
	rep.ServerCPUMSPerChange = float64(ticks) * 1000 / float64(clockTicks) / changes
	rep.FragmentsRenderedPerChange = (metric(base, "presence_friends_fragments_rendered_total") - r0) / changes
	rep.DeliveriesPerChange = (metric(base, "presence_friends_deliveries_total") - d0) / changes
	var total int64
	for i, s := range streams {
		got := s.bytes.Load() - before[i]
		total += got
		friendOfSome := false
		for _, p := range probes {
			if ringDist(i, p, n) <= k/2 && i != p {
				friendOfSome = true
			}
		}
		if !friendOfSome {
			rep.NonFriendBytes += got
		}
	}
	rep.BytesPerChange = float64(total) / changes
	rep.BytesPerReceivingViewer = rep.BytesPerChange / float64(k)
	rep.ServerRSSKiB = rssKiB(pid)

	// The same rounds with nobody watching: the change's own cost.
	cancel()
	client.CloseIdleConnections()
	wg.Wait()
	time.Sleep(time.Second)
	_, _, idle, err := rounds(false)
	if err != nil {
		return err
	}
	rep.ServerCPUMSPerChangeIdle = float64(idle) * 1000 / float64(clockTicks) / changes

	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(b))
	return os.WriteFile(c.out, append(b, '\n'), 0o644)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// cpuTicksOf returns a process's user+system CPU time in clock ticks.
func cpuTicksOf(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 13 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			return u + st
		}
	}
	return 0
}

// collect waits for want arrivals.
func collect(ch <-chan float64, want int, timeout time.Duration) ([]float64, error) {
	var out []float64
	deadline := time.After(timeout)
	for len(out) < want {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-deadline:
			return out, fmt.Errorf("%d of %d friends' widgets heard of it", len(out), want)
		}
	}
	return out, nil
}

func ringDist(a, b, n int) int {
	d := a - b
	if d < 0 {
		d = -d
	}
	return min(d, n-d)
}

// friendsGraph writes the ring: user i (load%05d) is friends with the k/2
// users on each side. It writes straight into the server's database (one
// transaction; the server reads friendships from it on every change) and
// returns the users' ids by ring index.
func friendsGraph(path string, n, k int) ([]int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ids := make([]int64, n)
	rows, err := db.Query("SELECT id, username FROM users WHERE username LIKE 'load%'")
	if err != nil {
		return nil, fmt.Errorf("friends graph: %w", err)
	}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return nil, err
		}
		if i, err := strconv.Atoi(strings.TrimPrefix(name, "load")); err == nil && i < n {
			ids[i] = id
		}
	}
	rows.Close()
	tx, err := db.Begin()
	if err != nil {
		return nil, err
	}
	st, err := tx.Prepare("INSERT INTO friendships (user_id, friend_id, created_at) VALUES (?, ?, 0), (?, ?, 0)")
	if err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("friends graph: %w", err)
	}
	for i := range n {
		for d := 1; d <= k/2; d++ {
			j := (i + d) % n
			if _, err := st.Exec(ids[i], ids[j], ids[j], ids[i]); err != nil {
				tx.Rollback()
				return nil, fmt.Errorf("friends graph: %w", err)
			}
		}
	}
	return ids, tx.Commit()
}
