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

// readTurn is a read buffer; without the poller nothing reads into it.
type readTurn struct{ buf [readChunk]byte }

func newReadTurn() *readTurn { return new(readTurn) }

func (*readTurn) tryRead(syscall.RawConn) (int, error) { return 0, errWouldBlock }
