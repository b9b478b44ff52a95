package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/presencehq/presence/store"
)

// firstShows is showsExactly for the page's first widget only.
func firstShows(names ...string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(append([]string{}, names...))
	return fmt.Sprintf(`(() => { const w = document.querySelector('[data-testid=online-users-widget]');
		return !!w && w.dataset.state === 'ready' && JSON.stringify(Array.from(w.querySelectorAll('li[data-user-id]:not([hidden]) [data-testid=widget-username]')).map(e => e.textContent)) === %q })()`, strings.TrimSpace(b.String()))
}

// traceJS records, in the page, what each widget's streams and list
// fetches did, for a failure to print.
const traceJS = `
	window.trace = [];
	const widx = el => Array.from(document.querySelectorAll('[data-testid=online-users-widget]')).indexOf(el && el.closest && el.closest('[data-testid=online-users-widget]'));
	const ver = el => { const g = el && el.closest && el.closest('[data-testid=online-users-widget]'); const grid = g && g.querySelector('[data-presence-grid]'); return grid ? grid.dataset.presenceVersion : '-'; };
	const log = s => window.trace.push((performance.now() | 0) + 'ms ' + s);
	document.addEventListener('htmx:sseBeforeMessage', e => { const m = /data-presence-from="([^"]*)" data-presence-to="([^"]*)"/.exec(e.detail.data || ''); log('w' + widx(e.target) + ' ' + e.detail.type + (m ? ' ' + m[1] + '->' + m[2] : '') + ' have ' + ver(e.target) + (e.defaultPrevented ? ' (not applied)' : '')) });
	document.addEventListener('htmx:sseOpen', e => log('w' + widx(e.target) + ' stream open'));
	document.addEventListener('htmx:sseError', e => log('w' + widx(e.target) + ' stream error'));
	document.addEventListener('htmx:beforeRequest', e => log('w' + widx(e.detail.elt) + ' GET ' + e.detail.pathInfo.requestPath + ' have ' + ver(e.detail.elt)));
	document.addEventListener('htmx:beforeSwap', e => { const m = /data-presence-version="([^"]*)"/.exec(e.detail.xhr && e.detail.xhr.responseText || ''); log('w' + widx(e.detail.elt) + ' response ' + (m ? m[1] : '?') + ' have ' + ver(e.detail.elt) + (e.detail.shouldSwap ? ' swap' : ' dropped')) });
`

// TestBrowser_DeltasInOrder: list changes reach the widget as deltas (one
// tile in or out, htmx out-of-band swaps), in real Chromium: tiles go in at
// their place in the order and come out again, a hostile username stays
// text, the viewer stays hidden, and no whole list is fetched meanwhile.
// A second widget on the same page (its own stream, so every delta
// arrives twice) follows every change exactly once.
func TestBrowser_DeltasInOrder(t *testing.T) {
	browser := newBrowser(t)
	data := dataDir(t)
	base, _ := inProcess(t, browserArgs(data))
	mustToken(t, base, "alice")
	tok := map[string]string{}
	for _, name := range []string{"bob1", "cat1", "dan1", "fay1", "zoe1"} {
		tok[name] = mustToken(t, base, name)
	}
	// A hostile name (legacy data that skipped validation); it sorts first.
	const evil = `"]<img src=x onerror=alert(1)>`
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
	evilTok, err := openDB(t, data).CreateToken(context.Background(), id, store.TokenAPI, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	mustDial(t, base, tok["bob1"])
	d1 := mustDial(t, base, tok["dan1"])
	mustDial(t, base, tok["fay1"])
	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	must(t, alice, chromedp.Evaluate[chromedp.Void](traceJS))
	waitFor(t, alice, "the first three", showsExactly("bob1", "dan1", "fay1"), 5*time.Second)
	// The fetch the first widget makes when its stream opens (the shared
	// stream opens once its lease is claimed, ~150 ms after load) is not
	// one of the fetches counted below.
	waitOwnFetches(t, alice)
	// A second widget on the same page, as a host page may embed several:
	// every change must reach both, once.
	must(t, alice, chromedp.Evaluate[chromedp.Void](`
		const slot = document.createElement('div'); slot.id = 'second-widget'; document.body.appendChild(slot);
		htmx.ajax('GET', '/widgets/online-users?max=8', {target: '#second-widget', swap: 'innerHTML'});`))
	waitFor(t, alice, "the second widget", `document.querySelectorAll('#second-widget [data-presence-grid] li[data-user-id]:not([hidden])').length === 3`, 5*time.Second)
	must(t, alice, chromedp.Evaluate[chromedp.Void](`
		window.alerts = 0; window.alert = () => window.alerts++;
		window.deltas = 0; window.lists = 0;
		document.addEventListener('htmx:sseMessage', e => { if (e.detail.type === 'presence-delta') window.deltas++ });
		document.addEventListener('htmx:afterRequest', e => {
			// Whole-list fetches by the first widget (the second fetches its own once it opens).
			if (/\/list/.test(e.detail.pathInfo.requestPath) && e.detail.elt.closest('[data-testid=online-users-widget]') === document.querySelector('[data-testid=online-users-widget]')) window.lists++ });`))

	mustDial(t, base, tok["cat1"])
	waitFor(t, alice, "cat1 in its place", firstShows("bob1", "cat1", "dan1", "fay1"), 5*time.Second)
	mustDial(t, base, evilTok)
	waitFor(t, alice, "the hostile name first, as text", firstShows(evil, "bob1", "cat1", "dan1", "fay1"), 5*time.Second)
	mustDial(t, base, tok["zoe1"])
	waitFor(t, alice, "zoe1 at the end", firstShows(evil, "bob1", "cat1", "dan1", "fay1", "zoe1"), 5*time.Second)
	d1.Close()
	waitFor(t, alice, "dan1 gone after the grace period", firstShows(evil, "bob1", "cat1", "fay1", "zoe1"), browserGrace+5*time.Second)

	r, err := chromedp.Run(alice, chromedp.Evaluate[map[string]any](`({
		Deltas: window.deltas, Lists: window.lists, Alerts: window.alerts,
		Imgs: document.querySelectorAll('img[src=x]').length,
		Tiles: document.querySelector('[data-testid=online-users-widget]').querySelectorAll('[data-presence-grid] li[data-user-id]').length,
		Hidden: document.querySelector('[data-testid=online-users-widget]').querySelectorAll('[data-presence-grid] li[data-user-id][hidden]').length,
		Second: Array.from(document.querySelectorAll('#second-widget [data-presence-grid] li[data-user-id]:not([hidden]) [data-testid=widget-username]')).map(e => e.textContent).join('|'),
		SecondTiles: document.querySelectorAll('#second-widget [data-presence-grid] li[data-user-id]').length,
		Count: document.querySelector('[data-testid=widget-count]').textContent,
		Version: document.querySelector('[data-presence-grid]').dataset.presenceVersion})`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("widget state: %v", r)
	num := func(k string) int { f, _ := r[k].(float64); return int(f) }
	if want := strings.Join([]string{evil, "bob1", "cat1", "fay1", "zoe1"}, "|"); r["Second"] != want || num("SecondTiles") != 6 {
		t.Fatalf("the second widget shows %q in %d tiles, want %q in 6", r["Second"], num("SecondTiles"), want)
	}
	if num("Deltas") < 4 || num("Lists") != 0 {
		trace, _ := chromedp.Run(alice, chromedp.Evaluate[string](`window.trace.join("\n")`))
		t.Logf("what the page saw:\n%s", trace)
		t.Fatalf("%d deltas and %d whole-list fetches for 4 changes: want deltas only", num("Deltas"), num("Lists"))
	}
	if num("Alerts") != 0 || num("Imgs") != 0 {
		t.Fatal("a username was interpreted as markup")
	}
	if num("Tiles") != 6 || num("Hidden") != 1 || r["Count"] != "6 online" {
		t.Fatalf("grid holds %d tiles (%d hidden), count %q: want the 5 others and alice hidden, 6 online", num("Tiles"), num("Hidden"), r["Count"])
	}
}

// TestBrowser_StaleListDropped: a whole list fetched before a delta but
// answered after it (the server rendered it first) must not take the
// widget back to the older list. The test holds the answer of a list
// fetch in the browser until the delta has been applied.
func TestBrowser_StaleListDropped(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	mustToken(t, base, "alice")
	bob, cat := mustToken(t, base, "bob2"), mustToken(t, base, "cat2")
	mustDial(t, base, bob)
	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	waitFor(t, alice, "bob2", firstShows("bob2"), 5*time.Second)
	// The page's own list fetches (on load, on the stream's open) are done.
	held := holdListFetch(t, alice) // rendered by the server with bob2 only
	mustDial(t, base, cat)
	waitFor(t, alice, "cat2 by a delta", firstShows("bob2", "cat2"), 5*time.Second)
	held.release(t)
	names, err := chromedp.Run(alice, chromedp.Evaluate[[]string](widgetNames))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "bob2,cat2" {
		t.Fatalf("after an older list answered, the widget shows %q: want bob2, cat2", names)
	}
}

// TestBrowser_StaleCountDropped: a change that leaves the users shown as
// they were is pushed as the count alone, with a newer count version and
// the same grid version. A list fetch rendered before it but answered
// after it is at the grid's version: without the count's version the
// widget would take it and show the older total until the next change.
func TestBrowser_StaleCountDropped(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t), "--register-limit", "0"))
	aliceTok := mustToken(t, base, "alice")
	// The shared list carries 25 users; these sort before everyone else,
	// so alice's arrival and zzz's change only the count.
	for i := range 25 {
		mustDial(t, base, mustToken(t, base, fmt.Sprintf("aa%02d", i)))
	}
	zz := mustToken(t, base, "zzz")
	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	counts := func(n int) string {
		return fmt.Sprintf(`(() => { const c = document.querySelector('[data-testid=online-users-widget] [data-testid=widget-count]');
			return !!c && c.dataset.presenceTotal === '%d' })()`, n)
	}
	waitFor(t, alice, "26 online, alice among them", counts(26), 5*time.Second)
	must(t, alice, chromedp.Evaluate[chromedp.Void](traceJS+`
		document.addEventListener('htmx:sseBeforeMessage', e => log(e.detail.type + ' ' + (/data-presence-count-version="([^"]*)"/.exec(e.detail.data || '') || [])[1] + ' shown ' + document.querySelector('[data-testid=online-users-widget] [data-testid=widget-count]').dataset.presenceCountVersion));`))
	held := holdListFetch(t, alice) // rendered by the server with 26 online
	mustDial(t, base, zz)
	if _, err := chromedp.Run(alice, chromedp.Poll[bool](counts(27), chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		trace, _ := chromedp.Run(alice, chromedp.Evaluate[string](`window.trace.join("\n") + "\nstreams: " + JSON.stringify(window.__presenceStreams()) `))
		req, _ := http.NewRequest("GET", base+"/widgets/online-users/list", nil)
		req.Header.Set("Authorization", "Bearer "+aliceTok)
		var server string
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			server = regexp.MustCompile(`data-presence-total="\d+" data-presence-count-version="[^"]*"`).FindString(string(b))
		}
		t.Fatalf("27 by the count event: not within 5 s (%v); the server's list: %s; the page saw:\n%s", err, server, trace)
	}
	held.release(t)
	total, err := chromedp.Run(alice, chromedp.Evaluate[string](`document.querySelector('[data-testid=online-users-widget] [data-testid=widget-count]').dataset.presenceTotal`))
	if err != nil {
		t.Fatal(err)
	}
	if total != "27" {
		t.Fatalf("after a list rendered before the count event answered, the widget counts %s: want 27", total)
	}

	// A delta's count goes to every shared count on the page: one from a
	// stream that lags another widget's (here swapped in by hand) must not
	// put an older total back, and a newer one must go in.
	swapCount := func(version, total string) string {
		js := `(() => { const shown = document.querySelector('[data-testid=online-users-widget] [data-testid=widget-count]').dataset.presenceCountVersion;
			const [epoch, n] = shown.split('-'), v = epoch + '-' + (parseInt(n, 10) + %s);
			const sink = document.createElement('div'); document.body.appendChild(sink);
			htmx.swap(sink, '<p hx-swap-oob="innerHTML:[data-presence-shared-count]"><span data-testid="widget-count" data-presence-total="%s" data-presence-count-version="' + v + '">%s online</span></p>', {swapStyle: 'innerHTML'});
			sink.remove();
			return document.querySelector('[data-testid=online-users-widget] [data-testid=widget-count]').dataset.presenceTotal })()`
		got, err := chromedp.Run(alice, chromedp.Evaluate[string](fmt.Sprintf(js, version, total, total)))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := swapCount("-1", "5"); got != "27" {
		t.Fatalf("an older delta count was swapped in: the widget counts %s, want 27", got)
	}
	if got := swapCount("1", "99"); got != "99" {
		t.Fatalf("a newer delta count was not swapped in: the widget counts %s, want 99", got)
	}
}

// heldList is a widget list fetch whose answer the browser holds.
type heldList struct {
	tab    context.Context
	id     fetch.RequestID
	paused chan fetch.RequestID
}

// holdListFetch waits until the page's own list fetches (on load, on the
// stream's open) are done, then makes the widget fetch its list and holds
// the server's answer in the browser (CDP Fetch domain) until release.
func holdListFetch(t *testing.T, tab context.Context) *heldList {
	t.Helper()
	waitOwnFetches(t, tab)
	h := &heldList{tab: tab, paused: make(chan fetch.RequestID, 8)}
	if err := chromedp.Listen(tab, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			h.paused <- e.RequestID
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: "*/widgets/online-users/list*", RequestStage: fetch.RequestStageResponse}}}); err != nil {
		t.Fatal(err)
	}
	must(t, tab, chromedp.Evaluate[chromedp.Void](`
		window.listAnswers = 0;
		document.addEventListener('htmx:afterRequest', e => { if (/\/list/.test(e.detail.pathInfo.requestPath)) window.listAnswers++ });
		htmx.trigger(document.querySelector('[data-presence-list]'), 'presence:refresh');`))
	select {
	case h.id = <-h.paused:
	case <-time.After(5 * time.Second):
		t.Fatal("the list fetch never reached the browser")
	}
	return h
}

// release lets the held answer through and waits until the widget has
// handled it. It fails t if the widget fetched its list again meanwhile:
// an event it should have applied made it resync instead.
func (h *heldList) release(t *testing.T) {
	t.Helper()
	if _, err := chromedp.Call(h.tab, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: h.id}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(h.tab, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if len(h.paused) > 0 {
		t.Fatal("the widget fetched its list again while the first fetch was held: an event was not applied")
	}
	waitFor(t, h.tab, "the held list answered", `window.listAnswers === 1`, 5*time.Second)
}

// waitOwnFetches waits until the page's widget has made the list fetches
// it makes by itself, on load and when its stream opens, and has their
// answers.
func waitOwnFetches(t *testing.T, tab context.Context) {
	t.Helper()
	waitFor(t, tab, "the page's own fetches", `performance.getEntriesByType('resource').filter(e => /\/widgets\/online-users\/list/.test(e.name)).length >= 2 && !document.querySelector('[data-presence-list]').__presenceInflight`, 5*time.Second)
}
