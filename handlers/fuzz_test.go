package handlers

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

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
