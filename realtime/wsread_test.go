package realtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// clientFrame is one frame as a client sends it: masked, with the key
// 1,2,3,4.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	key := []byte{1, 2, 3, 4}
	f = append(f, key...)
	for i, c := range payload {
		f = append(f, c^key[i&3])
	}
	return f
}

// frameFunc is a frameHandler made of a function.
type frameFunc func(op byte, payload []byte) bool

func (f frameFunc) onFrame(op byte, p []byte) bool { return f(op, p) }

// got is one callback of wsReader.read.
type got struct {
	op      byte
	payload string
}

// readAll feeds stream to a fresh reader in pieces of at most step bytes
// and returns what it reported.
func readAll(t *testing.T, stream []byte, step int) ([]got, error) {
	t.Helper()
	r := wsReader{}
	var out []got
	fn := func(op byte, p []byte) bool {
		out = append(out, got{op, string(p)})
		return op != opClose
	}
	for len(stream) > 0 {
		n := min(step, len(stream))
		piece := bytes.Clone(stream[:n]) // read unmasks in place
		stream = stream[n:]
		if err := r.read(piece, frameFunc(fn)); err != nil {
			return out, err
		}
	}
	if len(r.part) != 0 || len(r.msg) != 0 {
		t.Fatalf("reader holds %d bytes of frame and %d of message after a whole stream", len(r.part), len(r.msg))
	}
	return out, nil
}

func TestWSReader(t *testing.T) {
	long := strings.Repeat("x", 300) // a 16-bit length
	var stream []byte
	stream = append(stream, clientFrame(true, opText, []byte(`{"type":"ping"}`))...)
	stream = append(stream, clientFrame(false, opText, []byte("frag"))...)
	stream = append(stream, clientFrame(true, opPing, []byte("p"))...) // between fragments
	stream = append(stream, clientFrame(false, opContinuation, []byte("ment"))...)
	stream = append(stream, clientFrame(true, opContinuation, []byte("ed"))...)
	stream = append(stream, clientFrame(true, opPong, nil)...)
	stream = append(stream, clientFrame(true, opBinary, []byte{0, 1, 2})...)
	stream = append(stream, clientFrame(true, opText, []byte(long))...)
	stream = append(stream, clientFrame(true, opText, nil)...)
	stream = append(stream, clientFrame(true, opClose, websocket.FormatCloseMessage(1000, "bye"))...)
	want := []got{
		{opText, `{"type":"ping"}`}, {opPing, "p"}, {opText, "fragmented"}, {opPong, ""},
		{opBinary, "\x00\x01\x02"}, {opText, long}, {opText, ""}, {opClose, "\x03\xe8bye"},
	}
	// Every split of the stream, from a byte at a time to all at once,
	// gives the same messages.
	for _, step := range []int{1, 2, 3, 5, 7, 64, 511, len(stream)} {
		t.Run(fmt.Sprintf("Step%d", step), func(t *testing.T) {
			out, err := readAll(t, stream, step)
			if !errors.Is(err, errStopReading) {
				t.Fatalf("err = %v, want errStopReading after the close frame", err)
			}
			if fmt.Sprint(out) != fmt.Sprint(want) {
				t.Fatalf("got %q\nwant %q", out, want)
			}
		})
	}

	t.Run("CloseCodes", func(t *testing.T) {
		for _, code := range []int{1000, 1001, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999} {
			out, err := readAll(t, clientFrame(true, opClose, websocket.FormatCloseMessage(code, "")), 1)
			if !errors.Is(err, errStopReading) || len(out) != 1 || closePayloadCode([]byte(out[0].payload)) != code {
				t.Fatalf("close %d: %v, %v", code, out, err)
			}
		}
	})

	t.Run("AtLimit", func(t *testing.T) {
		msg := strings.Repeat("a", maxMessageSize)
		half := maxMessageSize / 2
		stream := append(clientFrame(false, opText, []byte(msg[:half])), clientFrame(true, opContinuation, []byte(msg[half:]))...)
		out, err := readAll(t, stream, 1000)
		if err != nil || len(out) != 1 || out[0].payload != msg {
			t.Fatalf("a message of exactly the limit: %d messages, err %v", len(out), err)
		}
	})
}

func TestWSReader_Errors(t *testing.T) {
	frame := func(fin bool, op byte, n int) []byte { return clientFrame(fin, op, bytes.Repeat([]byte("a"), n)) }
	unmasked := []byte{0x81, 0x01, 'a'}
	for _, tc := range []struct {
		name   string
		stream []byte
		code   int
	}{
		{"ErrUnmasked", unmasked, websocket.CloseProtocolError},
		{"ErrReservedBits", append([]byte{0xC1}, frame(true, opText, 1)[1:]...), websocket.CloseProtocolError},
		{"ErrUnknownOpcode", frame(true, 0x3, 1), websocket.CloseProtocolError},
		{"ErrUnknownControl", frame(true, 0xB, 1), websocket.CloseProtocolError},
		{"ErrControlFragmented", frame(false, opPing, 1), websocket.CloseProtocolError},
		{"ErrControlTooLong", frame(true, opPing, 126), websocket.CloseProtocolError},
		{"ErrContinuationAlone", frame(true, opContinuation, 1), websocket.CloseProtocolError},
		{"ErrNewMessageInFragments", append(frame(false, opText, 1), frame(true, opText, 1)...), websocket.CloseProtocolError},
		{"ErrTooBig", frame(true, opText, maxMessageSize+1), websocket.CloseMessageTooBig},
		// Refused from the header alone: the 64-bit length is not
		// waited for, let alone buffered.
		{"ErrTooBigHeaderOnly", []byte{0x81, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0}, websocket.CloseMessageTooBig},
		{"ErrTooBigInFragments", append(frame(false, opText, maxMessageSize), frame(true, opContinuation, 1)...), websocket.CloseMessageTooBig},
		{"ErrCloseOneByte", frame(true, opClose, 1), websocket.CloseProtocolError},
		{"ErrCloseCode", clientFrame(true, opClose, []byte{0x03, 0xed}), websocket.CloseProtocolError},           // 1005 is never sent
		{"ErrCloseCodeUnassigned", clientFrame(true, opClose, []byte{0x03, 0xf7}), websocket.CloseProtocolError}, // 1015 neither
		{"ErrCloseReasonUTF8", clientFrame(true, opClose, append(websocket.FormatCloseMessage(1000, ""), 0xff)), websocket.CloseInvalidFramePayloadData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{1, len(tc.stream)} {
				_, err := readAll(t, tc.stream, step)
				var pe *protocolError
				if !errors.As(err, &pe) || pe.code != tc.code {
					t.Fatalf("step %d: err = %v, want a protocol error with code %d", step, err, tc.code)
				}
			}
		})
	}
}

// TestWSReader_HoldsNothingBetweenMessages: a reader that has handled
// whole frames keeps no buffer; one left with half a frame keeps only
// that half, not the read buffer it came in.
func TestWSReader_HoldsNothingBetweenMessages(t *testing.T) {
	r := wsReader{}
	buf := make([]byte, 4096)
	f := clientFrame(true, opText, []byte(`{"type":"ping"}`))
	n := copy(buf, f)
	n += copy(buf[n:], f[:5])
	var msgs int
	if err := r.read(buf[:n], frameFunc(func(byte, []byte) bool { msgs++; return true })); err != nil {
		t.Fatal(err)
	}
	if msgs != 1 || len(r.part) != 5 || cap(r.part) > 64 {
		t.Fatalf("after a frame and a half: %d messages, kept %d bytes (cap %d)", msgs, len(r.part), cap(r.part))
	}
	if err := r.read(bytes.Clone(f[5:]), frameFunc(func(byte, []byte) bool { msgs++; return true })); err != nil {
		t.Fatal(err)
	}
	if msgs != 2 || r.part != nil || r.msg != nil {
		t.Fatalf("after the rest: %d messages, holds %v / %v", msgs, r.part, r.msg)
	}
}

// FuzzWSReader: whatever a client sends, the parser does not panic, holds
// no more than a message's worth, and gives the same messages and the
// same verdict whether the bytes come at once or split at any point.
func FuzzWSReader(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte(`{"type":"ping"}`)), 3)
	f.Add(append(clientFrame(false, opText, []byte("a")), clientFrame(true, opContinuation, []byte("b"))...), 1)
	f.Add(clientFrame(true, opClose, websocket.FormatCloseMessage(1000, "x")), 2)
	f.Add([]byte{0x81, 0xfe, 0xff, 0xff}, 2)
	f.Fuzz(func(t *testing.T, stream []byte, step int) {
		step = 1 + abs(step)%(len(stream)+1)
		run := func(step int) (string, error) {
			r := wsReader{}
			var out strings.Builder
			fn := func(op byte, p []byte) bool {
				if len(p) > maxMessageSize {
					t.Fatalf("a message of %d bytes passed the limit", len(p))
				}
				fmt.Fprintf(&out, "%d:%q ", op, p)
				return op != opClose
			}
			for s := bytes.Clone(stream); len(s) > 0; {
				n := min(step, len(s))
				err := r.read(s[:n], frameFunc(fn))
				s = s[n:]
				if len(r.part) > maxMessageSize+14 || len(r.msg) > maxMessageSize {
					t.Fatalf("holds %d + %d bytes", len(r.part), len(r.msg))
				}
				if err != nil {
					return out.String(), err
				}
			}
			return out.String(), nil
		}
		whole, werr := run(len(stream) + 1)
		split, serr := run(step)
		if whole != split || fmt.Sprint(werr) != fmt.Sprint(serr) {
			t.Fatalf("at once: %s %v\nin pieces of %d: %s %v", whole, werr, step, split, serr)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
