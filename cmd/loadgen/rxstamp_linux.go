package main

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The tabs' sockets ask the kernel to stamp what they receive
// (SO_TIMESTAMPING, software receive stamps). On a machine the loadgen
// shares with the server, a tab's bytes may be read well after they
// arrived; the kernel's stamp is when the server's write reached the
// client, which is what a client on a machine of its own would see.

// enableRxStamps asks the kernel to stamp what the socket receives. A
// socket it cannot stamp is left as it is (its stamps read 0).
func enableRxStamps(raw syscall.RawConn) {
	raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
			unix.SOF_TIMESTAMPING_RX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE)
	})
}

// stampedReader reads non-blocking sockets with recvmsg(2) into buffers
// it owns, and returns each read's kernel receive stamp. A read
// allocates nothing: unix.Recvmsg allocates its iovec and address on
// every call, and at thousands of reads a round the garbage made the
// worker collect during the rounds it measured (docs/PERFORMANCE.md,
// issue 16). One reader per goroutine; it is not safe for concurrent use.
type stampedReader struct {
	buf []byte // what the last read got, up to n
	oob []byte // the control messages
	iov unix.Iovec
	msg unix.Msghdr
}

// newStampedReader returns a reader with a buffer of size bytes.
func newStampedReader(size int) *stampedReader {
	r := &stampedReader{buf: make([]byte, size), oob: make([]byte, 128)}
	r.iov.Base = &r.buf[0]
	r.iov.SetLen(len(r.buf))
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	return r
}

// recv reads from the non-blocking socket fd into r.buf and returns the
// count and the kernel's receive stamp of the bytes (unix ns; 0 if none
// came). It returns unix.EAGAIN when nothing was waiting.
func (r *stampedReader) recv(fd int) (n int, stamp int64, err error) {
	r.msg.Control = &r.oob[0]
	r.msg.SetControllen(len(r.oob))
	r.msg.Flags = 0
	got, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msg)), 0)
	switch errno {
	case 0:
	case unix.EAGAIN:
		return 0, 0, unix.EAGAIN // a constant: no allocation
	default:
		return 0, 0, errno
	}
	// The control messages, read in place (ParseSocketControlMessage
	// would allocate on every read, and the loadgen's own CPU counts).
	for b := r.oob[:r.msg.Controllen]; len(b) >= unix.SizeofCmsghdr; {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(b) {
			break
		}
		data := b[unix.SizeofCmsghdr:h.Len]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPING && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			stamp = (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		}
		b = b[min(len(b), cmsgAlign(int(h.Len))):]
	}
	return int(got), stamp, nil
}

func cmsgAlign(n int) int { return (n + 7) &^ 7 }
