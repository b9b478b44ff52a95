package realtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The hub reads its clients' frames itself, as it writes its own
// (wswrite.go): gorilla/websocket answers the upgrade and nothing more.
// A parser that takes bytes as they come, rather than a reader that
// blocks for the rest of a frame, lets a socket that is not sending
// anything hold no goroutine and no buffer (wspoll_linux.go).

// More WebSocket opcodes (RFC 6455 §5.2); the rest are in wswrite.go.
const (
	opContinuation = 0x0
	opBinary       = 0x2
)

// errStopReading is returned by wsReader.read when its callback asked it
// to stop: the socket is ending.
var errStopReading = errors.New("websocket: stop reading")

// protocolError is a client's frame that breaks the protocol: the socket
// is closed with code and reason.
type protocolError struct {
	code   int
	reason string
}

func (e *protocolError) Error() string {
	return fmt.Sprintf("websocket: %s (close %d)", e.reason, e.code)
}

func protoErr(reason string) error {
	return &protocolError{code: websocket.CloseProtocolError, reason: reason}
}

// errTooBig is a message over the read limit (1009, as gorilla sent it).
var errTooBig = &protocolError{code: websocket.CloseMessageTooBig, reason: "message too big"}

// wsReader assembles a client's messages from its frames (RFC 6455 §5),
// however the bytes are split between reads. It holds only what lies
// between two reads: the start of a frame not all arrived, and the
// fragments of a message not yet complete. A socket between messages,
// nearly all of them nearly always, holds nothing. Its zero value is
// ready; one reader is used by one goroutine at a time. A message may be
// maxMessageSize bytes at most.
type wsReader struct {
	part  []byte // an incomplete frame, carried to the next read
	msg   []byte // the fragments so far of a fragmented message
	msgOp byte   // the opcode of that message; 0 when none is open
}

// frameHandler takes the messages and control frames a wsReader parses.
type frameHandler interface {
	// onFrame handles a complete message (opText, opBinary) or control
	// frame (opClose, opPing, opPong), payload unmasked and valid only
	// during the call, and reports whether reading goes on.
	onFrame(op byte, payload []byte) bool
}

// read parses p, the next bytes from the client, and hands each complete
// message and control frame to h. p is unmasked in place. When h returns
// false read stops, returns errStopReading and must not be called again;
// a frame that breaks the protocol, or a message over the limit, gives a
// *protocolError.
func (r *wsReader) read(p []byte, h frameHandler) error {
	data := p
	if len(r.part) > 0 {
		r.part = append(r.part, p...)
		data = r.part
	}
	for {
		n, err := r.frame(data, h)
		if err != nil {
			r.part, r.msg = nil, nil
			return err
		}
		if n == 0 {
			break
		}
		data = data[n:]
	}
	switch {
	case len(data) == 0:
		r.part = nil
	case len(r.part) == 0 || &data[0] != &r.part[0]:
		r.part = bytes.Clone(data) // p is the caller's buffer
	}
	return nil
}

// frame parses the frame at the start of data. It returns the bytes it
// took, 0 when the frame has not all arrived.
func (r *wsReader) frame(data []byte, h frameHandler) (int, error) {
	if len(data) < 2 {
		return 0, nil
	}
	b0, b1 := data[0], data[1]
	fin, op := b0&0x80 != 0, b0&0x0f
	if b0&0x70 != 0 {
		return 0, protoErr("reserved bits set: no extension was negotiated")
	}
	if b1&0x80 == 0 {
		return 0, protoErr("frames from a client must be masked")
	}
	size, head := uint64(b1&0x7f), 2
	switch size {
	case 126:
		if len(data) < 4 {
			return 0, nil
		}
		size, head = uint64(binary.BigEndian.Uint16(data[2:])), 4
	case 127:
		if len(data) < 10 {
			return 0, nil
		}
		size, head = binary.BigEndian.Uint64(data[2:]), 10
		if size>>63 != 0 {
			return 0, protoErr("frame length has its top bit set")
		}
	}
	control := op >= opClose
	switch {
	case control && (!fin || size > 125):
		return 0, protoErr("control frames must be final and at most 125 bytes")
	case control && op != opClose && op != opPing && op != opPong,
		!control && op != opContinuation && op != opText && op != opBinary:
		return 0, protoErr(fmt.Sprintf("unknown opcode %d", op))
	case op == opContinuation && r.msgOp == 0:
		return 0, protoErr("continuation frame without a message to continue")
	case (op == opText || op == opBinary) && r.msgOp != 0:
		return 0, protoErr("new message before the last one's final frame")
	case !control && size > uint64(maxMessageSize-len(r.msg)):
		// Refused from its header: a client gets no buffer for a frame
		// it may never finish.
		return 0, errTooBig
	}
	end := head + 4 + int(size)
	if len(data) < end {
		return 0, nil
	}
	key, payload := data[head:head+4], data[head+4:end]
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	switch {
	case control:
		if op == opClose {
			if err := checkClose(payload); err != nil {
				return 0, err
			}
		}
	case op == opContinuation:
		r.msg = append(r.msg, payload...)
		if !fin {
			return end, nil
		}
		op, payload = r.msgOp, r.msg
		r.msg, r.msgOp = nil, 0
	case !fin:
		r.msg, r.msgOp = append([]byte(nil), payload...), op
		return end, nil
	}
	if !h.onFrame(op, payload) {
		return 0, errStopReading
	}
	return end, nil
}

// checkClose checks a close frame's payload: empty, or a code a peer may
// send and a UTF-8 reason (RFC 6455 §5.5.1, §7.4).
func checkClose(payload []byte) error {
	switch {
	case len(payload) == 0:
		return nil
	case len(payload) == 1:
		return protoErr("close frame payload of one byte")
	}
	code := int(binary.BigEndian.Uint16(payload))
	if !validCloseCode(code) {
		return protoErr(fmt.Sprintf("invalid close code %d", code))
	}
	if !utf8.Valid(payload[2:]) {
		return &protocolError{code: websocket.CloseInvalidFramePayloadData, reason: "close reason is not valid UTF-8"}
	}
	return nil
}

// validCloseCode reports whether a peer may send code in a close frame:
// the registered codes that are not reserved for local use (1004-1006,
// 1015), and 3000–4999.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closePayloadCode is the code of a close frame's payload checked by
// checkClose; 1005 (no status) for an empty one.
func closePayloadCode(payload []byte) int {
	if len(payload) < 2 {
		return websocket.CloseNoStatusReceived
	}
	return int(binary.BigEndian.Uint16(payload))
}
