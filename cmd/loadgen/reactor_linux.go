package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reactor is one of the worker's readers of its tabs' connections (each
// tab's WebSocket and widget stream): an epoll set, level-triggered,
// waited on through Go's poller (the set is itself a readable
// descriptor), and one goroutine that reads each ready socket once per
// report into one buffer and parses it in place. A socket that still
// holds bytes after the read is reported again. A few goroutines for
// thousands of connections, rather than one per connection, which would
// queue the sockets' readers behind thousands of streams' readers in Go's
// run queue; within a reactor, sockets are read in the order they became
// ready.
type reactor struct {
	epfd   int
	waiter syscall.RawConn
	file   *os.File // keeps epfd from being collected and closed
	index  int      // its place in reactors.all, the low byte of its keys

	mu    sync.Mutex
	next  uint64
	conns map[uint64]source
}

// The worker has four reactors per CPU it may use, and gives connections
// to them in turn: one reader alone reads serially, and on a box where the
// server takes the other CPU the last socket of a round waits for all the
// others' reads. With only one per CPU, a reactor whose thread the kernel
// had put behind the server's work kept its sockets unread while the
// other CPU sat idle (perf timelines, docs/PERFORMANCE.md, issue 16); with
// several, Go's scheduler hands a waiting reactor to whichever CPU is
// free.
var reactors struct {
	once sync.Once
	all  []*reactor
	next atomic.Uint64
	err  error
}

// pickReactor returns the reactor for the next connection, starting
// them on first use.
func pickReactor() (*reactor, error) {
	reactors.once.Do(func() {
		for i := range min(4*runtime.GOMAXPROCS(0), 256) { // a key's low byte says which
			r, err := newReactor(i)
			if err != nil {
				reactors.err = err
				return
			}
			reactors.all = append(reactors.all, r)
		}
	})
	if reactors.err != nil {
		return nil, reactors.err
	}
	return reactors.all[reactors.next.Add(1)%uint64(len(reactors.all))], nil
}

func newReactor(index int) (*reactor, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	f := os.NewFile(uintptr(fd), "loadgen-reactor")
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	r := &reactor{epfd: fd, waiter: rc, file: f, index: index, conns: map[uint64]source{}}
	go r.run()
	return r, nil
}

// startReading hands s to a reactor, and stores in key what stopReading
// will need, before s can be read.
func startReading(s source, key *atomic.Uint64) error {
	r, err := pickReactor()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.next++
	id := r.next<<8 | uint64(r.index)
	r.conns[id] = s
	key.Store(id)
	r.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	var cerr error
	if err := s.rawConn().Control(func(fd uintptr) { cerr = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) }); err == nil {
		err = cerr
	}
	if err != nil {
		r.mu.Lock()
		delete(r.conns, id)
		r.mu.Unlock()
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// stopReading takes the source with key out of the reactor. Call it
// before closing its connection.
func stopReading(key *atomic.Uint64, raw syscall.RawConn) {
	id := key.Load()
	if id == 0 {
		return
	}
	r := reactors.all[id&0xff]
	raw.Control(func(fd uintptr) { unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	r.mu.Lock()
	delete(r.conns, id)
	r.mu.Unlock()
}

func (r *reactor) run() {
	events := make([]unix.EpollEvent, 512)
	rd := newStampedReader(64 << 10)
	ready := make([]source, 0, len(events))
	// The wait and the read are closures made once: made per call, each
	// would allocate with the variables it sets.
	var (
		n, got     int
		stamp      int64
		werr, rerr error
	)
	wait := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		if werr == unix.EINTR {
			n, werr = 0, nil
			return true
		}
		return n > 0 || werr != nil
	}
	read := func(fd uintptr) bool {
		got, stamp, rerr = rd.recv(int(fd))
		return true // never wait here: the epoll set says when
	}
	for {
		err := r.waiter.Read(wait)
		if err == nil {
			err = werr
		}
		if err != nil {
			panic(fmt.Sprintf("loadgen: epoll_wait: %v", err))
		}
		ready = ready[:0]
		r.mu.Lock()
		for _, ev := range events[:n] {
			if s := r.conns[uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32]; s != nil {
				ready = append(ready, s)
			}
		}
		r.mu.Unlock()
		for _, s := range ready {
			err := s.rawConn().Read(read)
			if err == nil && rerr == unix.EAGAIN {
				continue // taken already
			}
			if err == nil {
				err = rerr
			}
			if err == nil && got == 0 {
				err = errors.New("EOF")
			}
			if err == nil {
				// Stamped per read, never per batch: a batch of 512
				// reads takes a millisecond or more.
				err = s.ingest(rd.buf[:got], time.Now().UnixNano(), stamp)
			}
			if err != nil {
				s.end()
			}
		}
		clear(ready)
	}
}
