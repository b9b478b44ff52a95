package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowser_FriendsWidget: alice asks bob from his profile, bob accepts
// on his friends page; alice's friends-scoped widget then shows bob only
// (not carol, online but no friend), live: bob leaves and comes back, and
// with notices on a toast says so; bob removing alice takes him off her
// widget at once.
func TestBrowser_FriendsWidget(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	for _, n := range []string{"alice", "bob", "carol"} {
		mustToken(t, base, n)
	}
	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	bobPerson := newPerson(t, browser)
	bob, closeBob := newTab(t, bobPerson)
	login(t, bob, base, "bob")
	carol, _ := newTab(t, newPerson(t, browser))
	login(t, carol, base, "carol")

	// The profile button asks; the friends page accepts.
	must(t, alice,
		chromedp.Navigate(base+"/users/bob"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-friend]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=withdraw-friend]`)),
	)
	must(t, bob,
		chromedp.Navigate(base+"/friends"),
		chromedp.Click(chromedp.CSS(`[data-testid=incoming-request][data-username=alice] [data-testid=accept]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=friend][data-username=alice]`)),
	)
	must(t, alice,
		chromedp.Navigate(base+"/friends"),
		chromedp.Click(chromedp.CSS(`[data-testid=notify-toggle]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=notify-toggle][aria-pressed=true]`)),
	)
	waitFor(t, alice, "alice's friends widget shows bob, not carol", showsExactly("bob"), 5*time.Second)

	// Bob's last tab closes: gone after the grace period, live.
	closeBob()
	waitFor(t, alice, "bob gone from the friends widget", showsExactly()+` && !document.querySelector('[data-testid=widget-empty]').classList.contains('hidden')`, browserGrace+5*time.Second)

	// He comes back: shown again, with a toast.
	bob, _ = newTab(t, bobPerson)
	must(t, bob, chromedp.Navigate(base+"/friends"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=friend][data-username=alice]`)))
	took := waitFor(t, alice, "bob back in the friends widget", showsExactly("bob"), 3*time.Second)
	t.Logf("bob reappeared in alice's friends widget %v after his page loaded", took)
	waitFor(t, alice, "a toast says bob is online", `Array.from(document.querySelectorAll('[data-testid=friend-toast]')).some(e => e.textContent.includes('bob'))`, 3*time.Second)
	if n, _ := chromedp.Run(alice, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid=friend-toast]').length`)); n != 1 {
		t.Fatalf("%d toasts, want 1", n)
	}

	// Bob removes alice: she loses him at once, although he is online.
	must(t, bob, chromedp.Click(chromedp.CSS(`[data-testid=friend][data-username=alice] [data-testid=remove]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=friends-notice]`)))
	waitFor(t, alice, "bob gone after the unfriending", showsExactly(), 3*time.Second)
}
