package handlers_test

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/presencehq/presence/handlers"
)

const embedHost = "https://app.example.com"

// TestEmbedScript: /embed.js comes from the binary, cacheable for a short
// while, revalidated by ETag, loadable from any origin.
func TestEmbedScript(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	resp, err := http.Get(ts.URL + "/embed.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") ||
		h.Get("Cache-Control") != "public, max-age=300" || h.Get("Access-Control-Allow-Origin") != "*" ||
		h.Get("Cross-Origin-Resource-Policy") != "cross-origin" || h.Get("ETag") == "" {
		t.Fatalf("%d %v", resp.StatusCode, h)
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/embed.js", "", http.Header{"If-None-Match": {h.Get("ETag")}}); code != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", code)
	}
	code, body := do(t, nil, "GET", ts.URL+"/embed.js", "", nil)
	if code != 200 || !strings.Contains(body, "/static/embed.css") || !strings.Contains(body, "/widgets/online-users") {
		t.Fatalf("%d %.200s", code, body)
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/static/embed.css", "", nil); code != 200 {
		t.Fatalf("embed.css: %d", code)
	}
}

// TestWidgetHostToken: a host JWT in ?token= opens the widget (the stream
// URL cannot carry a header), carries on to its list and stream URLs,
// hides the viewer by their host id, and gets CORS only on an allowed
// origin.
func TestWidgetHostToken(t *testing.T) {
	ts := hostServer(t, handlers.Config{AllowedOrigins: []string{embedHost}})
	tok := simpleJWT(t, t0, "3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b", nil)
	u := ts.URL + "/widgets/online-users?token=" + url.QueryEscape(tok)

	resp := get(t, u, http.Header{"Origin": {embedHost}})
	w := mustDoc(t, resp.body).Find(`[data-testid="online-users-widget"]`)
	if resp.code != 200 || w.AttrOr("data-viewer-id", "") != "3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b" {
		t.Fatalf("%d viewer=%q", resp.code, w.AttrOr("data-viewer-id", ""))
	}
	if !strings.HasSuffix(w.AttrOr("sse-connect", ""), "/stream?token="+url.QueryEscape(tok)) ||
		!strings.HasSuffix(w.Find(`[data-testid="widget-body"]`).AttrOr("hx-get", ""), "/list?token="+url.QueryEscape(tok)) {
		t.Fatalf("the token is not carried on: %s", resp.body)
	}
	if resp.header.Get("Access-Control-Allow-Origin") != embedHost {
		t.Fatalf("allowed origin: no CORS (%v)", resp.header)
	}
	if r := get(t, u, http.Header{"Origin": {"https://evil.example"}}); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS for an origin not allowed")
	}
	for _, q := range []string{"?token=not.a.jwt", "?token=" + url.QueryEscape(simpleJWT(t, t0, 5, map[string]any{"token_type": "refresh"}))} {
		if r := get(t, ts.URL+"/widgets/online-users/list"+q, nil); r.code != 401 {
			t.Fatalf("%s: %d", q, r.code)
		}
	}
	if r := get(t, ts.URL+"/widgets/online-users/list?token="+url.QueryEscape(tok), nil); r.code != 200 {
		t.Fatalf("list: %d", r.code)
	}
}

// TestWidgetIDSpaces: host user 1 and local account 1 (the same name, the
// same number) are both online; the widget's list tells them apart by id
// ("1", "local:1") and links each to its own profile, and the host user's
// own widget hides only them.
func TestWidgetIDSpaces(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	local, localTok := ts.MustCreateUser(t, "bob")
	if local.ID != 1 {
		t.Fatalf("local bob has id %d, want 1 for the collision", local.ID)
	}
	ts.MustDial(t, localTok)
	hostTok := simpleJWT(t, t0, 1, map[string]any{"username": "bob"})
	ts.MustDial(t, hostTok)
	uuidTok := simpleJWT(t, t0, "3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b", map[string]any{"username": "alice"})
	ts.MustDial(t, uuidTok)

	var tiles []string
	eventually(t, "three tiles", func() bool {
		ts.Clock.Advance(20 * time.Millisecond) // the feed's coalescing window
		r := get(t, ts.URL+"/widgets/online-users/list?token="+url.QueryEscape(hostTok), nil)
		tiles = nil
		mustDoc(t, r.body).Find(`[data-testid="widget-user"]`).Each(func(_ int, s *goquery.Selection) {
			tiles = append(tiles, s.AttrOr("data-user-id", "")+" "+s.Find("a").AttrOr("href", "")+" "+s.Find(`[data-testid="widget-username"]`).Text())
		})
		sort.Strings(tiles)
		return len(tiles) == 3
	})
	want := []string{
		"1 /host/users/1 bob",
		"3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b /host/users/3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b alice",
		"local:1 /users/bob bob",
	}
	if strings.Join(tiles, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tiles:\n%s\nwant:\n%s", strings.Join(tiles, "\n"), strings.Join(want, "\n"))
	}
	// A host id posing as a local account is refused, by token and by the
	// server API.
	if r := get(t, ts.URL+"/widgets/online-users?token="+url.QueryEscape(simpleJWT(t, t0, "local:1", nil)), nil); r.code != 401 {
		t.Fatalf("host id local:1: %d, want 401", r.code)
	}
	if code, body := do(t, nil, "PUT", ts.URL+"/api/server/users/local:1/", `{"username":"mallory"}`,
		http.Header{"Authorization": {"Bearer " + ts.serverKey(t)}, "Content-Type": {"application/json"}}); code != 400 {
		t.Fatalf("server API, id local:1: %d %s, want 400", code, body)
	}
	r := get(t, ts.URL+"/widgets/online-users?token="+url.QueryEscape(hostTok), nil)
	if v := mustDoc(t, r.body).Find(`[data-presence-widget]`).AttrOr("data-viewer-id", ""); v != "1" {
		t.Fatalf("host bob's widget hides %q, want \"1\" (not local:1)", v)
	}
	r = get(t, ts.URL+"/widgets/online-users?token="+url.QueryEscape(localTok), nil)
	if v := mustDoc(t, r.body).Find(`[data-presence-widget]`).AttrOr("data-viewer-id", ""); v != "local:1" {
		t.Fatalf("local bob's widget hides %q, want \"local:1\"", v)
	}
}

// TestHostProfilePage: a host user's profile is found by host id at
// /host/users/{id} (escaped), never by name at /users/{name}, where the
// local account of that name is.
func TestHostProfilePage(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	ts.MustCreateUser(t, "bob")
	ts.MustCreateUser(t, "viewer")
	ts.MustDial(t, simpleJWT(t, t0, "team/7?x", map[string]any{"username": "carol"}))
	ts.MustDial(t, simpleJWT(t, t0, 1, map[string]any{"username": "bob"}))
	b := signedIn(t, ts, "viewer")
	for path, want := range map[string]string{
		"/host/users/" + url.PathEscape("team/7?x"): "carol",
		"/host/users/1": "bob",
		"/users/bob":    "bob",
	} {
		code, body := do(t, b, "GET", ts.URL+path, "", nil)
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("%s: %d", path, code)
		}
	}
	code, body := do(t, b, "GET", ts.URL+"/host/users/1", "", nil)
	if code != 200 || !strings.Contains(body, "online") {
		t.Fatalf("host bob's page: %d", code)
	}
	// The local bob's page is not the host bob's: the local one is offline.
	for path, want := range map[string]int{
		"/users/carol":            404, // a host user's name is not a local profile
		"/users/@host:1":          404, // nor their internal key
		"/host/users/404":         404,
		"/host/users/" + "viewer": 404, // a local account is not a host user
	} {
		if code, _ := do(t, b, "GET", ts.URL+path, "", nil); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
}

// TestEmbedFrame: the iframe variant is a whole page that allowed origins
// (only) may frame; a host token keeps the viewer online from it unless
// ?keepalive=0; an embed token only shows.
func TestEmbedFrame(t *testing.T) {
	ts := hostServer(t, handlers.Config{AllowedOrigins: []string{embedHost}})
	tok := simpleJWT(t, t0, 42, map[string]any{"username": "ada"})
	r := get(t, ts.URL+"/embed/online-users?max=5&title=Here&token="+url.QueryEscape(tok), nil)
	doc := mustDoc(t, r.body)
	body := doc.Find(`[data-testid="embed-frame"]`)
	if r.code != 200 || body.AttrOr("data-presence-token", "") != tok || doc.Find(`[data-presence-widget]`).AttrOr("data-viewer-id", "") != "42" ||
		doc.Find(`[data-presence-widget]`).AttrOr("data-max", "") != "5" {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if _, ok := body.Attr("data-presence-keepalive"); !ok {
		t.Fatal("no keep-alive")
	}
	if doc.Find(`script[src="/static/embed-frame.js"]`).Length() != 1 {
		t.Fatal("no embed-frame.js")
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors "+embedHost) || r.header.Get("X-Frame-Options") != "" || r.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("headers: %v", r.header)
	}
	r = get(t, ts.URL+"/embed/online-users?keepalive=0&token="+url.QueryEscape(tok), nil)
	if _, ok := mustDoc(t, r.body).Find(`[data-testid="embed-frame"]`).Attr("data-presence-keepalive"); ok {
		t.Fatal("keep-alive despite keepalive=0")
	}
	if r := get(t, ts.URL+"/embed/online-users", nil); r.code != 401 || !strings.Contains(r.body, "Sign in to see who is online.") {
		t.Fatalf("no credentials: %d %s", r.code, r.body)
	}
	if r := get(t, ts.URL+"/embed/online-users?max=99&token="+url.QueryEscape(tok), nil); r.code != 400 {
		t.Fatalf("bad max: %d", r.code)
	}
	// Without an allow-list nobody may frame it.
	plain := hostServer(t, handlers.Config{})
	r = get(t, plain.URL+"/embed/online-users?token="+url.QueryEscape(tok), nil)
	if !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("framable without an allow-list: %v", r.header)
	}
}

type response struct {
	code   int
	header http.Header
	body   string
}

func get(tb testing.TB, u string, h http.Header) response {
	tb.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return response{resp.StatusCode, resp.Header, b.String()}
}
