//go:build unix

package main

import "syscall"

// defaultMaxConns keeps long-lived connections below the process's file
// limit (which Go raises to the hard limit at start-up): 512 below it, or a
// quarter below it for limits under 2,048. That leaves room for the
// database, the listener and ordinary requests, so at the cap new
// connections get a clear 503 instead of accept failing with EMFILE.
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0 // unknown or unlimited
	}
	limit := int(rl.Cur)
	return limit - min(512, limit/4)
}
