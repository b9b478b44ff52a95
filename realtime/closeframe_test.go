package realtime

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// rawFrame is one frame as the server wrote it.
type rawFrame struct {
	op      byte
	payload []byte
}

// rawSocket is a WebSocket client on a bare TCP connection, so a test sees
// every byte the server writes, in order, including what follows a close
// frame (which a WebSocket library would hide).
type rawSocket struct {
	conn     net.Conn
	r        *bufio.Reader
	answered bool // a close frame has been sent
}

func (s *hubServer) rawDial(t *testing.T, query string) *rawSocket {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /?" + query + " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return &rawSocket{conn: conn, r: r}
}

// next reads one frame; server frames must not be masked.
func (c *rawSocket) next() (rawFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return rawFrame{}, err
	}
	if h[1]&0x80 != 0 {
		return rawFrame{}, io.ErrUnexpectedEOF // a masked server frame is a protocol error
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return rawFrame{}, err
	}
	return rawFrame{op: h[0] & 0x0f, payload: p}, nil
}

// all reads frames until the server ends the connection, answering its
// close frame as a client does (so it need not wait out its grace), and
// reading on after it: anything the server writes later is a bug.
func (c *rawSocket) all(t *testing.T) []rawFrame {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []rawFrame
	for {
		f, err := c.next()
		if err != nil {
			if err != io.EOF {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("connection still open after 10s, %d frames read", len(out))
				}
			}
			return out
		}
		out = append(out, f)
		if f.op == opClose && !c.answered {
			c.answered = true
			c.sendClose(binary.BigEndian.Uint16(f.payload))
		}
	}
}

// sendClose writes a masked close frame with code, as a client must.
func (c *rawSocket) sendClose(code uint16) error {
	mask := [4]byte{1, 2, 3, 4}
	p := []byte{byte(code >> 8), byte(code)}
	f := []byte{0x88, 0x80 | byte(len(p)), mask[0], mask[1], mask[2], mask[3]}
	for i, b := range p {
		f = append(f, b^mask[i%4])
	}
	_, err := c.conn.Write(f)
	return err
}

// checkOneClose fails unless frames hold exactly one close frame, with
// one of codes, and it is the last.
func checkOneClose(t *testing.T, frames []rawFrame, codes ...uint16) {
	t.Helper()
	closes := 0
	for i, f := range frames {
		if f.op != opClose {
			continue
		}
		closes++
		if got := binary.BigEndian.Uint16(f.payload); !slices.Contains(codes, got) {
			t.Errorf("close frame %d has code %d, want one of %v", closes, got, codes)
		}
		if i != len(frames)-1 {
			t.Errorf("%d frames after the close frame; the first has opcode %d", len(frames)-1-i, frames[i+1].op)
		}
	}
	if closes != 1 {
		t.Fatalf("%d close frames in %d frames, want 1", closes, len(frames))
	}
}

// TestHub_OneCloseFrame: however a socket ends while events are being
// written to it, the server sends exactly one close frame and nothing
// after it (RFC 6455 §5.5.1): not the next event, not a second close for
// the peer's own close, not one for a shutdown that follows a cut.
func TestHub_OneCloseFrame(t *testing.T) {
	// stream publishes status events until stopped, so that writes are in
	// flight whenever the socket is cut.
	stream := func(s *hubServer) (stop func()) {
		var done atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; !done.Load(); i++ {
				s.bus.Publish(presence.Event{UserID: int64(100 + i%50), Username: "x", Online: i%2 == 0, Mode: presence.ModeOnline})
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
		return func() { done.Store(true); wg.Wait() }
	}
	t.Run("Shutdown", func(t *testing.T) {
		for range 5 {
			s := startHub(t, 1<<16)
			c := s.rawDial(t, "id=1")
			stop := stream(s)
			time.Sleep(20 * time.Millisecond)
			go s.hub.Shutdown(context.Background())
			frames := c.all(t)
			stop()
			checkOneClose(t, frames, uint16(closeGoingAway))
		}
	})
	// revocable opens a socket accepted with a context the test cancels
	// (a revocation: 1008), with events being written to it.
	revocable := func(t *testing.T) (s *hubServer, c *rawSocket, revoke context.CancelFunc, stop func()) {
		s = startHub(t, 1<<16)
		ctx, cancel := context.WithCancel(context.Background())
		s.ctxs.Store("1", ctx)
		c = s.rawDial(t, "id=1")
		stop = stream(s)
		time.Sleep(20 * time.Millisecond)
		return s, c, cancel, stop
	}
	t.Run("CutThenShutdown", func(t *testing.T) {
		for range 5 {
			s, c, cancel, stop := revocable(t)
			cancel() // revoked: 1008, sent by a goroutine of its own
			go s.hub.Shutdown(context.Background())
			frames := c.all(t)
			stop()
			// Whichever goes first, the cut's 1008 or the shutdown's 1001:
			// one of them.
			checkOneClose(t, frames, uint16(closePolicy), uint16(closeGoingAway))
		}
	})
	t.Run("PeerClosesDuringCut", func(t *testing.T) {
		for range 5 {
			_, c, cancel, stop := revocable(t)
			go cancel()
			if err := c.sendClose(1000); err != nil {
				t.Fatal(err)
			}
			c.answered = true
			frames := c.all(t)
			stop()
			// Whichever went first, the server's 1008 or its echo of our
			// 1000: one of them.
			checkOneClose(t, frames, uint16(closePolicy), 1000)
		}
	})
}
