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

// recvStamped reads from the non-blocking socket fd into p, and returns
// with the count the kernel's receive stamp of the bytes (unix ns; 0 if
// none came). oob is scratch for the control messages.
func recvStamped(fd int, p, oob []byte) (n int, stamp int64, err error) {
	n, oobn, _, _, err := unix.Recvmsg(fd, p, oob, 0)
	if err != nil {
		return 0, 0, err
	}
	// The control messages, read in place (ParseSocketControlMessage
	// would allocate on every read, and the loadgen's own CPU counts).
	for b := oob[:oobn]; len(b) >= unix.SizeofCmsghdr; {
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
	return n, stamp, nil
}

func cmsgAlign(n int) int { return (n + 7) &^ 7 }
