// Package clustertest runs a private redis-server for tests: one that
// counts only the test's commands and that the test may restart.
package clustertest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server of a test's own, so that INFO commandstats
// counts only this test's commands and the server can be restarted.
type Redis struct {
	tb testing.TB
	// Addr is host:port.
	Addr string
	dir  string
	cmd  *exec.Cmd
}

// MustStart starts a private redis-server on a free port, stopped when
// the test ends. Without the redis-server binary the test is skipped, or
// fails when CI=true.
func MustStart(tb testing.TB) *Redis {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("redis-server is not installed (CI=true)")
		}
		tb.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &Redis{tb: tb, Addr: addr, dir: tb.TempDir()}
	r.start()
	tb.Cleanup(r.Stop)
	return r
}

func (r *Redis) start() {
	r.tb.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.Addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.tb.Fatalf("redis-server on %s did not start: %v", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Restart kills the server (it keeps nothing) and starts it again.
func (r *Redis) Restart() { r.Stop(); r.start() }

// Client returns a client of the server, closed when the test ends.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	r.tb.Cleanup(func() { c.Close() })
	return c
}

// info returns the "key:value" lines of an INFO section.
func (r *Redis) info(tb testing.TB, section string) []string {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	text, err := c.Info(context.Background(), section).Result()
	if err != nil {
		tb.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	return lines
}

// commandStat returns a field (calls, usec_per_call, ...) of each command's
// INFO commandstats line.
func (r *Redis) commandStat(tb testing.TB, field string) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	for _, line := range r.info(tb, "commandstats") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, field+"="); ok {
				out[name], _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	return out
}

// Commands returns how many times Redis ran each command (INFO commandstats).
func (r *Redis) Commands(tb testing.TB) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for name, calls := range r.commandStat(tb, "calls") {
		out[name] = int(calls)
	}
	return out
}

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// MicrosPerCall returns Redis's own time per call of cmd, in microseconds
// (usec_per_call of INFO commandstats), over the server's life.
func (r *Redis) MicrosPerCall(tb testing.TB, cmd string) float64 {
	tb.Helper()
	return r.commandStat(tb, "usec_per_call")[cmd]
}

// CPUSeconds returns the CPU time (user and system) the server has used.
func (r *Redis) CPUSeconds(tb testing.TB) float64 {
	tb.Helper()
	var total float64
	for _, line := range r.info(tb, "cpu") {
		for _, k := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return total
}
