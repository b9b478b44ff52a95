package main

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// This file holds the parts of the load test about what a change costs
// each viewer and what a viewer that cannot keep up costs the others
// (issue 9 §2 and §3).

// streamBytes returns the bytes every worker's tabs have read on their
// streams so far.
func streamBytes(workers []*workerProc) (int64, error) {
	reps, err := all(workers, command{Cmd: "sse-bytes"})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range reps {
		n += r.Sent
	}
	return n, nil
}

// perViewerPerChange turns a byte count read by tabs over changes into
// bytes per viewer per change.
func perViewerPerChange(bytes int64, tabs, changes int) float64 {
	return float64(bytes) / float64(tabs) / float64(changes)
}

// slowReader is a widget stream that reads 8 KiB every 100 ms, never
// stopping: slower than full-list pushes arrive, as a phone on a bad
// network would be.
type slowReader struct {
	conn net.Conn
	read atomic.Int64
}

func startSlowReader(base, tok string) (*slowReader, error) {
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return nil, err
	}
	conn.(*net.TCPConn).SetReadBuffer(16 << 10) // a phone's, not megabytes of loopback buffer
	fmt.Fprintf(conn, "GET /widgets/online-users/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	s := &slowReader{conn: conn}
	go func() {
		buf := make([]byte, 8<<10)
		for {
			n, err := conn.Read(buf)
			s.read.Add(int64(n))
			if err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return s, nil
}

func (s *slowReader) Close() { s.conn.Close() }

// slowReadingRounds runs one-change rounds while a slow-but-reading stream
// is open, and reports the others' latencies and whether the server kept
// it (it must: it reads, so it gets the newest state when it can take it).
func slowReadingRounds(c config, base string, workers []*workerProc, firstTok, slowTok string, r *report) error {
	slow, err := startSlowReader(base, slowTok)
	if err != nil {
		return err
	}
	defer slow.Close()
	cut0 := metric(base, "presence_sse_slow_clients_cut_total")
	lat, err := fanoutRounds(c, base, workers, firstTok, c.rounds, nil)
	if err != nil {
		return err
	}
	r.SlowWithReading = summarize(lat)
	r.SlowReadingP99MovedPercent = 100 * (r.SlowWithReading.P99MS - r.SlowControl.P99MS) / r.SlowControl.P99MS
	r.SlowReadingKiB = float64(slow.read.Load()) / 1024
	r.SlowReadingCut = metric(base, "presence_sse_slow_clients_cut_total") > cut0
	return nil
}
