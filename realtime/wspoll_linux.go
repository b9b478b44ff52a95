package realtime

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A socket waiting for its client's next message holds no goroutine: one
// epoll set of the process's own watches every plain-TCP socket, and a
// socket that becomes readable is read by a goroutine that lives while
// there is something to read (wsClient.readReady). A parked reader
// goroutine cost each socket a 4 KiB stack (gorilla's read path parks too
// deep for the 2 KiB a goroutine starts with), more than all the rest of
// it together; see docs/PERFORMANCE.md, issue 16.
//
// Go's own poller watches the same descriptors, edge-triggered, for the
// writes; this set is level-triggered and one-shot: a readable socket is
// reported once, and armed again by its reader once it has read all
// there was.

// poller is the process's epoll set of sockets and the goroutine that
// waits on it.
type poller struct {
	epfd int
	// waiter is epfd as Go's poller sees it: an epoll set is readable
	// when a socket in it is, so the wait for sockets is one more
	// descriptor in Go's own poller, and wakes through its scheduler
	// like any socket read, with no thread blocked in epoll_wait.
	waiter syscall.RawConn

	mu    sync.Mutex
	next  uint64
	socks map[uint64]*wsClient
}

var shared struct {
	once sync.Once
	p    *poller
	f    *os.File
	err  error
}

// sharedPoller returns the process's poller, started on first use. It is
// never stopped: like Go's own, it serves every hub of the process.
func sharedPoller() (*poller, error) {
	shared.once.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			shared.err = fmt.Errorf("realtime: epoll: %w", err)
			return
		}
		// Non-blocking before os.NewFile, which then hands it to Go's
		// poller.
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			shared.err = fmt.Errorf("realtime: epoll: %w", err)
			return
		}
		f := os.NewFile(uintptr(fd), "websocket-poller")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			shared.err = fmt.Errorf("realtime: epoll: %w", err)
			return
		}
		shared.p = &poller{epfd: fd, waiter: rc, socks: map[uint64]*wsClient{}}
		shared.f = f // kept, so that it is never collected and closed
		go shared.p.run()
	})
	return shared.p, shared.err
}

// armEvents is what the poller waits for on a socket: bytes, or the
// peer's end of the connection, reported once.
const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// add watches cl's socket, armed: from now on a readable socket gets a
// readReady. cl.raw must be set.
func (p *poller) add(cl *wsClient) error {
	p.mu.Lock()
	p.next++
	cl.pollID = p.next
	p.socks[cl.pollID] = cl
	p.mu.Unlock()
	if err := p.ctl(cl, unix.EPOLL_CTL_ADD); err != nil {
		p.mu.Lock()
		delete(p.socks, cl.pollID)
		p.mu.Unlock()
		return err
	}
	return nil
}

// rearm watches cl's socket again after its reader found it empty. It
// fails once the socket is closed.
func (p *poller) rearm(cl *wsClient) error { return p.ctl(cl, unix.EPOLL_CTL_MOD) }

// remove stops watching cl's socket. Call it before closing the socket.
func (p *poller) remove(cl *wsClient) {
	p.ctl(cl, unix.EPOLL_CTL_DEL) // a closed socket has left the set already
	p.mu.Lock()
	delete(p.socks, cl.pollID)
	p.mu.Unlock()
}

func (p *poller) ctl(cl *wsClient, op int) error {
	// The id is the event's data: 64 bits, kept in Fd and Pad.
	ev := unix.EpollEvent{Events: armEvents, Fd: int32(uint32(cl.pollID)), Pad: int32(uint32(cl.pollID >> 32))}
	var cerr error
	err := cl.raw.Control(func(fd uintptr) { cerr = unix.EpollCtl(p.epfd, op, int(fd), &ev) })
	if err != nil {
		return err
	}
	return cerr
}

// run waits for readable sockets and starts a reader for each.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var werr error
		err := p.waiter.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				n, werr = 0, nil
				return true // look again at once, not at the next wake
			}
			return n > 0 || werr != nil
		})
		if err == nil && werr != nil {
			err = werr
		}
		if err != nil {
			panic(fmt.Sprintf("realtime: epoll_wait: %v", err)) // a bad epfd: nothing can be read any more
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if cl := p.socks[id]; cl != nil {
				go cl.readReady()
			}
		}
		p.mu.Unlock()
	}
}
