package realtime

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// The hub writes its own frames. A server's frames are not masked (RFC
// 6455 §5.1), so a status event's frame is the same bytes for every
// socket: it is built once, kept in the event log and written as is, with
// no copy and no lock per socket beyond the socket's own. It reads its
// clients' frames itself too (wsread.go): gorilla/websocket only answers
// the upgrade.

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// wsFrame returns payload as one final, unmasked frame of opcode op.
func wsFrame(op byte, payload []byte) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2, 2+n)
		b[1] = byte(n)
	case n <= 0xFFFF:
		b = make([]byte, 4, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = 0x80 | op
	return append(b, payload...)
}

// closeFrame is a close frame with code and reason (cut to fit a control
// frame's 125 bytes).
func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return wsFrame(opClose, append(p, reason...))
}

var (
	framePong = wsFrame(opText, msgPong)
	framePing = wsFrame(opPing, nil)
)

const (
	// maxBatchBytes is how much one write to a socket may carry, and
	// maxBatchFrames how many frames (under writev's limit, IOV_MAX):
	// dozens of events per system call where a socket is behind, while
	// what a socket waiting on its peer holds (the rest of one batch)
	// stays around a kilobyte of frame references.
	maxBatchBytes  = 16 << 10
	maxBatchFrames = 64
)

var errWriteWait = errors.New("websocket: write lock not taken in time")

// deliver writes to the socket the events it has not been sent, from a
// writer goroutine that must not block: when the socket is idle the frames
// go out in one non-blocking write, and whatever the kernel does not take
// at once is left to a goroutine of the socket's own. A socket already
// writing is skipped: its writer takes the new events before it stops.
// scratch is the caller's buffer for the frames; deliver returns it.
func (cl *wsClient) deliver(scratch [][]byte) [][]byte {
	log := cl.hub.log
	if cl.cursor.Load() >= log.head.Load() {
		return scratch
	}
	cl.mu.Lock()
	if cl.done || cl.writing {
		cl.mu.Unlock()
		return scratch
	}
	cl.writing = true
	cl.mu.Unlock()
	bufs, to, hint := log.since(cl.cursor.Load(), cl.hint, cl.user.ID, scratch[:0], maxBatchBytes, maxBatchFrames)
	cl.cursor.Store(to)
	cl.hint = hint
	if len(bufs) == 0 {
		if !cl.release() {
			go cl.drain()
		}
		return bufs
	}
	select {
	case cl.wsem <- struct{}{}:
	default: // a close frame is being written: wait for it elsewhere
		cl.pend = append(net.Buffers(nil), bufs...)
		go cl.drain()
		return bufs
	}
	if cl.closeSent.Load() {
		// The close frame went out between the check of done above and
		// the lock: nothing may follow it. done is set, so release gives
		// up writing.
		<-cl.wsem
		cl.release()
		return bufs
	}
	rest := net.Buffers(bufs)
	switch err := cl.writeNow(&rest); {
	case err != nil:
		<-cl.wsem
		cl.writeFailed(err) // writing stays true: nobody writes to a dead socket
	case len(rest) == 0:
		<-cl.wsem
		if !cl.release() {
			go cl.drain()
		}
	default:
		// The kernel took part or none of it: the rest, and the write
		// lock with it, go to a goroutine that may wait.
		cl.pend = rest
		go cl.finishHeld()
	}
	return bufs
}

// writeNow writes what the kernel takes at once of *bufs and leaves the
// rest in *bufs (a copy: bufs itself is not changed).
func (cl *wsClient) writeNow(bufs *net.Buffers) error {
	n, err := tryWrite(cl.raw, *bufs)
	if err != nil && !errors.Is(err, errWouldBlock) {
		return err
	}
	*bufs = consumed(*bufs, n)
	return nil
}

// consumed returns a copy of bufs without its first n bytes; nil when
// that is all of them.
func consumed(bufs [][]byte, n int) net.Buffers {
	i := 0
	for i < len(bufs) && n >= len(bufs[i]) {
		n -= len(bufs[i])
		i++
	}
	if i == len(bufs) {
		return nil
	}
	out := make(net.Buffers, 0, len(bufs)-i)
	out = append(out, bufs[i][n:])
	return append(out, bufs[i+1:]...)
}

// finishHeld writes the rest of a frame batch that deliver began, holding
// the write lock deliver took, then goes on as drain.
func (cl *wsClient) finishHeld() {
	err := cl.writeWaiting(&cl.pend)
	<-cl.wsem
	cl.pend = nil
	if err != nil {
		cl.writeFailed(err)
		return
	}
	cl.drain()
}

// release gives up writing when nothing is left to write, and reports
// whether it did. Only the goroutine that set writing calls it; the check
// of the log's head is made under the socket's lock, after which a writer
// goroutine that finds the socket idle sends what came since.
func (cl *wsClient) release() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.done || (len(cl.extra) == 0 && !cl.pingDue && (!cl.events || cl.cursor.Load() >= cl.hub.log.head.Load())) {
		cl.writing = false
		cl.extra = nil // let an idle socket hold no buffer
		return true
	}
	return false
}

// drain writes until nothing is left: the events the socket has not been
// sent, a batch at a time, each batch followed by the replies and the
// ping waiting by then, so that a reply comes after the events the socket
// had when it was asked, and never waits long behind a socket's backlog.
// Exactly one drain (or deliver) writes at a time: the one that set
// writing.
func (cl *wsClient) drain() {
	var scratch [][]byte
	for {
		if len(cl.pend) > 0 {
			if err := cl.write(cl.pend); err != nil {
				cl.writeFailed(err)
				return // writing stays true: nobody writes to a dead socket
			}
			cl.pend = nil
		}
		cl.mu.Lock()
		if cl.done {
			cl.writing = false
			cl.extra = nil
			cl.mu.Unlock()
			return
		}
		extra, ping := cl.extra, cl.pingDue
		cl.extra, cl.pingDue = nil, false
		cl.mu.Unlock()
		// The events come first: those in the log now, taken after the
		// replies were, are older than the requests they answer.
		if cl.events {
			var to uint64
			scratch, to, cl.hint = cl.hub.log.since(cl.cursor.Load(), cl.hint, cl.user.ID, scratch[:0], maxBatchBytes, maxBatchFrames)
			cl.cursor.Store(to)
			if len(scratch) > 0 {
				if err := cl.write(scratch); err != nil {
					cl.writeFailed(err)
					return
				}
			}
		}
		if ping {
			extra = append(extra, framePing)
		}
		if len(extra) > 0 {
			if err := cl.write(extra); err != nil {
				cl.writeFailed(err)
				return
			}
		}
		if cl.release() {
			return
		}
	}
}

// write writes bufs whole under the write lock; nothing, once a close
// frame has gone out (RFC 6455 §5.5.1).
func (cl *wsClient) write(bufs net.Buffers) error {
	if err := cl.lock(time.Now().Add(cl.hub.writeWait)); err != nil {
		return err
	}
	defer func() { <-cl.wsem }()
	if cl.closeSent.Load() {
		return nil
	}
	return cl.writeLocked(&bufs)
}

// writeLocked writes bufs whole; the caller holds the write lock. What
// the kernel takes at once needs no deadline. For the rest the peer must
// read: one that takes nothing for the write wait has stopped reading and
// fails the write; one that reads, however slowly (a client on a busy
// machine working through a backlog), is given another write wait after
// each write that made progress. A write that had to wait and then went
// through shows that the peer's application reads (TCP's window reopens
// only when it does): that counts as the peer being alive, as a pong
// does, since its pong may be queued behind the very backlog it is
// reading.
func (cl *wsClient) writeLocked(bufs *net.Buffers) error {
	if err := cl.writeNow(bufs); err != nil || len(*bufs) == 0 {
		return err
	}
	return cl.writeWaiting(bufs)
}

// writeWaiting is the part of writeLocked that waits for the peer.
func (cl *wsClient) writeWaiting(bufs *net.Buffers) error {
	for {
		cl.nc.SetWriteDeadline(time.Now().Add(cl.hub.writeWait))
		n, err := bufs.WriteTo(cl.nc)
		if err == nil {
			// A deadline left set would fail the next non-blocking write
			// once it passed.
			cl.nc.SetWriteDeadline(time.Time{})
			if cl.raw != nil && cl.pc != nil {
				cl.pc.Alive()
			}
			return nil
		}
		if n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
}

// lock takes the socket's write lock, which keeps one frame from being
// written into the middle of another, waiting until deadline at most.
func (cl *wsClient) lock(deadline time.Time) error {
	select {
	case cl.wsem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case cl.wsem <- struct{}{}:
		return nil
	case <-t.C:
		return errWriteWait
	}
}

// control writes one control frame (a pong to the peer's ping) between
// the other frames, by deadline at most; nothing after a close frame.
func (cl *wsClient) control(f []byte, deadline time.Time) error {
	if err := cl.lock(deadline); err != nil {
		return err
	}
	defer func() { <-cl.wsem }()
	if cl.closeSent.Load() {
		return nil
	}
	cl.nc.SetWriteDeadline(deadline)
	_, err := cl.nc.Write(f)
	cl.nc.SetWriteDeadline(time.Time{})
	return err
}

// sendClose writes the socket's one close frame, by deadline at most, and
// stops every write after it. It reports false when a close frame had
// already gone out (or is going out): the server's own, or its reply to
// the peer's.
func (cl *wsClient) sendClose(f []byte, deadline time.Time) bool {
	cl.closeMu.Lock()
	defer cl.closeMu.Unlock()
	if !cl.claimClose() {
		return false
	}
	cl.writeClose(f, deadline)
	return true
}

// claimClose makes this caller the one that sends the socket's close
// frame, and reports whether it is. Caller must hold closeMu until the
// frame is written (writeClose).
func (cl *wsClient) claimClose() bool {
	cl.mu.Lock()
	cl.done = true // no more events are taken
	cl.mu.Unlock()
	return cl.closing.CompareAndSwap(false, true)
}

// writeClose writes the close frame claimed by claimClose, by deadline at
// most; nothing is written after it.
func (cl *wsClient) writeClose(f []byte, deadline time.Time) {
	if err := cl.lock(deadline); err != nil {
		cl.closeSent.Store(true)
		return
	}
	defer func() { <-cl.wsem }()
	cl.closeSent.Store(true)
	cl.nc.SetWriteDeadline(deadline)
	cl.nc.Write(f)
	cl.nc.SetWriteDeadline(time.Time{})
}

// closeNow sends a close frame with code and reason, then closes the
// connection: for a peer that broke the protocol, whose close reply is
// not awaited.
func (cl *wsClient) closeNow(code int, reason string) {
	cl.sendClose(closeFrame(code, reason), time.Now().Add(cl.hub.writeWait))
	cl.nc.Close()
}

// writeFailed closes the connection after a failed write, unless the
// socket is being cut: its close frame is on its way (or could not be
// written either) and the reader is waiting for the client's; closing now
// could destroy the frame before the client reads it. A write that timed
// out is a peer that stopped reading: counted as cut for being too slow.
func (cl *wsClient) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errWriteWait) {
		cl.hub.slow.Add(1)
	}
	if cl.closing.Load() {
		return
	}
	cl.end()
}

// writer is the hub's writer goroutine: woken after each event, it
// delivers to every event socket, in chunks that run in parallel.
//
// A pass that took long while events kept coming is followed by as long
// a rest (at most maxRest): under a stream of events (a connect storm is
// N² of them) the writers use about half of the CPUs, and the rest of the
// server (upgrades, the API, the widgets) keeps the other half. Nothing is
// lost by resting: the next pass sends each socket everything since its
// cursor in one write, merged per user where it lags. A pass during which
// nothing new came is not followed by a rest, so a lone change after a
// quiet spell goes out at once.
func (h *Hub) writer() {
	defer close(h.writerDone)
	var list []*wsClient
	rest := time.NewTimer(0)
	<-rest.C
	for {
		select {
		case <-h.wake:
		case <-h.stop:
			return
		}
		start, head := time.Now(), h.log.head.Load()
		h.mu.Lock()
		list = append(list[:0], h.eventSockets...)
		h.mu.Unlock()
		// In chunks, each on a goroutine of its own: short tasks that the
		// scheduler interleaves with everything else the server runs
		// (the widgets' streams are a goroutine each), where one long
		// pass would be preempted and wait behind all of them. A socket
		// written by one chunk is skipped by any other until done, and
		// its writer then takes what came meanwhile: order is the log's.
		var chunks sync.WaitGroup
		for c := range slices.Chunk(list, deliverChunk) {
			chunks.Go(func() {
				scratch := scratchPool.Get().(*[][]byte)
				for _, cl := range c {
					*scratch = cl.deliver(*scratch)
				}
				clear(*scratch)
				scratchPool.Put(scratch)
			})
		}
		chunks.Wait()
		clear(list) // hold no finished socket
		h.passed(head)
		if d := time.Since(start); d >= minRest && h.log.head.Load() != head {
			rest.Reset(min(d, maxRest))
			select {
			case <-rest.C:
			case <-h.stop:
				return
			}
		}
	}
}

// passed records that every event socket has been offered the log up to
// head, and wakes whoever Settle has waiting.
func (h *Hub) passed(head uint64) {
	h.through.Store(head)
	h.wakeSettle()
}

// wakeSettle makes whoever Settle has waiting check again.
func (h *Hub) wakeSettle() {
	h.passMu.Lock()
	close(h.passEnd)
	h.passEnd = make(chan struct{})
	h.passMu.Unlock()
}

// Settle waits until the status events the hub holds when it is called
// (those in its log, and those still queued on its bus subscription) have
// been offered to every socket that wants events: written, or handed to
// the socket's own goroutine where the kernel would not take them at
// once. It also returns when stop is closed, when the hub is shut down,
// or after about max (the caller's goroutine must then be scheduled). It
// returns at once when no socket wants events. Events that come later are
// not waited for. The events the hub holds include one the bus has
// handed to the hub's fan-out goroutine before that goroutine ran.
//
// The widget feed calls it before each push. Both follow the same
// change, and on a box with few CPUs the two fan-outs, run together, each
// take as long as both: the sockets' one small frame each goes first,
// then the widgets' streams (docs/PERFORMANCE.md, issue 16). A slow
// socket does not hold Settle: what the kernel does not take is left to
// its own goroutine.
func (h *Hub) Settle(stop <-chan struct{}, max time.Duration) {
	if h.nEventSockets.Load() == 0 {
		return
	}
	// The head first, then what the fan-out has logged, then what the bus
	// has sent it: an event logged between the reads is then counted at
	// most once (undercounting it only loses its head start; counting it
	// twice would wait for an event that may not come). Sent, not len(C):
	// an event the bus has handed to the fan-out's goroutine, which has
	// not run yet, is in neither the log nor the channel's queue, and the
	// widget feed, woken by the same event, often runs first.
	target := h.log.head.Load()
	sub := h.sub.Load()
	if sub != nil {
		logged := sub.logged.Load()
		if d := int64(sub.Sent() - logged); d > 0 {
			target += uint64(d) // each is one entry of the log
		}
	}
	var timer *time.Timer
	for {
		h.passMu.Lock()
		end := h.passEnd // taken before the check: a pass ending after it closes this one
		h.passMu.Unlock()
		// A new subscription means the bus dropped the old one (gap): its
		// events will not all reach the log, and the sockets that wanted
		// them are being cut.
		if h.through.Load() >= target || h.nEventSockets.Load() == 0 || h.sub.Load() != sub {
			return
		}
		if timer == nil {
			timer = time.NewTimer(max)
			defer timer.Stop()
		}
		select {
		case <-end:
		case <-timer.C:
			return
		case <-stop:
			return
		case <-h.stop:
			return
		}
	}
}

// deliverChunk is how many sockets one goroutine of a pass writes to:
// about a millisecond of system calls.
const deliverChunk = 64

// scratchPool holds the frame lists of deliver.
var scratchPool = sync.Pool{New: func() any { return new([][]byte) }}

// minRest is the shortest pass a writer rests after: shorter ones cost
// too little to matter. maxRest bounds how late a rest makes the events
// that came during a long pass.
const (
	minRest = time.Millisecond
	maxRest = time.Second
)
