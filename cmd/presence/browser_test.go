package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presencehq/presence/store"
)

// Browser tests drive Debian's chromium through chromedp against the real
// server. They wait on DOM state, never on network idle (SSE never idles).
// Without chromium they are skipped locally and fail in CI (CI=true).

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PRESENCE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: .ci/run must install it (apt-get install -y chromium)")
	}
	t.Skip("chromium not installed; apt-get install -y chromium to run browser tests")
	return ""
}

// newBrowser starts a headless chromium for the test, with any extra
// options (flags) after the defaults.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// newPerson is a separate browser context: its own cookies, like another
// person on another machine. Tabs opened from it share its cookies.
func newPerson(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return ctx
}

// newTab opens another tab in the person's browser context.
func newTab(t *testing.T, person context.Context) (context.Context, context.CancelFunc) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(person)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return ctx, cancel
}

func must(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// login signs the tab's person in through the real form.
func login(t *testing.T, tab context.Context, base, name string) {
	t.Helper()
	must(t, tab,
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), name),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "password1"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)),
	)
}

// widgetNames is JS listing the usernames the widget shows, in order.
const widgetNames = `Array.from(document.querySelectorAll('[data-testid=online-users-widget] li[data-user-id]:not([hidden]) [data-testid=widget-username]')).map(e => e.textContent)`

// waitFor polls a JS condition in the tab until it is true.
func waitFor(t *testing.T, tab context.Context, what, cond string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for {
		_, err = chromedp.Run(tab, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(timeout-time.Since(start))))
		// A form posted just before navigates the page: the poll's
		// JavaScript context goes with the old page. Poll the new one.
		if err == nil || !pageReplaced(err) || time.Since(start) >= timeout {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		names, _ := chromedp.Run(tab, chromedp.Evaluate[[]string](widgetNames))
		state, _ := chromedp.Run(tab, chromedp.Evaluate[string](`(document.querySelector('[data-testid=online-users-widget]') || {dataset: {}}).dataset.state || 'no widget'`))
		t.Fatalf("%s: not within %v (widget shows %q, state %s): %v", what, timeout, names, state, err)
	}
	return time.Since(start)
}

// pageReplaced reports whether err is the DevTools protocol saying that
// the page an evaluation ran in navigated away.
func pageReplaced(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") || strings.Contains(msg, "Inspected target navigated or closed") || strings.Contains(msg, "Execution context was destroyed")
}

func showsExactly(names ...string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(append([]string{}, names...))
	return fmt.Sprintf(`!!document.querySelector('[data-testid=online-users-widget]') && document.querySelector('[data-testid=online-users-widget]').dataset.state === 'ready' && JSON.stringify(%s) === %q`,
		widgetNames, strings.TrimSpace(b.String()))
}

// metric reads one value from /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := testClient.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		var v float64
		if strings.HasPrefix(line, name+" ") {
			fmt.Sscanf(strings.TrimPrefix(line, name+" "), "%g", &v)
			return v
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

const browserGrace = 1500 * time.Millisecond

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// aliceSeesBob signs alice and bob in, each in their own browser profile,
// and waits until alice's widget shows bob.
func aliceSeesBob(t *testing.T, browser context.Context, base string) (alice, bob context.Context) {
	t.Helper()
	mustToken(t, base, "alice")
	mustToken(t, base, "bob")
	alice, _ = newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	bob, _ = newTab(t, newPerson(t, browser))
	login(t, bob, base, "bob")
	waitFor(t, alice, "alice sees bob", showsExactly("bob"), 5*time.Second)
	return alice, bob
}

func browserArgs(data string, extra ...string) []string {
	return fastArgs(data, append([]string{"--grace", browserGrace.String()}, extra...)...)
}

// TestBrowser_LiveWidget: two people see each other appear within 2 s; a
// second tab keeps a user shown when the first closes; closing the last tab
// removes them after the grace period; nobody sees themself.
func TestBrowser_LiveWidget(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	mustToken(t, base, "alice")
	mustToken(t, base, "bob")

	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	waitFor(t, alice, "alice sees the empty state", showsExactly()+` && !!document.querySelector('[data-testid=widget-empty]') && !document.querySelector('[data-testid=widget-empty]').classList.contains('hidden')`, 5*time.Second)

	bobPerson := newPerson(t, browser)
	bob1, closeBob1 := newTab(t, bobPerson)
	login(t, bob1, base, "bob")
	took := waitFor(t, alice, "alice sees bob", showsExactly("bob"), 2*time.Second)
	t.Logf("bob appeared in alice's widget %v after his page loaded", took)
	waitFor(t, bob1, "bob sees alice, not himself", showsExactly("alice"), 2*time.Second)

	// A second tab of bob (same cookies), then the first one closes.
	bob2, closeBob2 := newTab(t, bobPerson)
	must(t, bob2, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)))
	waitFor(t, bob2, "bob's second tab sees alice", showsExactly("alice"), 2*time.Second)
	eventually(t, "bob's two sockets", 5*time.Second, func() bool { return metric(t, base, "presence_connections") == 3 })
	closeBob1()
	eventually(t, "bob's first socket to close", 5*time.Second, func() bool { return metric(t, base, "presence_connections") == 2 })
	time.Sleep(browserGrace + 500*time.Millisecond)
	waitFor(t, alice, "bob still shown with one tab open", showsExactly("bob"), time.Second)

	// The last tab closes: bob goes after the grace period, not before.
	closed := time.Now()
	closeBob2()
	waitFor(t, alice, "bob gone", showsExactly()+` && !!document.querySelector('[data-testid=widget-empty]') && !document.querySelector('[data-testid=widget-empty]').classList.contains('hidden')`, browserGrace+5*time.Second)
	if gone := time.Since(closed); gone < browserGrace {
		t.Fatalf("bob disappeared %v after closing, before the %v grace period", gone, browserGrace)
	}
}

// TestBrowser_EscapesUsernames: a hostile username (legacy data that skipped
// validation) renders as text in the widget and the profile, and runs nothing.
func TestBrowser_EscapesUsernames(t *testing.T) {
	browser := newBrowser(t)
	data := dataDir(t)
	base, _ := inProcess(t, browserArgs(data))
	mustToken(t, base, "alice")

	const evil = `<img src=x onerror=alert(1)>`
	sqldb, err := sql.Open("sqlite", "file:"+filepath.Join(data, "presence.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	res, err := sqldb.Exec(`INSERT INTO users (username, username_key, password_hash, created_at) VALUES (?, ?, 'x', 0)`, evil, strings.ToLower(evil))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	db := openDB(t, data)
	tok, err := db.CreateToken(context.Background(), id, store.TokenAPI, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustDial(t, base, tok) // the hostile user is online

	alice, _ := newTab(t, newPerson(t, browser))
	must(t, alice, chromedp.Navigate(base+"/login"),
		chromedp.Evaluate[chromedp.Void](`window.alerts = 0; window.alert = () => window.alerts++`))
	login(t, alice, base, "alice")
	must(t, alice, chromedp.Evaluate[chromedp.Void](`window.alerts = 0; window.alert = () => window.alerts++`))
	waitFor(t, alice, "the hostile name shown as text", showsExactly(evil), 5*time.Second)
	bad, err := chromedp.Run(alice, chromedp.Evaluate[int](`document.querySelectorAll('img[src=x]').length + window.alerts`))
	if err != nil || bad != 0 {
		t.Fatalf("markup from a username was interpreted (%d, %v)", bad, err)
	}

	// The profile page too.
	must(t, alice, chromedp.Navigate(base+"/users/"+url.PathEscape(evil)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile-username]`)))
	name, _ := chromedp.Run(alice, chromedp.Text(chromedp.CSS(`[data-testid=profile-username]`)))
	if name != evil {
		t.Fatalf("profile shows %q", name)
	}
	if n, _ := chromedp.Run(alice, chromedp.Evaluate[int](`document.querySelectorAll('img[src=x]').length`)); n != 0 {
		t.Fatal("profile rendered the username as markup")
	}
}

// TestBrowser_RecoversAfterRestart: the server goes down and comes back on
// the same address; the widget shows "reconnecting", then resyncs by itself.
func TestBrowser_RecoversAfterRestart(t *testing.T) {
	browser := newBrowser(t)
	data := dataDir(t)
	addr := freeAddr(t) // the restart must come back on the same address
	base, stop := inProcess(t, browserArgs(data, "--addr", addr))
	alice, _ := aliceSeesBob(t, browser, base)

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice, "the reconnecting state", `!!document.querySelector('[data-testid=online-users-widget]') && document.querySelector('[data-testid=online-users-widget]').dataset.state === 'reconnecting'`, 5*time.Second)

	inProcess(t, browserArgs(data, "--addr", addr))
	took := waitFor(t, alice, "alice sees bob again", showsExactly("bob"), 20*time.Second)
	t.Logf("widget resynced %v after the restart", took)
}

// TestBrowser_EmbedExample follows docs/EMBEDDING.md through the example
// host page: the widget loads, updates live, and the click hook works.
func TestBrowser_EmbedExample(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	mustToken(t, base, "alice")
	tokB := mustToken(t, base, "bob")

	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	must(t, alice, chromedp.Navigate(base+"/embed-example"))
	waitFor(t, alice, "the embedded widget, empty", showsExactly(), 5*time.Second)
	title, _ := chromedp.Run(alice, chromedp.Text(chromedp.CSS(`[data-testid=widget-title]`)))
	if title != "Who's here" {
		t.Fatalf("title = %q", title)
	}
	mustDial(t, base, tokB)
	waitFor(t, alice, "bob appears in the embed", showsExactly("bob"), 2*time.Second)
	must(t, alice, chromedp.Click(chromedp.CSS(`[data-presence-user][data-username=bob]`)))
	waitFor(t, alice, "the host's click handler", `!!document.querySelector('[data-testid=last-click]') && document.querySelector('[data-testid=last-click]').textContent.startsWith('You clicked bob')`, 2*time.Second)
	if loc, _ := chromedp.Run(alice, chromedp.Location()); !strings.HasSuffix(loc, "/embed-example") {
		t.Fatalf("the cancelled click navigated to %s", loc)
	}
}

// TestBrowser_Screenshots saves the widget at mobile and desktop widths
// under $PRESENCE_SCREENSHOTS (default: a temp dir) for people to look at.
func TestBrowser_Screenshots(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	mustToken(t, base, "alice")
	for _, name := range []string{"bob", "carol", "dave", "erin", "frank", "grace"} {
		mustDial(t, base, mustToken(t, base, name))
	}
	// Most have uploaded avatars; two show the initial fallback.
	for name, colors := range map[string][3]color.RGBA{
		"bob":   {{14, 165, 233, 255}, {30, 58, 138, 255}, {254, 215, 170, 255}},
		"carol": {{244, 114, 182, 255}, {190, 24, 93, 255}, {120, 72, 48, 255}},
		"erin":  {{52, 211, 153, 255}, {4, 120, 87, 255}, {253, 230, 200, 255}},
		"grace": {{251, 191, 36, 255}, {194, 65, 12, 255}, {80, 50, 40, 255}},
	} {
		mustUploadAvatar(t, base, name, portrait(colors[0], colors[1], colors[2]))
	}
	dir := os.Getenv("PRESENCE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "presence-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tab, _ := newTab(t, newPerson(t, browser))
	login(t, tab, base, "alice")
	for _, size := range []struct {
		name string
		w, h int64
	}{{"mobile", 390, 844}, {"desktop", 1280, 800}} {
		must(t, tab, chromedp.EmulateViewport(size.w, size.h), chromedp.Reload())
		waitFor(t, tab, "six users", `(`+widgetNames+`).length === 6`, 5*time.Second)
		waitFor(t, tab, "four avatars loaded", `Array.from(document.querySelectorAll('[data-testid=online-users-widget] img.pw-avatar')).filter(i => i.complete && i.naturalWidth === 128).length === 4`, 5*time.Second)
		png, err := chromedp.Run(tab, chromedp.Screenshot(chromedp.CSS(`[data-testid=online-users-widget]`)))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "widget-"+size.name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s", path)
	}
}

// TestBrowser_CrossOriginEmbed follows docs/EMBEDDING.md literally on a host
// page of another origin, for an anonymous visitor, with an embed token.
func TestBrowser_CrossOriginEmbed(t *testing.T) {
	browser := newBrowser(t)
	data := dataDir(t)
	base, _ := inProcess(t, browserArgs(data))
	tokA := mustToken(t, base, "alice")
	var out strings.Builder
	if err := run(context.Background(), []string{"user", "embed-token", "--data", data, "alice"}, func(string) string { return "" }, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	embed := strings.TrimSpace(out.String())

	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head>
<meta name="htmx-config" content='{"selfRequestsOnly": false}'>
<link rel="stylesheet" href="%[1]s/static/app.css">
<script src="%[1]s/static/htmx.min.js" defer></script>
<script src="%[1]s/static/sse.min.js" defer></script>
<script src="%[1]s/static/presence.js" defer></script>
</head><body>
<div hx-get="%[1]s/widgets/online-users?max=8&embed_token=%[2]s"
     hx-trigger="load" hx-swap="outerHTML">Loading who's online…</div>
</body></html>`, base, embed)
	}))
	defer host.Close()

	mustUploadAvatar(t, base, "alice", portrait(color.RGBA{14, 165, 233, 255}, color.RGBA{30, 58, 138, 255}, color.RGBA{254, 215, 170, 255}))

	visitor, _ := newTab(t, newPerson(t, browser))
	must(t, visitor, chromedp.Navigate(host.URL))
	waitFor(t, visitor, "the embed shows nobody yet", showsExactly(), 5*time.Second)
	mustDial(t, base, tokA)
	waitFor(t, visitor, "alice appears live on the other site", showsExactly("alice"), 2*time.Second)
	// Her uploaded avatar is a path on Presence, not on the host site.
	waitFor(t, visitor, "alice's avatar loads from Presence", `(() => { const i = document.querySelector('[data-presence-user] img'); return !!i && i.complete && i.naturalWidth === 128 && i.src.startsWith(`+fmt.Sprintf("%q", base+"/avatars/")+`); })()`, 3*time.Second)
	href, _ := chromedp.Run(visitor, chromedp.Evaluate[string](`document.querySelector('[data-presence-user]').href`))
	if href != base+"/users/alice" {
		t.Fatalf("card links to %q, want the Presence profile", href)
	}
}

// TestBrowser_RecoversAfterKill: the server process is killed (SIGKILL)
// with two people connected, then started again on the same address and
// data: nobody is a ghost in between, and both pages reconnect and
// converge by themselves.
func TestBrowser_RecoversAfterKill(t *testing.T) {
	browser := newBrowser(t)
	data := dataDir(t)
	addr := freeAddr(t) // the restart must come back on the same address
	p := startProcess(t, browserArgs(data, "--addr", addr))
	base := p.base
	alice, bob := aliceSeesBob(t, browser, base)

	p.cmd.Process.Kill()
	p.cmd.Wait()
	waitFor(t, alice, "the reconnecting state", `!!document.querySelector('[data-testid=online-users-widget]') && document.querySelector('[data-testid=online-users-widget]').dataset.state === 'reconnecting'`, 10*time.Second)

	startProcess(t, browserArgs(data, "--addr", addr))
	took := waitFor(t, alice, "alice sees bob again", showsExactly("bob"), 20*time.Second)
	waitFor(t, bob, "bob sees alice again", showsExactly("alice"), 5*time.Second)
	t.Logf("converged %v after the restart", took)
}

// TestBrowser_StatusMenu: bob picks "do not disturb" and a custom status
// from the header menu; alice's widget shows it in the dot and the tooltip
// at once. Then bob goes invisible and leaves alice's widget, though his
// tab stays open.
func TestBrowser_StatusMenu(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	alice, bob := aliceSeesBob(t, browser, base)

	must(t, bob,
		chromedp.Click(chromedp.CSS(`[data-testid=status-summary]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=status-form]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=status-mode-dnd]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid=status-emoji]`), "🎧"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=status-text]`), "deep work"),
		chromedp.Click(chromedp.CSS(`[data-testid=status-save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)),
	)
	// Null-safe: the poll may run while the page the form posted to loads.
	waitFor(t, bob, "bob's header shows his mode", `document.querySelector('[data-testid=status-mode]')?.textContent === 'Do not disturb' && !!document.querySelector('[data-testid=status-current]')?.textContent.includes('deep work')`, 5*time.Second)
	tile := `document.querySelector('[data-testid=online-users-widget] [data-presence-user][data-username=bob]')`
	waitFor(t, alice, "alice sees bob's status", tile+` && `+tile+`.getAttribute('data-tip') === 'bob · do not disturb · 🎧 deep work' && `+tile+`.querySelector('[data-testid=online-dot]')?.getAttribute('data-mode') === 'dnd'`, 5*time.Second)
	color, err := chromedp.Run(alice, chromedp.Evaluate[string](`getComputedStyle(`+tile+`.querySelector('[data-testid=online-dot]')).backgroundColor`))
	if err != nil || color != "rgb(239, 68, 68)" {
		t.Fatalf("dnd dot colour = %q (%v), want red", color, err)
	}

	must(t, bob,
		chromedp.Click(chromedp.CSS(`[data-testid=status-summary]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=status-form]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=status-mode-invisible]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=status-save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)),
	)
	waitFor(t, alice, "bob gone from alice's widget", showsExactly(), 5*time.Second)
	waitFor(t, bob, "bob still sees alice", showsExactly("alice"), 5*time.Second)
}

// TestBrowser_IdleTabGoesAway: presence.js sends application pings only
// after real interaction, so a tab left alone shows its user away after
// --away-after, while the server's ping frames keep its socket open (the
// heartbeat deadline here is shorter than the away delay); one key press
// brings the user back.
func TestBrowser_IdleTabGoesAway(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t), "--away-after", "3s", "--ping-interval", "300ms", "--heartbeat-deadline", "1200ms"))
	alice, bob := aliceSeesBob(t, browser, base)
	tile := `document.querySelector('[data-testid=online-users-widget] [data-presence-user][data-username=bob]')`
	mode := func(m string) string { // a plain online tile carries no data-mode
		if m == "online" {
			return tile + ` && !` + tile + `.querySelector('[data-testid=online-dot]').hasAttribute('data-mode')`
		}
		return tile + ` && ` + tile + `.querySelector('[data-testid=online-dot]').getAttribute('data-mode') === '` + m + `'`
	}
	took := waitFor(t, alice, "bob's idle tab to go away", mode("away"), 10*time.Second)
	t.Logf("bob went away %v after alice first saw him", took)
	if n := metric(t, base, "presence_connections"); n != 2 {
		t.Fatalf("presence_connections = %v with bob away: his idle tab was dropped", n)
	}
	must(t, bob, chromedp.KeyEvent("x"))
	waitFor(t, alice, "bob back after a key press", mode("online"), 8*time.Second)
	if tip := mustEval[string](t, alice, `getComputedStyle(`+tile+`, '::after').content`); tip != `"bob · online now"` {
		t.Fatalf("tooltip = %s, want bob · online now", tip)
	}
}

func mustEval[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
