package main

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowser_RoomViewers: two people on the same profile page see each
// other in its "viewing this profile now" room widget, live: bob arrives
// after alice and appears on her page; someone on another page does not;
// bob moving on leaves the room after the grace period; a reload does not
// make him flicker out.
func TestBrowser_RoomViewers(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		mustToken(t, base, n)
	}
	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice")
	bob, _ := newTab(t, newPerson(t, browser))
	login(t, bob, base, "bob")
	dave, _ := newTab(t, newPerson(t, browser))
	login(t, dave, base, "dave")

	must(t, alice, chromedp.Navigate(base+"/users/carol"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile-viewers]`)))
	must(t, dave, chromedp.Navigate(base+"/users/alice")) // another page: another room
	waitFor(t, alice, "alice alone on carol's profile", showsExactly()+` && !document.querySelector('[data-testid=widget-empty]').classList.contains('hidden')`, 5*time.Second)

	must(t, bob, chromedp.Navigate(base+"/users/carol"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile-viewers]`)))
	took := waitFor(t, alice, "alice sees bob viewing carol's profile", showsExactly("bob"), 5*time.Second)
	t.Logf("bob appeared on alice's page %v after his page loaded", took)
	// Bob's page was rendered with alice already in it.
	waitFor(t, bob, "bob sees alice viewing carol's profile", showsExactly("alice")+
		` && document.querySelector('[data-testid=widget-count]').textContent.trim() === '1 here'`, 5*time.Second)

	// A reload is no leave: alice never sees bob go.
	mustEval[bool](t, alice, `(function(){
		window.__sawBobGo = false;
		new MutationObserver(function(){
			if (!document.querySelector('[data-testid=online-users-widget] li[data-user-id] [data-username=bob]')) window.__sawBobGo = true;
		}).observe(document.querySelector('[data-testid=online-users-widget]'), {subtree: true, childList: true});
		return true;
	})()`)
	must(t, bob, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile-viewers]`)))
	time.Sleep(browserGrace + time.Second)
	if gone := mustEval[bool](t, alice, `window.__sawBobGo`); gone {
		t.Fatal("bob flickered out of the room on reload")
	}
	waitFor(t, alice, "bob still viewing after his reload", showsExactly("bob"), 2*time.Second)

	// Bob moves on: he leaves carol's room after the grace period.
	must(t, bob, chromedp.Navigate(base+"/online"))
	waitFor(t, alice, "bob gone from carol's viewers", showsExactly(), browserGrace+5*time.Second)

	// A single-page app moves its tab without a navigation:
	// presenceRoom(name) sends the room message.
	must(t, bob, chromedp.Navigate(base+"/users/carol"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile-viewers]`)))
	waitFor(t, alice, "bob back on carol's profile", showsExactly("bob"), 5*time.Second)
	mustEval[bool](t, alice, `(window.presenceRoom("/docs/spa-view"), true)`)
	waitFor(t, bob, "alice gone from carol's viewers after presenceRoom", showsExactly(), browserGrace+5*time.Second)
}

// TestBrowser_EmbedRoom: a host site scopes its embed.js widget to a room
// of its choosing (data-room): two of its users on the same document see
// each other there, live; one on another document does not appear, and
// appears once they open the same document.
func TestBrowser_EmbedRoom(t *testing.T) {
	browser := newBrowser(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	base, _ := inProcess(t, browserArgs(dataDir(t), "--jwt-secret", testJWTSecret, "--allowed-origins", host))

	// /doc?id=N&user=U: document N as host user U sees it.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>doc</title></head><body><h1>Document %s</h1>
<script src="%s/embed.js" data-token="%s" data-room="%s" data-title="Editing now" async></script>
</body></html>`, html.EscapeString(q.Get("id")), base, signed(t, q.Get("user"), q.Get("user")), html.EscapeString("doc-"+q.Get("id")))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ann, _ := newTab(t, newPerson(t, browser))
	ben, _ := newTab(t, newPerson(t, browser))
	cat, _ := newTab(t, newPerson(t, browser))
	must(t, ann, chromedp.Navigate(host+"/doc?id=42&user=ann"))
	must(t, cat, chromedp.Navigate(host+"/doc?id=7&user=cat"))
	waitFor(t, ann, "ann alone in doc-42", showsExactly(), 10*time.Second)
	must(t, ben, chromedp.Navigate(host+"/doc?id=42&user=ben"))
	waitFor(t, ann, "ann sees ben arrive in doc-42", showsExactly("ben"), 5*time.Second)
	waitFor(t, ben, "ben sees ann in doc-42", showsExactly("ann"), 10*time.Second)
	waitFor(t, cat, "cat alone in doc-7", showsExactly(), 5*time.Second)
	if title := mustEval[string](t, ann, `document.querySelector('[data-testid=widget-title]').textContent`); title != "Editing now" {
		t.Fatalf("title %q", title)
	}
	must(t, cat, chromedp.Navigate(host+"/doc?id=42&user=cat"))
	waitFor(t, ann, "ann sees cat join doc-42", showsExactly("ben", "cat"), 5*time.Second)
}
