//go:build unix

package realtime

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// errWouldBlock means the kernel took none of a non-blocking write, or
// the connection has no file descriptor to write to without blocking.
var errWouldBlock = errors.New("websocket: write would block")

// tryWrite writes bufs to the connection behind raw in one system call
// that does not wait: it returns how many bytes the kernel took, which
// may be fewer than all. raw nil (a TLS connection) takes nothing.
func tryWrite(raw syscall.RawConn, bufs [][]byte) (int, error) {
	if raw == nil {
		return 0, errWouldBlock
	}
	t := writeTurns.Get().(*writeTurn)
	t.bufs = bufs
	err := raw.Write(t.write)
	n, werr := t.n, t.err
	*t = writeTurn{write: t.write}
	writeTurns.Put(t)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline of an earlier blocking write has passed; the
		// blocking path sets a new one.
		return 0, errWouldBlock
	}
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN || werr == unix.EINTR {
		return 0, errWouldBlock
	}
	if werr != nil {
		return 0, werr
	}
	return max(n, 0), nil
}

// writeTurn is one non-blocking write, reused (writeTurns): the function
// handed to RawConn.Write, and what it sets, are made once rather than on
// every write to every socket of a pass, where they were most of what a
// pass allocated.
type writeTurn struct {
	bufs  [][]byte
	n     int
	err   error
	write func(fd uintptr) bool
}

var writeTurns = sync.Pool{New: func() any {
	t := new(writeTurn)
	t.write = func(fd uintptr) bool {
		if len(t.bufs) == 1 {
			t.n, t.err = unix.Write(int(fd), t.bufs[0])
		} else {
			t.n, t.err = unix.Writev(int(fd), t.bufs)
		}
		return true // never wait here: the caller hands the rest on
	}
	return t
}}

// readTurn is a buffer and one non-blocking read into it. It is reused
// (readTurns): the function handed to RawConn.Read, and what it sets,
// are made once, not on every read.
type readTurn struct {
	buf  [readChunk]byte
	n    int
	err  error
	read func(fd uintptr) bool
}

func newReadTurn() *readTurn {
	t := new(readTurn)
	t.read = func(fd uintptr) bool {
		t.n, t.err = unix.Read(int(fd), t.buf[:])
		return true // never wait: the poller says when there is more
	}
	return t
}

// tryRead reads what the connection behind raw holds into t.buf, without
// waiting: errWouldBlock when it holds nothing yet, io.EOF when the peer
// has closed its side.
func (t *readTurn) tryRead(raw syscall.RawConn) (int, error) {
	err := raw.Read(t.read)
	switch {
	case err != nil:
		return 0, err
	case t.err == unix.EAGAIN || t.err == unix.EINTR:
		return 0, errWouldBlock
	case t.err != nil:
		return 0, t.err
	case t.n == 0:
		return 0, io.EOF
	}
	return t.n, nil
}
