package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/examples/host/hostsite"
)

// hostAlice's id is a UUID; hostBob's is 1, the id of the local account
// "bob" that the test creates first on Presence: same name, same number,
// two different people.
const hostAliceID = "3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b"

// visibleTiles is JS listing the widget's shown tiles as "id name href",
// sorted, within doc.
const visibleTiles = `Array.from(document.querySelectorAll('[data-testid=online-users-widget] li[data-user-id]:not([hidden])')).map(li => li.getAttribute('data-user-id') + ' ' + li.querySelector('[data-testid=widget-username]').textContent + ' ' + li.querySelector('a').href).sort().join('\n')`

// navLog records every URL a tab's frames navigate to.
type navLog struct {
	mu   sync.Mutex
	urls []string
}

func (l *navLog) listen(ev any) {
	if e, ok := ev.(*page.EventFrameNavigated); ok {
		l.mu.Lock()
		l.urls = append(l.urls, e.Frame.URL)
		l.mu.Unlock()
	}
}

func (l *navLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.urls...)
}

// hostSignIn signs a host user in on the example host's own form.
func hostSignIn(t *testing.T, tab context.Context, host, name string) {
	t.Helper()
	must(t, tab,
		chromedp.Navigate(host+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), name),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "pw-"+name),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=host-user]`)),
	)
}

// TestBrowser_HostSiteEmbed runs examples/host (its own origin, its own
// sign-in, HS256 JWTs with the shared secret) beside Presence on another
// origin (localhost vs 127.0.0.1, other ports). Two host users sign in on
// the host only; each sees the other appear live in the widget that one
// embed.js tag brings to a page without htmx, and in the iframe variant on
// a page that runs no script. The widget carries host ids (a UUID; "1")
// and never mistakes host bob (id 1) for the local account bob (id 1),
// shown as "local:1". No page of Presence's own is ever visited.
func TestBrowser_HostSiteEmbed(t *testing.T) {
	browser := newBrowser(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	base, _ := inProcess(t, browserArgs(dataDir(t), "--jwt-secret", testJWTSecret, "--allowed-origins", host))

	// The local account bob, id 1, online from a program that answers
	// the server's pings (gorilla does while it reads).
	live(mustDial(t, base, mustToken(t, base, "bob")))

	site, err := hostsite.New(hostsite.Config{PresenceURL: base, Secret: []byte(testJWTSecret), Users: []hostsite.User{
		{ID: hostAliceID, Username: "alice", Password: "pw-alice"},
		{ID: "1", Username: "bob", Password: "pw-bob"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: site}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var navs navLog
	tabOf := func(person context.Context) context.Context {
		ctx, cancel := chromedp.NewContext(person, chromedp.WithListener(navs.listen))
		if err := chromedp.Do(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		return ctx
	}
	tab := func() context.Context { return tabOf(newPerson(t, browser)) }
	tiles := func(entries ...string) string {
		return `(` + visibleTiles + `) === ` + jsString(strings.Join(entries, "\n")) +
			` && document.querySelector('[data-testid=online-users-widget]').dataset.state === 'ready'`
	}
	localBob := "local:1 bob " + base + "/users/bob"
	hostBob := "1 bob " + base + "/host/users/1"
	hostAlice := hostAliceID + " alice " + base + "/host/users/" + hostAliceID

	alicePerson := newPerson(t, browser)
	alice := tabOf(alicePerson)
	hostSignIn(t, alice, host, "alice")
	waitFor(t, alice, "embed.js brings htmx 2.0.11 and presence.js to a page without them",
		`!!window.htmx && htmx.version === '2.0.11' && !!window.__presenceStreams`, 10*time.Second)
	waitFor(t, alice, "alice's widget shows the local bob, not herself", tiles(localBob), 10*time.Second)

	bob := tab()
	hostSignIn(t, bob, host, "bob")
	waitFor(t, bob, "host bob sees alice and the local bob, whose id is not his", tiles(hostAlice, localBob), 10*time.Second)
	waitFor(t, alice, "alice sees host bob appear live, beside the local bob", tiles(hostBob, localBob), 5*time.Second)

	// A second tab of alice's signs its own token, yet shares the one
	// stream the first holds (the share key leaves ?token= out).
	alice2 := tabOf(alicePerson)
	must(t, alice2, chromedp.Navigate(host+"/"))
	waitFor(t, alice2, "alice's second tab shows the same", tiles(hostBob, localBob), 10*time.Second)
	tokens, _ := chromedp.Run(alice2, chromedp.Evaluate[string](`document.querySelector('[data-presence-widget]').getAttribute('sse-connect')`))
	first, _ := chromedp.Run(alice, chromedp.Evaluate[string](`document.querySelector('[data-presence-widget]').getAttribute('sse-connect')`))
	if tokens == first {
		t.Fatal("both tabs have the same token: the sharing below proves nothing")
	}
	leaders := -1
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && leaders != 1; time.Sleep(100 * time.Millisecond) {
		leaders = 0
		for _, tb := range []context.Context{alice, alice2} {
			if l, _ := chromedp.Run(tb, chromedp.Evaluate[bool](leaderJS)); l {
				leaders++
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d of alice's two tabs hold a stream, want 1", leaders)
	}

	// The host page's own styles survive: embed.css has no global reset.
	if bullets, _ := chromedp.Run(alice, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('main > ul')).listStyleType`)); bullets != "square" {
		t.Errorf("host page list-style = %q: the widget's CSS restyled the host page", bullets)
	}
	// One htmx on the page, however many embeds.
	if n, _ := chromedp.Run(alice, chromedp.Evaluate[int](`document.querySelectorAll('script[src$="/static/htmx.min.js"]').length`)); n != 1 {
		t.Errorf("%d copies of htmx loaded", n)
	}

	// The iframe variant, on a page whose CSP runs no script at all.
	bobFrame := tab()
	hostSignIn(t, bobFrame, host, "bob")
	must(t, bobFrame, chromedp.Navigate(host+"/frame"), chromedp.WaitReady(chromedp.CSS(`[data-testid=presence-frame]`)))
	frame := frameContext(t, bobFrame, base+"/embed/online-users")
	waitFor(t, frame, "the framed widget shows alice and the local bob", tiles(hostAlice, localBob), 10*time.Second)

	// Bob leaves the script-tag page: the framed one keeps him online.
	must(t, bob, chromedp.Navigate("about:blank"))
	time.Sleep(browserGrace + 2*time.Second)
	if still, _ := chromedp.Run(alice, chromedp.Evaluate[bool](tiles(hostBob, localBob))); !still {
		t.Fatal("bob went offline while his framed widget was open: the iframe does not keep him online")
	}
	// Then the framed one too: alice sees him go, live.
	must(t, bobFrame, chromedp.Navigate("about:blank"))
	waitFor(t, alice, "alice sees host bob leave", tiles(localBob), 10*time.Second)

	// A host id with every character that means something to CSS, HTML
	// or htmx's selector syntax comes and goes as deltas (tiles in and out
	// by out-of-band swaps whose selectors carry the id).
	const oddID = `a,b"]<x/>\z#?'`
	deltas := metric(t, base, "presence_widget_list_deltas_total")
	odd := live(mustDial(t, base, signed(t, oddID, "odd")))
	oddTile := oddID + " odd " + base + "/host/users/" + url.PathEscape(oddID)
	waitFor(t, alice, "alice sees the odd id arrive", tiles(oddTile, localBob), 5*time.Second)
	odd.Close()
	waitFor(t, alice, "alice sees the odd id leave", tiles(localBob), 10*time.Second)
	if got := metric(t, base, "presence_widget_list_deltas_total"); got < deltas+2 {
		t.Errorf("%v deltas pushed for the odd id, want its arrival and departure as deltas", got-deltas)
	}
	if n, _ := chromedp.Run(alice, chromedp.Evaluate[int](`document.querySelectorAll('[data-presence-grid] li').length`)); n != 2 {
		t.Errorf("alice's grid has %d tiles, want 2 (herself hidden, the local bob)", n)
	}

	for _, u := range navs.list() {
		if strings.HasPrefix(u, base) && !strings.HasPrefix(u, base+"/embed/online-users?") {
			t.Errorf("a browser went to a Presence page: %s", u)
		}
	}
}

// frameContext attaches to the cross-site iframe whose URL starts with
// prefix (Chrome runs it as its own target).
func frameContext(t *testing.T, tab context.Context, prefix string) context.Context {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		infos, err := chromedp.Targets(tab)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasPrefix(info.URL, prefix) {
				ctx, cancel := chromedp.NewContext(tab, chromedp.WithTargetID(info.TargetID))
				t.Cleanup(cancel)
				return ctx
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no iframe target at %s", prefix)
	return nil
}

// live keeps reading conn, so it answers pings, until it is closed.
func live(conn *websocket.Conn) *websocket.Conn {
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return conn
}

// signed is a host JWT for id (a string claim) and name.
func signed(t *testing.T, id, name string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "access", "user_id": id, "username": name,
		"exp": time.Now().Add(5 * time.Minute).Unix(),
	}).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return `'` + r.Replace(s) + `'`
}

// TestBrowser_EmbedScriptBesideOtherHtmx: embed.js on a page that already
// runs htmx 2 reuses it (no second copy) and still lets the page's own
// requests to other origins be refused; on a page with another htmx major
// it shows the iframe variant, sized to the widget by its messages. A
// short-lived token is renewed from data-token-url before it expires.
func TestBrowser_EmbedScriptBesideOtherHtmx(t *testing.T) {
	browser := newBrowser(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	base, _ := inProcess(t, browserArgs(dataDir(t), "--jwt-secret", testJWTSecret, "--allowed-origins", host))
	live(mustDial(t, base, djangoToken(t, 7))) // someone to show

	site, err := hostsite.New(hostsite.Config{PresenceURL: base, Secret: []byte(testJWTSecret), TokenTTL: 65 * time.Second,
		Users: []hostsite.User{{ID: "8", Username: "ann", Password: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	tokenFor := func() string {
		tok, err := site.Token(hostsite.User{ID: "8", Username: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var refreshes sync.WaitGroup
	refreshes.Add(1)
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		once.Do(refreshes.Done)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token": %q}`, tokenFor())
	})
	mux.HandleFunc("/with-htmx", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><html><head>
<script src="%[1]s/static/htmx.min.js"></script>
<script>htmx.pageCopy = true; htmx.config.selfRequestsOnly = true;</script>
</head><body><h1>Has htmx</h1>
<script src="%[1]s/embed.js" data-token="%[2]s" data-token-url="/token"></script>
</body></html>`, base, tokenFor())
	})
	mux.HandleFunc("/old-htmx", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><html><head><script>window.htmx = {version: "1.9.12"};</script></head>
<body><h1>Has htmx 1</h1><div id="here"></div>
<script src="%[1]s/embed.js" data-token="%[2]s" data-target="#here" data-keepalive="false"></script>
</body></html>`, base, tokenFor())
	})
	mux.HandleFunc("/two", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><html><head></head><body><h1>Two widgets</h1>
<script src="%[1]s/embed.js" data-token="%[2]s" data-title="One"></script>
<script src="%[1]s/embed.js" data-token="%[2]s" data-title="Two"></script>
</body></html>`, base, tokenFor())
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// Two tags on a page without htmx: one htmx, one presence socket.
	two, _ := newTab(t, newPerson(t, browser))
	must(t, two, chromedp.Navigate(host+"/two"))
	waitFor(t, two, "both widgets show user 7", `document.querySelectorAll('[data-testid=online-users-widget][data-state=ready] li[data-user-id="7"]:not([hidden])').length === 2`, 10*time.Second)
	if n, _ := chromedp.Run(two, chromedp.Evaluate[int](`performance.getEntriesByType('resource').filter(e => /\/static\/(htmx|sse)\.min\.js$|\/static\/presence\.js$/.test(e.name)).length`)); n != 3 {
		t.Errorf("%d loads of htmx, its SSE extension and presence.js, want 3 (each once)", n)
	}
	for deadline := time.Now().Add(5 * time.Second); metric(t, base, "presence_websockets_open") != 2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if n := metric(t, base, "presence_websockets_open"); n != 2 {
		t.Errorf("%v presence sockets open, want 2 (user 7's and the page's one)", n)
	}
	must(t, two, chromedp.Navigate("about:blank"))

	tab, _ := newTab(t, newPerson(t, browser))
	must(t, tab, chromedp.Navigate(host+"/with-htmx"))
	waitFor(t, tab, "the widget shows user 7, with the page's own htmx", `!!document.querySelector('[data-testid=online-users-widget][data-state=ready] li[data-user-id="7"]:not([hidden])') && htmx.pageCopy === true && !!window.__presenceStreams`, 10*time.Second)
	if n, _ := chromedp.Run(tab, chromedp.Evaluate[int](`performance.getEntriesByType('resource').filter(e => e.name.endsWith('/htmx.min.js')).length`)); n != 1 {
		t.Errorf("htmx loaded %d times", n)
	}
	// The page wanted same-origin requests only: other origins stay refused.
	refused, err := chromedp.Run(tab, chromedp.Evaluate[bool](`new Promise(res => {
		const a = document.createElement('a'); a.setAttribute('hx-get', 'http://127.0.0.1:9/elsewhere'); document.body.appendChild(a); htmx.process(a);
		document.body.addEventListener('htmx:invalidPath', () => res(true), {once: true});
		setTimeout(() => res(false), 2000); htmx.trigger(a, 'click'); })`, chromedp.EvalAwaitPromise))
	if err != nil || !refused {
		t.Errorf("a request to another origin was not refused (%v)", err)
	}
	// The token is renewed from data-token-url a few seconds in (65 s tokens).
	first, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('[data-presence-widget]').getAttribute('sse-connect')`))
	done := make(chan struct{})
	go func() { refreshes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("embed.js never asked data-token-url for a new token")
	}
	waitFor(t, tab, "the widget runs on the new token", fmt.Sprintf(`(() => { const w = document.querySelector('[data-testid=online-users-widget][data-state=ready]'); return !!w && w.getAttribute('sse-connect') !== %q && !!w.querySelector('li[data-user-id="7"]:not([hidden])') })()`, first), 10*time.Second)
	if n, _ := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('[data-presence-widget]').length`)); n != 1 {
		t.Errorf("%d widgets after the renewal, want 1", n)
	}

	old, _ := newTab(t, newPerson(t, browser))
	must(t, old, chromedp.Navigate(host+"/old-htmx"))
	waitFor(t, old, "an iframe instead of a second htmx", `!!document.querySelector('#here [data-testid=presence-embed-frame]') && window.htmx.version === '1.9.12'`, 10*time.Second)
	frame := frameContext(t, old, base+"/embed/online-users")
	waitFor(t, frame, "the framed widget shows user 7", `!!document.querySelector('[data-testid=online-users-widget][data-state=ready] li[data-user-id="7"]:not([hidden])')`, 10*time.Second)
	waitFor(t, old, "the frame is sized to the widget", `document.querySelector('[data-testid=presence-embed-frame]').style.height !== '260px'`, 5*time.Second)
}
