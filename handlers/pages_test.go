package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/presencehq/presence/handlers"
)

var formHeader = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

func TestLogin(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")

	t.Run("OK", func(t *testing.T) {
		b := browser(t)
		code, _ := do(t, b, "POST", ts.URL+"/login", "username=alice&password=password1", formHeader)
		if code != http.StatusSeeOther {
			t.Fatalf("login = %d, want 303", code)
		}
		u, _ := url.Parse(ts.URL)
		cs := b.Jar.Cookies(u)
		if len(cs) != 1 || cs[0].Name != "presence_session" {
			t.Fatalf("cookies = %v", cs)
		}
		_, body := do(t, b, "GET", ts.URL+"/", "", nil)
		if !strings.Contains(body, `data-testid="greeting"`) || !strings.Contains(body, "alice") {
			t.Fatalf("home after login lacks the greeting: %s", body)
		}
	})
	t.Run("ErrWrongPassword", func(t *testing.T) {
		code, body := do(t, browser(t), "POST", ts.URL+"/login", "username=alice&password=nope-nope", formHeader)
		if code != 401 || !strings.Contains(body, "Invalid username or password") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("ErrCrossOrigin", func(t *testing.T) {
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}
		code, _ := do(t, browser(t), "POST", ts.URL+"/login", "username=alice&password=password1", h)
		if code != 403 {
			t.Fatalf("cross-origin login = %d, want 403", code)
		}
	})
	t.Run("CookieHeaders", func(t *testing.T) {
		req, _ := http.NewRequest("POST", ts.URL+"/login", strings.NewReader("username=alice&password=password1"))
		req.Header = formHeader.Clone()
		resp, err := browser(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		sc := resp.Header.Get("Set-Cookie")
		if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") || strings.Contains(sc, "Secure") {
			t.Fatalf("Set-Cookie = %q", sc)
		}
	})
}

// TestSessionRotationAndLogout: a login replaces the session, and logout
// makes a stolen copy of the cookie useless.
func TestSessionRotationAndLogout(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	u, _ := url.Parse(ts.URL)
	b := browser(t)
	do(t, b, "POST", ts.URL+"/login", "username=alice&password=password1", formHeader)
	first := b.Jar.Cookies(u)[0].Value
	do(t, b, "POST", ts.URL+"/login", "username=alice&password=password1", formHeader)
	second := b.Jar.Cookies(u)[0].Value
	if first == second {
		t.Fatal("session not rotated at login")
	}
	asCookie := func(v string) int {
		code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", http.Header{"Cookie": {"presence_session=" + v}})
		return code
	}
	if asCookie(first) != 401 {
		t.Fatal("pre-rotation cookie still works")
	}
	if asCookie(second) != 200 {
		t.Fatal("current cookie refused")
	}
	if code, _ := do(t, b, "POST", ts.URL+"/logout", "", nil); code != http.StatusSeeOther {
		t.Fatalf("logout = %d", code)
	}
	if asCookie(second) != 401 {
		t.Fatal("stolen cookie works after logout")
	}
	if len(b.Jar.Cookies(u)) != 0 {
		t.Fatal("logout left the cookie in the browser")
	}
}

func TestRegisterPage(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	t.Run("OK", func(t *testing.T) {
		b := browser(t)
		code, _ := do(t, b, "POST", ts.URL+"/register", "username=newbie&password=password1", formHeader)
		if code != http.StatusSeeOther {
			t.Fatalf("register = %d", code)
		}
		_, body := do(t, b, "GET", ts.URL+"/", "", nil)
		if !strings.Contains(body, "newbie") {
			t.Fatal("not signed in after registering")
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		code, body := do(t, browser(t), "POST", ts.URL+"/register", "username=%3Cscript%3E&password=password1", formHeader)
		if code != 400 || !strings.Contains(body, "only letters") || strings.Contains(body, "<script>") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("ErrTaken", func(t *testing.T) {
		code, body := do(t, browser(t), "POST", ts.URL+"/register", "username=NEWBIE&password=password1", formHeader)
		if code != 409 || !strings.Contains(body, "already exists") {
			t.Fatalf("%d %s", code, body)
		}
	})
}

func TestErrorPages(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	code, body := do(t, nil, "GET", ts.URL+"/no/such/page", "", nil)
	if code != 404 || !strings.Contains(body, `data-testid="error-status"`) {
		t.Fatalf("%d %s", code, body)
	}
	code, body = do(t, nil, "GET", ts.URL+"/api/nope/", "", nil)
	if code != 404 || !strings.Contains(body, `"detail"`) {
		t.Fatalf("%d %s", code, body)
	}
}

func TestStatic(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	for _, name := range []string{"app.css", "htmx.min.js", "sse.min.js", "presence.js"} {
		resp, err := http.Get(ts.URL + "/static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || etag == "" {
			t.Fatalf("%s: %d etag=%q", name, resp.StatusCode, etag)
		}
		if code, _ := do(t, nil, "GET", ts.URL+"/static/"+name, "", http.Header{"If-None-Match": {etag}}); code != 304 {
			t.Fatalf("%s revalidation: %d, want 304", name, code)
		}
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/static/embed.go", "", nil); code != 404 {
		t.Fatalf("source file served: %d", code)
	}
}

// signedIn returns a browser signed in as name.
func signedIn(tb testing.TB, ts *testServer, name string) *http.Client {
	tb.Helper()
	b := browser(tb)
	if code, _ := do(tb, b, "POST", ts.URL+"/login", "username="+name+"&password=password1", formHeader); code != http.StatusSeeOther {
		tb.Fatalf("login %s: %d", name, code)
	}
	return b
}

func TestOnlinePage(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tokA := ts.MustCreateUser(t, "alice")
	ts.MustDial(t, tokA)
	for i := range 50 {
		_, tok := ts.MustCreateUser(t, fmt.Sprintf("user%02d", i))
		ts.MustDial(t, tok)
	}
	eventually(t, "51 online", func() bool { n, _ := ts.Engine.Counts(); return n == 51 })
	b := signedIn(t, ts, "alice")

	code, body := do(t, b, "GET", ts.URL+"/online", "", nil)
	doc := mustDoc(t, body)
	if code != 200 || doc.Find(`[data-testid="online-total"]`).Text() == "" || !strings.Contains(doc.Find(`[data-testid="online-total"]`).Text(), "51 users online") {
		t.Fatalf("%d total=%q", code, doc.Find(`[data-testid="online-total"]`).Text())
	}
	if n := doc.Find(`[data-testid="online-user"]`).Length(); n != 48 {
		t.Fatalf("page 1 lists %d users, want 48", n)
	}
	if !strings.Contains(doc.Find(`[data-testid="online-user"]`).First().Text(), "(you)") {
		t.Fatal("alice is not marked as you")
	}
	_, body = do(t, b, "GET", ts.URL+"/online?page=2", "", nil)
	if n := mustDoc(t, body).Find(`[data-testid="online-user"]`).Length(); n != 3 {
		t.Fatalf("page 2 lists %d users, want 3", n)
	}
	for _, bad := range []string{"?page=0", "?page=x", "?page=9"} {
		if code, _ := do(t, b, "GET", ts.URL+"/online"+bad, "", nil); code != 400 && code != 404 {
			t.Fatalf("%s: %d", bad, code)
		}
	}
	if code, _ := do(t, browser(t), "GET", ts.URL+"/online", "", nil); code != http.StatusSeeOther {
		t.Fatalf("signed out: %d, want a redirect to login", code)
	}
}

func TestProfilePage(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	bob, tokB := ts.MustCreateUser(t, "bob")
	b := signedIn(t, ts, "alice")
	presenceText := func() string {
		code, body := do(t, b, "GET", ts.URL+"/users/BOB", "", nil)
		if code != 200 {
			t.Fatalf("profile: %d", code)
		}
		return strings.TrimSpace(mustDoc(t, body).Find(`[data-testid="profile-presence"]`).Text())
	}
	if got := presenceText(); got != "Never seen online" {
		t.Fatalf("before any visit: %q", got)
	}
	c := ts.MustDial(t, tokB)
	eventually(t, "bob online", func() bool { return ts.Engine.IsOnline(bob.ID) })
	if got := presenceText(); got != "Online now" {
		t.Fatalf("while connected: %q", got)
	}
	c.conn.Close()
	eventually(t, "bob's socket closed", func() bool { _, n := ts.Engine.Counts(); return n == 0 })
	ts.Clock.Advance(testGrace)
	ts.Batcher.Flush(ctx)
	if got := presenceText(); !strings.HasPrefix(got, "Last seen") {
		t.Fatalf("after leaving: %q", got)
	}
	if code, _ := do(t, b, "GET", ts.URL+"/users/nobody", "", nil); code != 404 {
		t.Fatalf("unknown user: %d", code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{AllowedOrigins: []string{"https://partner.example"}})
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/login")
	csp := resp.Header.Get("Content-Security-Policy")
	nonce := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(csp[strings.Index(csp, "'nonce-"):])[0], "'nonce-"), "'")
	if nonce == "" || !strings.Contains(csp, "'strict-dynamic'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP = %q", csp)
	}
	scripts := mustDoc(t, body).Find("script")
	if scripts.Length() == 0 {
		t.Fatal("no scripts on the page")
	}
	scripts.Each(func(_ int, s *goquery.Selection) {
		if s.AttrOr("nonce", "") != nonce {
			t.Errorf("script %s lacks the request's nonce", s.AttrOr("src", "inline"))
		}
	})
	if strings.Contains(body, " style=") {
		t.Error("inline style attribute on a page under style-src 'self'")
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "strict-origin-when-cross-origin"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	resp2, _ := get("/login")
	if strings.Contains(resp2.Header.Get("Content-Security-Policy"), nonce) {
		t.Error("nonce reused across requests")
	}
	// Only the widget may be framed, and only by allow-listed origins.
	resp, _ = get("/widgets/online-users")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors https://partner.example") || resp.Header.Get("X-Frame-Options") != "" {
		t.Fatalf("widget framing: CSP %q, XFO %q", csp, resp.Header.Get("X-Frame-Options"))
	}
}
