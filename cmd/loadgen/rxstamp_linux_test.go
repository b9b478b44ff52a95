package main

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair returns the sending end of a loopback TCP connection and the
// raw connection of its receiving end, which asks for receive stamps.
func tcpPair(t *testing.T) (send net.Conn, raw syscall.RawConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	send = <-accepted
	if send == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); send.Close() })
	raw, err = c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	enableRxStamps(raw)
	return send, raw
}

// TestStampedReader: a read returns the bytes and the kernel's receive
// stamp, says EAGAIN when nothing waits, and allocates nothing.
func TestStampedReader(t *testing.T) {
	send, raw := tcpPair(t)
	rd := newStampedReader(4096)
	recv := func() (n int, stamp int64, err error) {
		raw.Read(func(fd uintptr) bool {
			n, stamp, err = rd.recv(int(fd))
			return true
		})
		return n, stamp, err
	}
	t.Run("EAGAIN", func(t *testing.T) {
		if _, _, err := recv(); err != unix.EAGAIN {
			t.Fatalf("err %v, want EAGAIN", err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		// The kernel turns stamping on for the whole host in a deferred
		// work item when the first socket asks, so the first bytes may
		// come unstamped: send until a read carries a stamp.
		var fd int
		raw.Control(func(f uintptr) { fd = int(f) })
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING); err != nil || v == 0 {
			t.Skipf("the kernel keeps no receive stamps here (%v)", err)
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no read carried a stamp in 5 s")
			}
			before := time.Now().UnixNano()
			if _, err := send.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			var n int
			var stamp int64
			var err error
			for range 1000 {
				if n, stamp, err = recv(); err != unix.EAGAIN {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if err != nil || string(rd.buf[:n]) != "hello" {
				t.Fatalf("read %q, %v; want hello", rd.buf[:n], err)
			}
			if stamp == 0 {
				continue
			}
			if stamp < before || stamp > time.Now().UnixNano() {
				t.Fatalf("stamp %d not within the read (from %d)", stamp, before)
			}
			return
		}
	})
	t.Run("NoAllocs", func(t *testing.T) {
		sraw, err := send.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var sfd, fd int
		sraw.Control(func(f uintptr) { sfd = int(f) })
		raw.Control(func(f uintptr) { fd = int(f) })
		msg := []byte("x")
		reads := 0
		allocs := testing.AllocsPerRun(200, func() {
			unix.Write(sfd, msg) // on loopback, usually queued at the receiver by now
			if n, _, err := rd.recv(fd); err == nil && n > 0 {
				reads++
			}
		})
		if reads == 0 {
			t.Fatal("no read got a byte")
		}
		if allocs != 0 {
			t.Fatalf("a write and a read allocated %.1f times, want 0", allocs)
		}
	})
}
