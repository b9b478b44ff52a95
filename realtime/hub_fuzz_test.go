package realtime

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
)

// FuzzWSMessage: whatever a client sends, the handler answers with one
// JSON object of a known type and never panics; an exact ping is a pong.
func FuzzWSMessage(f *testing.F) {
	for _, s := range []string{`{"type":"ping"}`, `{"type": "ping"}`, `{"type":`, `[]`, `{}`, `null`,
		`{"type":"subscribe"}`, `{"type":1}`, `{"type":"ping","extra":[1,2,{"a":null}]}`, "\"\xff\"", strings.Repeat("[", 1000)} {
		f.Add([]byte(s))
	}
	e := presence.New(presence.Config{Deadline: -1})
	defer e.Close()
	pc, _ := e.Connect(presence.User{ID: 1, Username: "fuzz"}, nil)
	cl := &wsClient{pc: pc, hub: &Hub{engine: e}}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := cl.handle(data)
		var m struct{ Type, Detail string }
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("reply %q is not JSON: %v", out, err)
		}
		switch m.Type {
		case "pong":
		case "error":
			if m.Detail == "" {
				t.Fatalf("error without detail: %q", out)
			}
		default:
			t.Fatalf("reply type %q for %q", m.Type, data)
		}
		if string(data) == `{"type":"ping"}` && m.Type != "pong" {
			t.Fatal("exact ping not answered with pong")
		}
	})
}

// BenchmarkStatusMessage encodes one user.status.changed frame payload.
func BenchmarkStatusMessage(b *testing.B) {
	ev := presence.Event{UserID: 42, Username: "alice", Online: true, LastSeen: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		statusMessage(ev)
	}
}
