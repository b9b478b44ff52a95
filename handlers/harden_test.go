package handlers_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/store"
)

// browserAccept is what Chromium sends when a page navigates.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

// TestShutdownRetryAfter: a handshake or stream refused because the server
// is shutting down gets 503 with Retry-After, as PROTOCOL.md says.
func TestShutdownRetryAfter(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tok := ts.MustCreateUser(t, "alice")
	if err := ts.Handler.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+tok), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("upgrade after shutdown: %v %v, want 503", err, respStatus(resp))
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Fatalf("503 at shutdown without Retry-After: %v", resp.Header)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/widgets/online-users/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("stream after shutdown: %d Retry-After=%q, want 503 with it", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestJSONErrorsWhateverAccept: /ws/ and /api/ answer errors with
// {"detail": ...} even to a browser that asks for HTML first.
func TestJSONErrorsWhateverAccept(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tok := ts.MustCreateUser(t, "alice")
	h := http.Header{"Accept": {browserAccept}}
	for _, tc := range []struct {
		path string
		code int
		hdr  http.Header
	}{
		{"/ws/user-status/", 401, h},                // no credentials
		{"/ws/user-status/?token=prs_nope", 401, h}, // bad token
		{"/ws/user-status/", 403, http.Header{"Accept": {browserAccept}, "Origin": {"https://evil.example"}}}, // foreign origin
		{"/ws/nothing-here", 404, h},
		{"/api/users/online/", 401, h},
		{"/api/nothing-here/", 404, h},
		{"/ws/user-status/?token=" + tok, 400, http.Header{"Accept": {browserAccept}, "Connection": {"keep-alive"}}}, // not an upgrade
	} {
		req, _ := http.NewRequest("GET", ts.URL+tc.path, nil)
		for k, v := range tc.hdr {
			req.Header[k] = v
		}
		if req.Header.Get("Connection") == "" {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || derr != nil || body["detail"] == nil ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s: %d %s %v %v, want %d with JSON {\"detail\"}", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, derr, tc.code)
		}
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.2, ...): a distinct client address to the server.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// tryLogin asks for a token from client and returns the status and
// Retry-After.
func tryLogin(tb testing.TB, client *http.Client, base, name, password string) (int, string) {
	tb.Helper()
	resp, err := client.Post(base+"/api/auth/token/", "application/json",
		strings.NewReader(`{"username":"`+name+`","password":"`+password+`"}`))
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestLoginLockout: failures count per (account, address), so an attacker
// hammering alice's name from one address is refused while alice, from an
// address with no failures, signs in; a guessing attack spread over many
// addresses still hits the account's global brake. Time is the fake clock.
func TestLoginLockout(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	attacker, owner := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	for i := range 10 {
		if code, _ := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 401 {
			t.Fatalf("attacker attempt %d: %d, want 401", i, code)
		}
	}
	if code, ra := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 429 || ra == "" {
		t.Fatalf("attacker's 11th attempt: %d Retry-After=%q, want 429 with it", code, ra)
	}
	if code, _ := tryLogin(t, attacker, ts.URL, "alice", "password1"); code != 429 {
		t.Fatalf("attacker with the right password while locked: %d, want 429", code)
	}
	// The owner, from her own address, is not locked out; right passwords
	// do not count, however many.
	for i := range 15 {
		if code, _ := tryLogin(t, owner, ts.URL, "ALICE", "password1"); code != 200 {
			t.Fatalf("owner's sign-in %d from a fresh address while alice's name is hammered elsewhere: %d, want 200", i, code)
		}
	}
	// The form login shares the budget: attacker still refused, owner in.
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if code, _ := do(t, attacker, "POST", ts.URL+"/login", "username=alice&password=password1", form); code != 429 {
		t.Fatalf("attacker's form login: %d, want 429", code)
	}
	// A minute later the attacker has one more guess, no more.
	ts.Clock.Advance(time.Minute)
	if code, _ := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 401 {
		t.Fatalf("attacker after a minute: %d, want 401", code)
	}
	if code, _ := tryLogin(t, attacker, ts.URL, "alice", "guess-guess"); code != 429 {
		t.Fatalf("attacker's second guess after a minute: %d, want 429", code)
	}

	// Distributed: ten failures from each of many addresses. The brake
	// stops the attack after at most its burst of failures in all.
	failures, braked := 11, ""
	for i := 10; i < 60 && braked == ""; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		c := clientFrom(ip)
		for range 10 {
			code, ra := tryLogin(t, c, ts.URL, "alice", "guess-guess")
			if code == 429 {
				if ra == "" {
					t.Fatal("429 without Retry-After")
				}
				braked = ip
				break
			}
			if code != 401 {
				t.Fatalf("from %s: %d", ip, code)
			}
			failures++
		}
	}
	if braked == "" {
		t.Fatalf("%d failures from 50 addresses and no brake", failures)
	}
	if failures > 210 {
		t.Fatalf("the brake let %d failures through", failures)
	}
	t.Logf("global brake after %d failures in all, at %s", failures, braked)
	// Another account is not affected.
	ts.MustCreateUser(t, "bob")
	if code, _ := tryLogin(t, clientFrom(braked), ts.URL, "bob", "password1"); code != 200 {
		t.Fatalf("bob from the braked address: %d, want 200", code)
	}
	// The brake refills: an hour on, alice signs in from a fresh address.
	ts.Clock.Advance(time.Hour)
	if code, _ := tryLogin(t, clientFrom("127.0.0.99"), ts.URL, "alice", "password1"); code != 200 {
		t.Fatalf("alice an hour later: %d, want 200", code)
	}
}

// tlsProxy is a TLS-terminating reverse proxy (httputil.ReverseProxy) in
// front of backend that rewrites Host to the backend's and sets
// X-Forwarded-For, -Host and -Proto, as nginx or Caddy would.
func tlsProxy(tb testing.TB, backend string) *httptest.Server {
	tb.Helper()
	target, _ := url.Parse(backend)
	p := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target) // Host becomes the backend's
		pr.SetXForwarded()
	}})
	tb.Cleanup(p.Close)
	return p
}

// proxyClient is a browser-like client (cookie jar, no redirects) of the
// TLS proxy whose connections come from the loopback address ip.
func proxyClient(proxy *httptest.Server, ip string) *http.Client {
	tr := proxy.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestTrustedProxies puts a real reverse proxy in front, rewriting Host and
// terminating TLS, with --trusted-proxies naming it: clients behind it are
// told apart by X-Forwarded-For, so one client's failed logins do not lock
// out another; sign-in from an old browser (Origin, no Sec-Fetch-Site) and
// the WebSocket pass their origin checks against X-Forwarded-Host; the
// session cookie is Secure; the widget links to the public https origin.
// A client reaching the server directly cannot forge any of it.
func TestTrustedProxies(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{TrustedProxies: []string{"127.0.0.1/32"}, LoginPerMinute: 5})
	ts.MustCreateUser(t, "alice")
	proxy := tlsProxy(t, ts.URL)
	public := proxy.URL // https://127.0.0.1:PORT, what the browser sees
	clientA, clientB := proxyClient(proxy, "127.0.0.2"), proxyClient(proxy, "127.0.0.3")

	// Client A spends its address's 5 checks a minute; B is not affected.
	for i := range 5 {
		if code, _ := tryLogin(t, clientA, public, fmt.Sprintf("nobody%d", i), "guess-guess"); code != 401 {
			t.Fatalf("A's attempt %d: %d, want 401", i, code)
		}
	}
	if code, _ := tryLogin(t, clientA, public, "alice", "password1"); code != 429 {
		t.Fatalf("A's 6th check: %d, want 429", code)
	}
	if code, _ := tryLogin(t, clientB, public, "alice", "password1"); code != 200 {
		t.Fatalf("B through the same proxy after A's failures: %d, want 200 (B has its own address)", code)
	}

	// Sign-in by form from a browser that sends Origin but not
	// Sec-Fetch-Site: checked against X-Forwarded-Host.
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {public}}
	code, body := do(t, clientB, "POST", public+"/login", "username=alice&password=password1", form)
	if code != 303 {
		t.Fatalf("form sign-in through the proxy: %d %s, want 303", code, body)
	}
	pu, _ := url.Parse(public)
	var session *http.Cookie
	for _, c := range clientB.Jar.Cookies(pu) {
		if c.Name == "presence_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie after sign-in")
	}
	if !strings.Contains(lastSetCookie(t, clientB, public, form), "Secure") {
		t.Fatal("session cookie over https (via the proxy) is not Secure")
	}

	// The WebSocket through the proxy, with the browser's Origin and cookie.
	dialer := websocket.Dialer{
		TLSClientConfig: clientB.Transport.(*http.Transport).TLSClientConfig,
		NetDialContext:  clientB.Transport.(*http.Transport).DialContext,
		Jar:             clientB.Jar,
	}
	conn, resp, err := dialer.Dial("wss"+strings.TrimPrefix(public, "https")+"/ws/user-status/", http.Header{"Origin": {public}})
	if err != nil {
		t.Fatalf("WebSocket through the proxy: %v %v", err, respStatus(resp))
	}
	var ack map[string]any
	if err := conn.ReadJSON(&ack); err != nil || ack["type"] != "connection.ack" {
		t.Fatalf("ack through the proxy: %v %v", ack, err)
	}
	conn.Close()

	// The widget names the public origin, not the backend's.
	code, body = do(t, clientB, "GET", public+"/widgets/online-users", "", nil)
	if code != 200 || !strings.Contains(body, public+"/widgets/online-users/stream") {
		t.Fatalf("widget through the proxy: %d, want its stream at %s:\n%s", code, public, body)
	}

	// A client reaching the server directly (127.0.0.4, not a trusted
	// proxy; the proxy itself is 127.0.0.1) forges every header: all
	// ignored.
	direct := clientFrom("127.0.0.4")
	for i := range 5 {
		req, _ := http.NewRequest("POST", ts.URL+"/api/auth/token/", strings.NewReader(`{"username":"x`+strconv.Itoa(i)+`","password":"guess-guess"}`))
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		req.Header.Set("X-Real-IP", fmt.Sprintf("198.51.100.%d", i))
		resp, err := direct.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("direct attempt %d: %d, want 401", i, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("POST", ts.URL+"/api/auth/token/", strings.NewReader(`{"username":"alice","password":"password1"}`))
	req.Header.Set("X-Forwarded-For", "203.0.113.200")
	if resp, err := direct.Do(req); err != nil || resp.StatusCode != 429 {
		t.Fatalf("6th direct check with a forged X-Forwarded-For: %v %v, want 429", respStatus(resp), err)
	}
	forged := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"http://evil.example"},
		"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}}
	if code, _ := do(t, direct, "POST", ts.URL+"/login", "username=alice&password=password1", forged); code != 403 {
		t.Fatalf("cross-origin form post with a forged X-Forwarded-Host: %d, want 403", code)
	}
	wsForged := http.Header{"Origin": {"http://evil.example"}, "X-Forwarded-Host": {"evil.example"}}
	directWS := websocket.Dialer{NetDialContext: direct.Transport.(*http.Transport).DialContext}
	if _, resp, err := directWS.Dial(ts.wsURL(""), wsForged); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("WebSocket with a forged X-Forwarded-Host: %v %v, want 403", err, respStatus(resp))
	}
	code, body = do(t, direct, "GET", ts.URL+"/widgets/online-users", "", http.Header{
		"Authorization": {"Bearer " + mustAPIToken(t, ts)}, "X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}})
	if code != 200 || strings.Contains(body, "evil.example") || !strings.Contains(body, ts.URL+"/widgets/online-users/stream") {
		t.Fatalf("widget with forged forwarding headers: %d\n%s", code, body)
	}
	ts.Clock.Advance(time.Minute) // the direct client's checks refill
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Forwarded-Proto": {"https"}}
	if sc := lastSetCookie(t, direct, ts.URL, h); sc == "" || strings.Contains(sc, "Secure") {
		t.Fatalf("plain-http sign-in with a forged X-Forwarded-Proto set %q, want a cookie without Secure", sc)
	}
	// Nor can a request line in absolute form (POST https://…) claim https.
	raw, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	formBody := "username=alice&password=password1"
	fmt.Fprintf(raw, "POST https://%s/login HTTP/1.1\r\nHost: %[1]s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		strings.TrimPrefix(ts.URL, "http://"), len(formBody), formBody)
	resp, err = http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sc := resp.Header.Get("Set-Cookie"); resp.StatusCode != 303 || strings.Contains(sc, "Secure") {
		t.Fatalf("absolute-form https request line: %d Set-Cookie %q, want 303 without Secure", resp.StatusCode, sc)
	}
}

// lastSetCookie signs alice in at base with header and returns the
// response's Set-Cookie.
func lastSetCookie(tb testing.TB, client *http.Client, base string, header http.Header) string {
	tb.Helper()
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader("username=alice&password=password1"))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		tb.Fatalf("sign-in: %d", resp.StatusCode)
	}
	return resp.Header.Get("Set-Cookie")
}

// mustAPIToken returns a fresh API token for alice.
func mustAPIToken(tb testing.TB, ts *testServer) string {
	tb.Helper()
	u, err := ts.DB.UserByName(ctx, "alice")
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := ts.DB.CreateToken(ctx, u.ID, store.TokenAPI, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// TestMetricsNotPublic: /metrics on the main listener answers a loopback
// client and 404 to a client on another address. It needs a non-loopback
// address on this machine.
func TestMetricsNotPublic(t *testing.T) {
	var other net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			other = n.IP
			break
		}
	}
	if other == nil {
		t.Skip("no non-loopback IPv4 address on this machine")
	}
	ts := MustStartServer(t, handlers.Config{})
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(ts.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if code, _ := do(t, nil, "GET", "http://127.0.0.1:"+port+"/metrics", "", nil); code != 200 {
		t.Fatalf("loopback scrape: %d, want 200", code)
	}
	remote := "http://" + net.JoinHostPort(other.String(), port) + "/metrics"
	if code, body := do(t, nil, "GET", remote, "", nil); code != 404 || strings.Contains(body, "presence_users_online") {
		t.Fatalf("scrape from %s: %d, want 404", other, code)
	}
	if code, _ := do(t, nil, "GET", "http://127.0.0.1:"+port+"/metrics", "", http.Header{"X-Forwarded-For": {"203.0.113.9"}}); code != 404 {
		t.Fatalf("loopback scrape relayed by a proxy: %d, want 404", code)
	}
}
