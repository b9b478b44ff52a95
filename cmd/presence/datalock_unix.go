//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// errDataDirInUse means another presence process holds the data directory.
var errDataDirInUse = errors.New("data directory is in use")

// lockDataDir takes an exclusive lock on dir's presence.lock for as long as
// the process (or until the returned function is called), so that two
// servers never share one database and a restore never replaces the
// database under a running server. The lock file records the holder's pid
// for the error message; the kernel releases the lock if the process dies.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "presence.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := ""
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
			holder = " by process " + strconv.Itoa(pid)
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held%s (a running presence server?)", errDataDirInUse, dir, holder)
		}
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
