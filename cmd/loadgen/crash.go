package main

import (
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	_ "modernc.org/sqlite"
)

// crashReport is what the SIGKILL phase measured.
type crashReport struct {
	Integrity         string  // PRAGMA integrity_check right after the kill
	GhostsInDB        int     // users the crash left marked online
	DownSeconds       float64 // SIGKILL until the restarted server is healthy
	RestartSeconds    float64 // restart until /healthz answers 200
	Reconnect         stats   // healthy until each tab has WS and SSE back
	ConvergedSeconds  float64 // healthy until every widget shows ExpectedOnline
	Redials           int64   // attempts, failed ones included
	ClosedTabs        int
	ExpectedOnline    int
	OnlineInDB        int // load users online in the database after convergence
	ClosedStillOnline int // users of closed tabs online in the database (ghosts)
	MissingLastSeen   int // offline load users with no last_seen
}

// crash SIGKILLs the server while every tab pings, checks the database the
// crash left and restarts the server on the same address and data. Some
// tabs were closed while it was down (their users left: they never
// redial); the others redial, their WebSockets with presence.js's backoff
// and their streams as EventSource does. Every widget must
// converge on the right count and the database must show exactly the
// reconnected users online. It returns the new server.
func crash(c config, base, data string, workers []*workerProc, srv *exec.Cmd,
	start func() (*exec.Cmd, error), r *report) (*exec.Cmd, error) {
	cr := &crashReport{}
	r.Crash = cr
	perWorker := make([]int, len(workers))
	for i := range workers {
		n := min(c.perWorker, c.tabs-i*c.perWorker)
		perWorker[i] = int(float64(n) * c.crashClosed)
		cr.ClosedTabs += perWorker[i]
	}
	cr.ExpectedOnline = c.tabs - cr.ClosedTabs
	for i, w := range workers {
		if _, err := w.call(command{Cmd: "crash-prep", Target: int64(perWorker[i])}); err != nil {
			return srv, err
		}
	}

	pinging := make(chan error, 1)
	go func() {
		_, err := all(workers, command{Cmd: "pings", Rate: c.pingRate, Seconds: 4})
		pinging <- err
	}()
	time.Sleep(2 * time.Second) // pings and their activity writes in flight
	killed := time.Now()
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "presence.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return srv, err
	}
	defer db.Close()
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&cr.Integrity); err != nil {
		return srv, fmt.Errorf("integrity check: %w", err)
	}
	if err := db.QueryRow("SELECT count(*) FROM users WHERE is_online = 1").Scan(&cr.GhostsInDB); err != nil {
		return srv, err
	}

	t0 := time.Now()
	if srv, err = start(); err != nil {
		return srv, err
	}
	if err := waitHealthy(base); err != nil {
		return srv, err
	}
	healthy := time.Now()
	cr.RestartSeconds = healthy.Sub(t0).Seconds()
	cr.DownSeconds = healthy.Sub(killed).Seconds()
	if err := <-pinging; err != nil {
		return srv, err
	}

	reps, err := all(workers, command{Cmd: "await-reconnect", Seconds: 120})
	if err != nil {
		return srv, err
	}
	for _, rep := range reps {
		cr.Redials += rep.Sent
	}
	cr.Reconnect = summarize(since(healthy.UnixNano(), reps))

	if reps, err = all(workers, command{Cmd: "await-total", Target: int64(cr.ExpectedOnline), Seconds: 60}); err != nil {
		return srv, err
	}
	var conv int64
	for _, rep := range reps {
		for _, at := range rep.Times {
			conv = max(conv, at)
		}
	}
	cr.ConvergedSeconds = time.Unix(0, conv).Sub(healthy).Seconds()

	// The database follows within a flush interval or so.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := db.QueryRow("SELECT count(*) FROM users WHERE is_online = 1 AND username LIKE 'load%'").Scan(&cr.OnlineInDB); err != nil {
			return srv, err
		}
		if cr.OnlineInDB == cr.ExpectedOnline || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, n := range perWorker {
		for j := range n {
			var online bool
			name := fmt.Sprintf("load%05d", i*c.perWorker+j)
			if err := db.QueryRow("SELECT is_online FROM users WHERE username = ?", name).Scan(&online); err != nil {
				return srv, fmt.Errorf("%s: %w", name, err)
			}
			if online {
				cr.ClosedStillOnline++
			}
		}
	}
	if err := db.QueryRow("SELECT count(*) FROM users WHERE is_online = 0 AND last_seen IS NULL AND username LIKE 'load%'").Scan(&cr.MissingLastSeen); err != nil {
		return srv, err
	}
	if cr.Integrity != "ok" || cr.OnlineInDB != cr.ExpectedOnline || cr.ClosedStillOnline > 0 || cr.MissingLastSeen > 0 {
		return srv, fmt.Errorf("after the crash: %+v", *cr)
	}
	return srv, nil
}
