package handlers

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

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
	cl := &wsClient{pc: pc}
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

// FuzzWidgetOptions: any query gives either a clear 400 or options within
// their documented bounds.
func FuzzWidgetOptions(f *testing.F) {
	f.Add("8", "Online Users", "mt-4")
	f.Add("0", "", "")
	f.Add("25", strings.Repeat("t", 81), `x" onload="y`)
	f.Add("-1", "<script>", "a\nb")
	f.Add("9999999999999999999", "\xff", "`")
	e := echo.New()
	f.Fuzz(func(t *testing.T, max, title, class string) {
		q := url.Values{"max": {max}, "title": {title}, "class": {class}}
		c := e.NewContext(httptest.NewRequest("GET", "/widgets/online-users?"+q.Encode(), nil), httptest.NewRecorder())
		o, err := widgetOptions(c, "http://x")
		if err != nil {
			return // refused with a message: fine
		}
		if o.Max < 1 || o.Max > maxWidgetMax {
			t.Fatalf("max %d accepted", o.Max)
		}
		if !utf8.ValidString(o.Title) || utf8.RuneCountInString(o.Title) > maxWidgetTitle || o.Title == "" {
			t.Fatalf("title %q accepted", o.Title)
		}
		if len(o.Class) > maxWidgetClass || strings.ContainsAny(o.Class, "\"'<>`=\\") {
			t.Fatalf("class %q accepted", o.Class)
		}
	})
}
