//go:build unix

package main

import "syscall"

// defaultMaxConns keeps long-lived connections 512 below the process's file
// limit (which Go raises to the hard limit at start-up), leaving room for
// the database, the listener and ordinary requests: at the cap new
// connections get a clear 503 instead of accept failing with EMFILE.
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur <= 1024 || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur) - 512
}
