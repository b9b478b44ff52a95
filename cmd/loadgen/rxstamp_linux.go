package main

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stampConn is a loopback connection whose reads also return when the
// kernel received the bytes (SO_TIMESTAMPING, software receive stamps).
// On a machine the loadgen shares with the server, a tab's reader
// goroutine may run well after its bytes arrived; the kernel's stamp is
// when the server's write reached the client, which is what a client on
// a machine of its own would see.
type stampConn struct {
	*net.TCPConn
	raw syscall.RawConn
	oob []byte
	rx  atomic.Int64 // unix ns: the kernel's stamp of the last read that returned bytes
}

// withRxStamps asks the kernel to stamp what c receives. A connection it
// cannot stamp is returned as it is.
func withRxStamps(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
			unix.SOF_TIMESTAMPING_RX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE)
	})
	if serr != nil {
		return c
	}
	return &stampConn{TCPConn: tc, raw: raw, oob: make([]byte, 128)}
}

// Read reads like the connection's own Read (waiting in the runtime's
// poller) and keeps the kernel's receive stamp of the bytes.
func (c *stampConn) Read(p []byte) (int, error) {
	var n, oobn int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), p, c.oob, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	// The control messages, read in place (ParseSocketControlMessage
	// would allocate on every read, and the loadgen's own CPU counts).
	for b := c.oob[:oobn]; len(b) >= unix.SizeofCmsghdr; {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(b) {
			break
		}
		data := b[unix.SizeofCmsghdr:h.Len]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPING && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			c.rx.Store((*unix.Timespec)(unsafe.Pointer(&data[0])).Nano())
		}
		b = b[min(len(b), cmsgAlign(int(h.Len))):]
	}
	return n, nil
}

func cmsgAlign(n int) int { return (n + 7) &^ 7 }

// rxStamp returns the kernel's receive stamp of the last bytes read on c,
// or 0 when c is not stamped.
func rxStamp(c net.Conn) int64 {
	if sc, ok := c.(*stampConn); ok {
		return sc.rx.Load()
	}
	return 0
}
