package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowser_DevicesAndAdmin: in Chromium, "Your devices" marks the tab
// that is looking (presence.js names its tab on the socket and on htmx
// requests), and an administrator's /admin updates its figures over its
// event stream.
func TestBrowser_DevicesAndAdmin(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	mustToken(t, base, "root") // the first account: the administrator
	tab, _ := newTab(t, newPerson(t, browser))
	login(t, tab, base, "root")
	must(t, tab, chromedp.Navigate(base+"/devices"))
	waitFor(t, tab, "this tab is marked", `!!document.querySelector('[data-testid=this-tab]')`, 10*time.Second)

	must(t, tab, chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=figures-chart]`)))
	must(t, tab, chromedp.Evaluate[chromedp.Void](`window.__fig0 = document.querySelector('[data-testid=figures]').parentElement.textContent`))
	waitFor(t, tab, "the figures update over the stream", `document.querySelector('[data-testid=figures]').parentElement.textContent !== window.__fig0`, 8*time.Second)
	waitFor(t, tab, "root's own connection is listed", `!!document.querySelector('[data-testid=admin-user][data-username=root]')`, time.Second)
	// presence.js puts the tab in its page's room; the room column shows it.
	waitFor(t, tab, "the connection's room is its page", `Array.from(document.querySelectorAll('[data-testid=admin-conn]')).some(r => r.textContent.includes('/admin'))`, 10*time.Second)
}
