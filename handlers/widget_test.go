package handlers_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

func mustDoc(tb testing.TB, body string) *goquery.Document {
	tb.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

func TestWidget(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")

	t.Run("OK", func(t *testing.T) {
		code, body := do(t, nil, "GET", ts.URL+"/widgets/online-users?max=3&title=Team&class=mt-2", "", bearer(tokA))
		w := mustDoc(t, body).Find(`[data-testid="online-users-widget"]`)
		if code != 200 || w.Length() != 1 {
			t.Fatalf("%d %s", code, body)
		}
		if w.AttrOr("data-max", "") != "3" || w.AttrOr("data-viewer-id", "") != itoa(alice.ID) || !w.HasClass("mt-2") {
			t.Fatalf("widget attrs: %s", body)
		}
		if got := w.AttrOr("sse-connect", ""); got != ts.URL+"/widgets/online-users/stream" {
			t.Fatalf("sse-connect = %q", got)
		}
	})
	t.Run("Defaults", func(t *testing.T) {
		_, body := do(t, nil, "GET", ts.URL+"/widgets/online-users", "", bearer(tokA))
		doc := mustDoc(t, body)
		if doc.Find(`[data-max="8"]`).Length() != 1 || doc.Find(`[data-testid="widget-title"]`).Text() != "Online Users" {
			t.Fatalf("defaults: %s", body)
		}
	})
	for name, query := range map[string]string{
		"ErrMaxZero":   "max=0",
		"ErrMaxBig":    "max=25",
		"ErrMaxText":   "max=lots",
		"ErrClass":     "class=" + url.QueryEscape(`x" onmouseover="alert(1)`),
		"ErrLongTitle": "title=" + strings.Repeat("t", 81),
	} {
		t.Run(name, func(t *testing.T) {
			code, body := do(t, nil, "GET", ts.URL+"/widgets/online-users?"+query, "", bearer(tokA))
			frag := mustDoc(t, body).Find(`[data-testid="widget-error-fragment"]`)
			if code != 400 || frag.Length() != 1 || strings.Contains(body, "<html") {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	t.Run("ErrNoAuth", func(t *testing.T) {
		for _, path := range []string{"", "/list", "/stream"} {
			code, body := do(t, nil, "GET", ts.URL+"/widgets/online-users"+path, "", nil)
			if code != 401 || !strings.Contains(body, `data-status="401"`) {
				t.Fatalf("%s: %d %s", path, code, body)
			}
		}
	})
	t.Run("EmbedToken", func(t *testing.T) {
		embed, _ := ts.DB.CreateToken(ctx, alice.ID, store.TokenEmbed, 0)
		code, body := do(t, nil, "GET", ts.URL+"/widgets/online-users?embed_token="+embed, "", nil)
		w := mustDoc(t, body).Find(`[data-testid="online-users-widget"]`)
		if code != 200 || w.AttrOr("data-viewer-id", "") != "" {
			t.Fatalf("%d %s", code, body)
		}
		if !strings.HasSuffix(w.AttrOr("sse-connect", ""), "/stream?embed_token="+embed) {
			t.Fatalf("stream URL lacks the embed token: %s", w.AttrOr("sse-connect", ""))
		}
		if code, _ := do(t, nil, "GET", ts.URL+"/widgets/online-users/list?embed_token="+embed, "", nil); code != 200 {
			t.Fatalf("list with embed token: %d", code)
		}
		// Read-only: it opens nothing else.
		if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(embed)); code != 401 {
			t.Fatalf("embed token accepted by the API: %d", code)
		}
		if code, _ := do(t, nil, "GET", ts.URL+"/widgets/online-users?embed_token=prs_forged", "", nil); code != 401 {
			t.Fatalf("forged embed token: %d", code)
		}
	})
}

func TestWidgetCORS(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{AllowedOrigins: []string{"https://host.example"}})
	_, tok := ts.MustCreateUser(t, "alice")
	t.Run("AllowListed", func(t *testing.T) {
		req, _ := http.NewRequest("GET", ts.URL+"/widgets/online-users", nil)
		req.Header.Set("Origin", "https://host.example")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://host.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("headers = %v", resp.Header)
		}
	})
	t.Run("Preflight", func(t *testing.T) {
		req, _ := http.NewRequest("OPTIONS", ts.URL+"/widgets/online-users/list", nil)
		req.Header.Set("Origin", "https://host.example")
		req.Header.Set("Access-Control-Request-Headers", "hx-request")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "HX-Request") {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("EmbedTokenAnyOrigin", func(t *testing.T) {
		u, _ := ts.DB.UserByName(ctx, "alice")
		embed, _ := ts.DB.CreateToken(ctx, u.ID, store.TokenEmbed, 0)
		for _, method := range []string{"OPTIONS", "GET"} {
			req, _ := http.NewRequest(method, ts.URL+"/widgets/online-users/list?embed_token="+embed, nil)
			req.Header.Set("Origin", "https://blog.elsewhere.example")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 || resp.Header.Get("Access-Control-Allow-Origin") != "https://blog.elsewhere.example" {
				t.Fatalf("%s: %d %v", method, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("ErrOtherOrigin", func(t *testing.T) {
		req, _ := http.NewRequest("GET", ts.URL+"/widgets/online-users", nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("CORS granted to a foreign origin")
		}
	})
}

// sseClient reads a real event stream.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
	clock  *presence.FakeClock // the server's: it times the feed's coalescing window
}

type sseEvent struct{ name, data, comment, retry string }

func (ts *testServer) MustStream(tb testing.TB, token string) *sseClient {
	tb.Helper()
	req, _ := http.NewRequest("GET", ts.URL+"/widgets/online-users/stream?stream=attacker-chosen", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Last-Event-ID", "not-a-number")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		tb.Fatalf("stream: %s %v", resp.Status, resp.Header)
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 64), clock: ts.Clock}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				c.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if ev.data != "" {
					ev.data += "\n"
				}
				ev.data += strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, ": "):
				ev.comment = strings.TrimPrefix(line, ": ")
			case strings.HasPrefix(line, "retry: "):
				ev.retry = strings.TrimPrefix(line, "retry: ")
			}
		}
	}()
	tb.Cleanup(func() { resp.Body.Close() })
	return c
}

// nextFragment waits for the next presence event.
func (c *sseClient) nextFragment(tb testing.TB) string {
	tb.Helper()
	return nextNamed(tb, c, "presence").data
}

func TestWidgetStream(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{SSEKeepAlive: 20 * time.Millisecond})
	_, tokA := ts.MustCreateUser(t, "alice")
	bob, tokB := ts.MustCreateUser(t, "bob")
	streams := []*sseClient{ts.MustStream(t, tokA), ts.MustStream(t, tokA), ts.MustStream(t, tokB)}
	eventually(t, "three subscribers", func() bool { return metricValue(t, ts, "presence_sse_subscribers") == 3 })

	t.Run("JitteredRetry", func(t *testing.T) {
		// Each stream opens with its own reconnect delay in [1 s, 4 s), so
		// browsers do not all come back at once after a restart.
		seen := map[string]bool{}
		for _, c := range append(streams, ts.MustStream(t, tokB), ts.MustStream(t, tokB), ts.MustStream(t, tokB)) {
			ev := <-c.events
			ms, err := strconv.Atoi(ev.retry)
			if err != nil || ms < 1000 || ms >= 4000 {
				t.Fatalf("first event %+v: want a retry in [1000, 4000) ms", ev)
			}
			seen[ev.retry] = true
		}
		if len(seen) < 2 {
			t.Fatalf("6 streams all announced retry %v", seen)
		}
	})

	t.Run("KeepAlive", func(t *testing.T) {
		// Keep-alives run on the server's clock: move it past the interval
		// until one arrives.
		timeout := time.After(5 * time.Second)
		for {
			ts.Clock.Advance(20 * time.Millisecond)
			select {
			case ev, ok := <-streams[0].events:
				if !ok {
					t.Fatal("stream ended without a keep-alive")
				}
				if ev.comment == "keep-alive" {
					return
				}
			case <-time.After(10 * time.Millisecond):
			case <-timeout:
				t.Fatal("no keep-alive after the interval passed")
			}
		}
	})

	t.Run("OneRenderPerChange", func(t *testing.T) {
		renders := metricValue(t, ts, "presence_widget_renders_total")
		ts.MustDial(t, tokB)
		var evs []sseEvent
		for _, s := range streams {
			evs = append(evs, nextNamed(t, s, "presence", "presence-delta"))
		}
		for _, ev := range evs {
			if ev != evs[0] {
				t.Fatal("subscribers got different bytes")
			}
		}
		doc := mustDoc(t, evs[0].data)
		if doc.Find(`[data-user-id="`+itoa(bob.ID)+`"]`).Length() == 0 || doc.Find(`[data-testid="widget-count"]`).Text() != "1 online" {
			t.Fatalf("%s = %s", evs[0].name, evs[0].data)
		}
		if n := metricValue(t, ts, "presence_widget_renders_total") - renders; n != 1 {
			t.Fatalf("one change cost %v renders for 3 subscribers, want 1", n)
		}
		// A widget that (re)connects fetches the whole list at the version
		// the stream moved to: a resync.
		code, list := do(t, nil, "GET", ts.URL+"/widgets/online-users/list", "", bearer(tokA))
		ld := mustDoc(t, list)
		want, _ := doc.Find(`[data-presence-to]`).Attr("data-presence-to")
		if evs[0].name == "presence" {
			want = doc.Find(`[data-presence-grid]`).AttrOr("data-presence-version", "?")
		}
		if code != 200 || ld.Find(`[data-user-id="`+itoa(bob.ID)+`"]`).Length() != 1 || ld.Find(`[data-presence-grid]`).AttrOr("data-presence-version", "") != want {
			t.Fatalf("list is not the state the stream moved to (%s): %d %s", want, code, list)
		}
	})

	t.Run("CountOnlyOrDelta", func(t *testing.T) {
		// Fill the widget's shown slots with names that sort first.
		for i := range 26 {
			_, tok := ts.MustCreateUser(t, fmt.Sprintf("aa%02d", i))
			ts.MustDial(t, tok)
		}
		// Barrier: the stream has shown all 27; nothing more is pushed
		// until something changes.
		awaitTotal(t, streams[0], 27)
		list := func() *goquery.Document {
			_, body := do(t, nil, "GET", ts.URL+"/widgets/online-users/list", "", bearer(tokA))
			return mustDoc(t, body)
		}
		counted := func(d *goquery.Document) (grid, count string) {
			return d.Find(`[data-presence-grid]`).AttrOr("data-presence-version", ""),
				d.Find(`[data-testid="widget-count"]`).AttrOr("data-presence-count-version", "")
		}
		grid27, count27 := counted(list())
		_, tokZ := ts.MustCreateUser(t, "zz-last")
		ts.MustDial(t, tokZ) // sorts after the shown users: only the count changes
		ev := nextNamed(t, streams[0], "presence-count", "presence", "presence-delta")
		if ev.name != "presence-count" || !strings.Contains(ev.data, `data-presence-total="28"`) || len(ev.data) > 250 {
			t.Fatalf("got %s event of %d bytes: %s", ev.name, len(ev.data), ev.data)
		}
		if op := mustDoc(t, ev.data).Find(`[hx-swap-oob]`).AttrOr("hx-swap-oob", ""); op != "innerHTML:[data-presence-shared-count]" {
			t.Fatalf("count event swaps %q, want the shared counts: %s", op, ev.data)
		}
		// The count moved its own version and not the grid's, so a widget
		// can drop a list fetched before it (presence.js).
		evCount := mustDoc(t, ev.data).Find(`[data-testid="widget-count"]`).AttrOr("data-presence-count-version", "")
		grid28, count28 := counted(list())
		if grid28 != grid27 || count28 != evCount || count28 == count27 || !newer(count28, count27) {
			t.Fatalf("before the count event: grid %s, count %s; after: grid %s, count %s; event's count %s", grid27, count27, grid28, count28, evCount)
		}
		before := list()
		version := before.Find(`[data-presence-grid]`).AttrOr("data-presence-version", "")
		lastShown := before.Find(`li[data-user-id]`).Last().AttrOr("data-user-id", "")
		first, tokA0 := ts.MustCreateUser(t, "a-first")
		ts.MustDial(t, tokA0) // sorts first: one tile in, the last shown one out
		ev = nextNamed(t, streams[0], "presence-count", "presence", "presence-delta")
		if ev.name != "presence-delta" || len(ev.data) > 1024 {
			t.Fatalf("got %s event of %d bytes, want a delta of at most 1 KiB: %s", ev.name, len(ev.data), ev.data)
		}
		d := mustDoc(t, ev.data)
		after := list()
		sel := func(op string) string {
			return `[hx-swap-oob^="` + op + `:[data-presence-grid][data-presence-version=` + version + `]"]`
		}
		if d.Find(`[data-presence-from="`+version+`"]`).AttrOr("data-presence-to", "") != after.Find(`[data-presence-grid]`).AttrOr("data-presence-version", "-") ||
			d.Find(sel("delete")).AttrOr("hx-swap-oob", "") != `delete:[data-presence-grid][data-presence-version=`+version+`] li[data-user-id="`+lastShown+`"]` ||
			d.Find(sel("beforebegin")+` li[data-user-id="`+itoa(first.ID)+`"]`).Length() != 1 ||
			d.Find(`[data-testid="widget-count"]`).AttrOr("data-presence-total", "") != "29" {
			t.Fatalf("delta from %s = %s", version, ev.data)
		}
		t.Logf("a list change cost %d bytes of data per viewer; the whole list is %d", len(ev.data), len(ts.MustList(t, tokA)))
	})

	t.Run("ShutdownEndsStreams", func(t *testing.T) {
		if err := ts.Handler.CloseStreams(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range streams {
			for range s.events {
			}
		}
	})
}

// awaitTotal reads c until it shows total online: a barrier after which
// nothing more is pushed until something changes.
func awaitTotal(tb testing.TB, c *sseClient, total int) {
	tb.Helper()
	want := `data-presence-total="` + strconv.Itoa(total) + `"`
	for {
		if ev := nextNamed(tb, c, "presence", "presence-delta", "presence-count"); strings.Contains(ev.data, want) {
			return
		}
	}
}

// MustList fetches the widget's whole shared list.
func (ts *testServer) MustList(tb testing.TB, token string) string {
	tb.Helper()
	code, body := do(tb, nil, "GET", ts.URL+"/widgets/online-users/list", "", bearer(token))
	if code != 200 {
		tb.Fatalf("list: %d %s", code, body)
	}
	return body
}

// feedWindowStep is how far nextNamed moves the server's fake clock when
// no event comes: the feed gathers a burst of changes for one window (on
// that clock) before it pushes them. It moves it by at most
// maxFeedAdvance per call, far below the grace period and the heartbeat
// deadline, so no presence timer fires because of it.
const (
	feedWindowStep = 50 * time.Millisecond
	maxFeedAdvance = 500 * time.Millisecond
)

// nextNamed waits for the next event with one of the names.
func nextNamed(tb testing.TB, c *sseClient, names ...string) sseEvent {
	tb.Helper()
	timeout := time.After(5 * time.Second)
	var advanced time.Duration
	for {
		select {
		case <-time.After(20 * time.Millisecond):
			if c.clock != nil && advanced < maxFeedAdvance {
				c.clock.Advance(feedWindowStep)
				advanced += feedWindowStep
			}
		case ev, ok := <-c.events:
			if !ok {
				tb.Fatal("stream ended")
			}
			for _, n := range names {
				if ev.name == n {
					return ev
				}
			}
		case <-timeout:
			tb.Fatalf("no %v event within 5s", names)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// metricValue reads one value from /metrics.
func metricValue(tb testing.TB, ts *testServer, name string) float64 {
	tb.Helper()
	_, body := do(tb, nil, "GET", ts.URL+"/metrics", "", nil)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	tb.Fatalf("metric %s missing", name)
	return 0
}

// newer reports whether version a ("<epoch>-<n>") is later than b of the
// same epoch, as presence.js compares them.
func newer(a, b string) bool {
	ea, na, _ := strings.Cut(a, "-")
	eb, nb, _ := strings.Cut(b, "-")
	x, errA := strconv.Atoi(na)
	y, errB := strconv.Atoi(nb)
	return ea == eb && errA == nil && errB == nil && x > y
}
