//go:build !unix

package realtime

import (
	"errors"
	"syscall"
)

var errWouldBlock = errors.New("websocket: write would block")

// tryWrite takes nothing where non-blocking writes are not done: every
// write goes to a goroutine that may wait.
func tryWrite(syscall.RawConn, [][]byte) (int, error) { return 0, errWouldBlock }

// tryRead reads nothing where the poller is not used.
func tryRead(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }
