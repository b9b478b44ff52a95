package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Many tabs of one browser profile. A browser keeps at most six HTTP/1.1
// connections per host, and every widget needs an event stream: over plain
// HTTP the tabs of one profile share one stream (static/presence.js), over
// HTTPS the server speaks HTTP/2, where one connection carries them all.

const tabCount = 10

// leaderJS is true in a tab that holds the shared stream itself.
const leaderJS = `typeof window.__presenceStreams === 'function' && window.__presenceStreams().some(s => s.leader)`

// openTabs signs the person in on the first tab, then opens the home page in
// more tabs of the same profile until there are n, and waits until each one
// has loaded and its widget shows want. A tab that cannot load (the browser
// is out of connections to the host) fails the test.
func openTabs(t *testing.T, person context.Context, base string, n int, want ...string) []context.Context {
	t.Helper()
	tabs := make([]context.Context, 0, n)
	for i := range n {
		tab, _ := newTab(t, person)
		ctx, cancel := context.WithTimeout(tab, 15*time.Second)
		var err error
		if i == 0 {
			err = chromedp.Do(ctx,
				chromedp.Navigate(base+"/login"),
				chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
				chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "password1"),
				chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)))
		} else {
			err = chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)))
		}
		cancel()
		if err != nil {
			t.Fatalf("tab %d of %d did not load %s within 15 s: %v", i+1, n, base, err)
		}
		waitFor(t, tab, fmt.Sprintf("tab %d shows %q", i+1, want), showsExactly(want...), 10*time.Second)
		tabs = append(tabs, tab)
	}
	return tabs
}

// allShow waits until every tab's widget shows exactly names.
func allShow(t *testing.T, tabs []context.Context, within time.Duration, names ...string) time.Duration {
	t.Helper()
	start := time.Now()
	for i, tab := range tabs {
		left := within - time.Since(start)
		if left < 100*time.Millisecond {
			left = 100 * time.Millisecond
		}
		evalUntil(t, tab, fmt.Sprintf("tab %d of %d shows %q", i+1, len(tabs), names), showsExactly(names...), left)
	}
	return time.Since(start)
}

// evalUntil is waitFor for pages that may have changed under chromedp: it
// evaluates cond afresh every 50 ms. (chromedp's Poll keeps the execution
// context it started in, and hangs on a page restored from the bfcache.)
func evalUntil(t *testing.T, tab context.Context, what, cond string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(tab, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(tab, time.Second)
			names, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](widgetNames))
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('[data-testid=online-users-widget]') || {dataset: {}}).dataset.state || 'no widget'`))
			cancel()
			t.Fatalf("%s: not within %v (widget shows %q, state %s; last error %v)", what, timeout, names, state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tenTabsLive opens ten tabs of alice's profile at pageBase, checks they
// hold one event stream between them, then signs bob in from another
// profile and waits until all ten show him. apiBase is where the test
// itself reaches the server.
func tenTabsLive(t *testing.T, browser context.Context, apiBase, pageBase string) []context.Context {
	t.Helper()
	mustToken(t, apiBase, "alice")
	mustToken(t, apiBase, "bob")
	tabs := openTabs(t, newPerson(t, browser), pageBase, tabCount)
	eventually(t, "one event stream for ten tabs", 20*time.Second, func() bool {
		return metric(t, apiBase, "presence_sse_subscribers") == 1
	})
	bob, _ := newTab(t, newPerson(t, browser))
	login(t, bob, pageBase, "bob")
	took := allShow(t, tabs, 5*time.Second, "bob")
	t.Logf("all %d tabs showed bob %v after his page loaded", len(tabs), took)
	return tabs
}

// TestBrowser_TenTabs: ten tabs of one profile over plain HTTP/1.1 at
// http://localhost all load and all show a change live. Before tabs shared
// the stream, tabs 7 and later never finished loading.
func TestBrowser_TenTabs(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	tenTabsLive(t, browser, base, strings.Replace(base, "127.0.0.1", "localhost", 1))
}

// TestBrowser_TenTabsNotSecureContext is TestBrowser_TenTabs on an origin
// that is not a secure context (a name mapped to 127.0.0.1), where Web
// Locks do not exist: the election must not need them.
func TestBrowser_TenTabsNotSecureContext(t *testing.T) {
	browser := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP presence.test 127.0.0.1"))
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	tabs := tenTabsLive(t, browser, base, strings.Replace(base, "127.0.0.1", "presence.test", 1))
	for i, tab := range tabs {
		ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](`location.hostname === 'presence.test' && window.isSecureContext === false && navigator.locks === undefined`))
		if err != nil || !ok {
			t.Fatalf("tab %d: want an insecure context without navigator.locks (%v)", i+1, err)
		}
	}
}

// TestBrowser_TenTabsHTTPS is TestBrowser_TenTabs over HTTPS with a
// certificate the test made: every page comes over HTTP/2.
func TestBrowser_TenTabsHTTPS(t *testing.T) {
	browser := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	cert, key := writeTestCert(t)
	base, _ := inProcess(t, browserArgs(dataDir(t), "--tls-cert", cert, "--tls-key", key))
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("serving %s", base)
	}
	tabs := tenTabsLive(t, browser, base, base)
	for i, tab := range tabs {
		proto, err := chromedp.Run(tab, chromedp.Evaluate[string](`performance.getEntriesByType('navigation')[0].nextHopProtocol`))
		if err != nil || proto != "h2" {
			t.Fatalf("tab %d: page came over %q (%v), want h2", i+1, proto, err)
		}
	}
}

// TestBrowser_TabLeaderCloses: closing the tab that holds the shared stream
// leaves the others live; another tab takes the stream over within two
// seconds and a change made right after the close reaches every tab.
func TestBrowser_TabLeaderCloses(t *testing.T) {
	browser := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP presence.test 127.0.0.1"))
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	page := strings.Replace(base, "127.0.0.1", "presence.test", 1)
	mustToken(t, base, "alice")
	carol := mustToken(t, base, "carol")
	person := newPerson(t, browser)
	tabs := openTabs(t, person, page, 5)

	leader := -1
	eventually(t, "one tab leads", 5*time.Second, func() bool {
		leader = -1
		for i, tab := range tabs {
			if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](leaderJS)); ok {
				if leader >= 0 {
					return false // two leaders: not settled yet
				}
				leader = i
			}
		}
		return leader >= 0
	})
	t.Logf("tab %d holds the stream; closing it", leader+1)
	closeTab(t, tabs[leader])
	rest := append(append([]context.Context{}, tabs[:leader]...), tabs[leader+1:]...)

	closed := time.Now()
	mustDial(t, base, carol)
	took := allShow(t, rest, 5*time.Second, "carol")
	t.Logf("carol shown in the %d other tabs %v after the leader closed", len(rest), took)
	if took > 4*time.Second {
		t.Fatalf("took %v", took)
	}
	eventually(t, "a new leader", 3*time.Second-time.Since(closed), func() bool {
		n := 0
		for _, tab := range rest {
			if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](leaderJS)); ok {
				n++
			}
		}
		return n == 1
	})
}

// TestBrowser_TabsBFCacheAndReload: a tab that goes into the back/forward
// cache (here: the one holding the shared stream) and comes back, and a tab
// that reloads, are live again afterwards, and so are the others.
func TestBrowser_TabsBFCacheAndReload(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	page := strings.Replace(base, "127.0.0.1", "localhost", 1)
	mustToken(t, base, "alice")
	carol := mustToken(t, base, "carol")
	dave := mustToken(t, base, "dave")
	tabs := openTabs(t, newPerson(t, browser), page, 3)

	var leader context.Context
	eventually(t, "one tab leads", 5*time.Second, func() bool {
		for _, tab := range tabs {
			if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](leaderJS)); ok {
				leader = tab
				return true
			}
		}
		return false
	})

	// Away and back through history. history.back(), not NavigateBack: a
	// page restored from the bfcache fires no load event to wait for.
	must(t, leader,
		chromedp.Evaluate[chromedp.Void](`window.__before = 1`),
		chromedp.Navigate(page+"/online"),
		chromedp.WaitVisible(chromedp.CSS(`body`)),
		chromedp.Evaluate[chromedp.Void](`history.back()`))
	evalUntil(t, leader, "back on the home page", `location.pathname === '/' && !!document.querySelector('[data-testid=greeting]')`, 10*time.Second)
	restored, err := chromedp.Run(leader, chromedp.Evaluate[bool](`window.__before === 1`))
	if err != nil {
		t.Fatal(err)
	}
	if !restored {
		why, _ := chromedp.Run(leader, chromedp.Evaluate[string](`JSON.stringify(performance.getEntriesByType('navigation')[0].notRestoredReasons)`))
		t.Fatalf("the page was not restored from the back/forward cache: %s", why)
	}
	mustDial(t, base, carol)
	took := allShow(t, tabs, 5*time.Second, "carol")
	t.Logf("after a bfcache round trip, carol shown in every tab within %v", took)

	// A reload of whichever tab now holds the stream.
	for _, tab := range tabs {
		if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](leaderJS)); ok {
			leader = tab
		}
	}
	must(t, leader, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)))
	mustDial(t, base, dave)
	took = allShow(t, tabs, 5*time.Second, "carol", "dave")
	t.Logf("after a reload, dave shown in every tab within %v", took)
}

// TestBrowser_TabLeaderCrashes: the tab holding the stream dies without a
// word (its renderer crashes: no pagehide, no bye). The others notice the
// stale lease, find nobody answering, and one takes over within seconds.
func TestBrowser_TabLeaderCrashes(t *testing.T) {
	browser := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP presence.test 127.0.0.1"))
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	site := strings.Replace(base, "127.0.0.1", "presence.test", 1)
	mustToken(t, base, "alice")
	carol := mustToken(t, base, "carol")
	tabs := openTabs(t, newPerson(t, browser), site, 4)
	leader := -1
	eventually(t, "one tab leads", 5*time.Second, func() bool {
		for i, tab := range tabs {
			if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](leaderJS)); ok {
				leader = i
				return true
			}
		}
		return false
	})
	crashed := time.Now()
	ctx, cancel := context.WithTimeout(tabs[leader], time.Second)
	chromedp.Call(ctx, page.Crash, cdp.Empty{}) // no answer: the renderer is gone
	cancel()
	ctx, cancel = context.WithTimeout(tabs[leader], time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`true`)); err == nil {
		t.Fatal("the crashed tab still runs script")
	}
	cancel()
	rest := append(append([]context.Context{}, tabs[:leader]...), tabs[leader+1:]...)
	eventually(t, "a new leader", 4*time.Second-time.Since(crashed), func() bool {
		for _, tab := range rest {
			if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](leaderJS)); ok {
				return true
			}
		}
		return false
	})
	t.Logf("tab %d crashed; another took the stream over within %v", leader+1, time.Since(crashed))
	mustDial(t, base, carol)
	allShow(t, rest, 5*time.Second, "carol")
}

// closeTab closes the browser tab of ctx (a context from newTab).
func closeTab(t *testing.T, tab context.Context) {
	t.Helper()
	if err := chromedp.Cancel(tab); err != nil {
		t.Fatalf("close tab: %v", err)
	}
}

// TestBrowser_TabsWithoutSharing: a browser without BroadcastChannel, or
// whose storage is blocked, cannot share: each tab opens its own stream,
// as before, and stays live.
func TestBrowser_TabsWithoutSharing(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	bob := mustToken(t, base, "bob")
	var tabs []context.Context
	for _, c := range []struct{ name, breakJS string }{
		{"alice", `delete window.BroadcastChannel`},
		{"carol", `Object.defineProperty(window, 'localStorage', {get() { throw new DOMException('blocked', 'SecurityError') }})`},
	} {
		mustToken(t, base, c.name)
		tab, _ := newTab(t, newPerson(t, browser))
		if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: c.breakJS}); err != nil {
			t.Fatal(err)
		}
		login(t, tab, base, c.name)
		waitFor(t, tab, c.name+"'s widget ready", `!!document.querySelector('[data-testid=online-users-widget]') && document.querySelector('[data-testid=online-users-widget]').dataset.state === 'ready'`, 5*time.Second)
		if n, err := chromedp.Run(tab, chromedp.Evaluate[int](`window.__presenceStreams().length`)); err != nil || n != 0 {
			t.Fatalf("%s: %d shared streams (%v), want none", c.name, n, err)
		}
		tabs = append(tabs, tab)
	}
	eventually(t, "a stream per tab", 5*time.Second, func() bool { return metric(t, base, "presence_sse_subscribers") == 2 })
	mustDial(t, base, bob)
	for _, tab := range tabs {
		waitFor(t, tab, "bob shown live", `(`+widgetNames+`).includes('bob')`, 5*time.Second)
	}
}

// TestBrowser_TabsOpenAtOnce: a browser restoring its session loads every
// tab at the same moment, so they all find no leader and race to claim the
// stream. One wins, the others follow, and every tab is live.
func TestBrowser_TabsOpenAtOnce(t *testing.T) {
	browser := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP presence.test 127.0.0.1"))
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	page := strings.Replace(base, "127.0.0.1", "presence.test", 1)
	mustToken(t, base, "alice")
	bob := mustToken(t, base, "bob")
	person := newPerson(t, browser)
	first := openTabs(t, person, page, 1)[0]
	closeTab(t, first) // signed in; now no tab holds the stream

	const n = 8
	tabs := make([]context.Context, n)
	for i := range tabs {
		tabs[i], _ = newTab(t, person)
	}
	errs := make(chan error, n)
	for _, tab := range tabs {
		go func() {
			ctx, cancel := context.WithTimeout(tab, 20*time.Second)
			defer cancel()
			errs <- chromedp.Do(ctx, chromedp.Navigate(page+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)))
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("a tab did not load: %v", err)
		}
	}
	allShow(t, tabs, 10*time.Second)
	eventually(t, "exactly one leader", 5*time.Second, func() bool {
		leaders := 0
		for _, tab := range tabs {
			if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](leaderJS)); ok {
				leaders++
			}
		}
		return leaders == 1
	})
	mustDial(t, base, bob)
	took := allShow(t, tabs, 5*time.Second, "bob")
	t.Logf("all %d tabs showed bob within %v", n, took)
	// Streams a losing claimer opened are closed by the browser; the server
	// notices at its next keep-alive write at the latest.
	eventually(t, "one stream", 20*time.Second, func() bool { return metric(t, base, "presence_sse_subscribers") == 1 })
}
