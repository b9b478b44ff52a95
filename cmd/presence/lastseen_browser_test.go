package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowser_LastSeenVisibility: a user who left shows "Last seen … ago"
// on their profile; once they choose that nobody sees their presence, the
// profile says only "Offline" — while they are online, and after they
// leave again.
func TestBrowser_LastSeenVisibility(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	alice, bob := aliceSeesBob(t, browser, base)
	profile := base + "/users/bob"
	// presenceText loads bob's profile as alice until its presence line
	// satisfies ok (the last seen is written within the flush interval).
	presenceText := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			must(t, alice, chromedp.Navigate(profile), chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile-presence]`)))
			text := strings.TrimSpace(mustEval[string](t, alice, `document.querySelector('[data-testid=profile-presence]').textContent`))
			if ok(text) {
				return text
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: bob's profile says %q", what, text)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	must(t, bob, chromedp.Navigate("about:blank"))
	got := presenceText("bob left, seen by everyone", func(s string) bool { return strings.HasPrefix(s, "Last seen") })
	t.Logf("bob's profile after he left: %q", got)

	must(t, bob,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=status-summary]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=status-summary]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=status-form]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid=status-visibility]`), "nobody"),
		chromedp.Click(chromedp.CSS(`[data-testid=status-save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)),
	)
	if v := mustEval[string](t, bob, `document.querySelector('[data-testid=status-visibility]').value`); v != "nobody" {
		t.Fatalf("bob's menu shows visibility %q after saving nobody", v)
	}
	presenceText("bob online, shows nobody", func(s string) bool { return s == "Offline" })
	must(t, bob, chromedp.Navigate("about:blank"))
	time.Sleep(browserGrace + 500*time.Millisecond)
	presenceText("bob left, shows nobody", func(s string) bool { return s == "Offline" })
}
