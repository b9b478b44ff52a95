package main

import (
	"bufio"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// startDemoServer runs `presence serve --demo` in process and returns its
// base URL, its throwaway data dir and a stop function.
func startDemoServer(t *testing.T) (base, data string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--addr", "127.0.0.1:0", "--log-level", "warn"},
			func(string) string { return "" }, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		var addr string
		for sc.Scan() {
			if _, a, ok := strings.Cut(sc.Text(), "listening on "); ok {
				addr = a
			}
			if _, rest, ok := strings.Cut(sc.Text(), "; data in "); ok {
				dir, _, _ := strings.Cut(rest, " (removed at exit)")
				found <- [2]string{addr, dir}
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case f := <-found:
		base, data = f[0], f[1]
	case err := <-done:
		t.Fatalf("serve --demo returned %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not start")
	}
	waitHealthy(t, base)
	stopped := false
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("run did not return after cancel")
			}
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return base, data, stop
}

// The demo's people are real WebSocket clients of the server: they show
// up in its socket counts within seconds, come and go (new sockets keep
// being accepted), carry avatars the server draws, and one click signs a
// visitor in as one of them. The throwaway data dir is gone at exit.
func TestDemo_PeopleConnectOverWebSocket(t *testing.T) {
	base, data, stop := startDemoServer(t)
	if _, err := os.Stat(data); err != nil {
		t.Fatalf("demo data dir: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, base, "presence_websockets_open") < 15 || metric(t, base, "presence_users_online") < 15 {
		if time.Now().After(deadline) {
			t.Fatalf("only %v sockets, %v users online after 10 s", metric(t, base, "presence_websockets_open"), metric(t, base, "presence_users_online"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	accepted := metric(t, base, "presence_websockets_accepted_total")
	deadline = time.Now().Add(10 * time.Second)
	for metric(t, base, "presence_websockets_accepted_total") <= accepted {
		if time.Now().After(deadline) {
			t.Fatal("nobody new arrived within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Through the API as ada: people online, with the demo's avatars.
	resp, err := testClient.Post(base+"/api/auth/token/", "application/json", strings.NewReader(`{"username":"ada","password":"`+demoPassword+`"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token for ada: %v %v", err, resp.Status)
	}
	var tok struct{ Access string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/api/users/online/", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Access)
	resp, err = testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var online []struct {
		Username        string `json:"username"`
		ProfileImageURL string `json:"profile_image_url"`
		Mode            string `json:"mode"`
		StatusText      string `json:"status_text"`
	}
	json.NewDecoder(resp.Body).Decode(&online)
	resp.Body.Close()
	if len(online) < 10 || !strings.HasPrefix(online[0].ProfileImageURL, "/demo/avatars/") {
		t.Fatalf("online: %+v", online)
	}
	// People set modes and status texts through the API as they arrive
	// (8 of the 10 demo statuses have one: all 10+ without is ~1e-7).
	withStatus := 0
	for _, p := range online {
		if p.StatusText != "" || p.Mode != "online" {
			withStatus++
		}
	}
	if withStatus == 0 {
		t.Fatalf("no demo person shows a mode or status: %+v", online)
	}
	resp, err = testClient.Get(base + online[0].ProfileImageURL)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("avatar: %v %v", err, resp)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || img.Bounds().Dx() != 64 {
		t.Fatalf("avatar is not a 64 px PNG: %v", err)
	}

	// One click signs a visitor in; the banner says it is a demo.
	jar, _ := cookiejar.New(nil)
	visitor := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err = visitor.Post(base+"/demo/sign-in", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `data-testid="demo-banner"`) || !strings.Contains(string(body), `data-testid="greeting"`) {
		t.Fatalf("after demo sign-in: %d %.300s", resp.StatusCode, body)
	}

	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("demo data dir %s still there after exit: %v", data, err)
	}
}

// TestBrowser_DemoComeAndGo: seconds after `serve --demo`, one click in
// Chromium signs in, and the widget shows simulated people arriving and
// leaving within 5 s.
func TestBrowser_DemoComeAndGo(t *testing.T) {
	browser := newBrowser(t)
	base, _, _ := startDemoServer(t)
	tab, _ := newTab(t, newPerson(t, browser))
	must(t, tab,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=demo-banner]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=demo-sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=greeting]`)),
	)
	waitFor(t, tab, "the widget shows demo people", `(() => {
		const w = document.querySelector('[data-testid=online-users-widget]');
		return !!w && w.dataset.state === 'ready' && w.querySelectorAll('li[data-user-id]').length > 0;
	})()`, 10*time.Second)
	// Every user in the list (those past the widget's max are hidden, not
	// absent) and the count: someone new arrives, someone shown leaves.
	must(t, tab, chromedp.Evaluate[chromedp.Void](`(() => {
		window.__demoNames = () => Array.from(document.querySelectorAll('[data-testid=online-users-widget] li[data-user-id] [data-testid=widget-username]')).map(e => e.textContent);
		window.__demoCount = () => { const c = document.querySelector('[data-testid=widget-count]'); return c ? +c.dataset.presenceTotal : -1; };
		window.__demo0 = new Set(window.__demoNames());
		window.__count0 = window.__demoCount();
		window.__came = false; window.__went = false;
	})()`))
	took := waitFor(t, tab, "people come and go", `(() => {
		const now = window.__demoNames(), set = new Set(now), c = window.__demoCount();
		if (now.some(n => !window.__demo0.has(n)) || c > window.__count0) window.__came = true;
		if ([...window.__demo0].some(n => !set.has(n)) || (c >= 0 && c < window.__count0)) window.__went = true;
		return window.__came && window.__went;
	})()`, 5*time.Second)
	t.Logf("saw people come and go within %v", took)
	waitFor(t, tab, "the demo avatars load", `Array.from(document.querySelectorAll('[data-testid=online-users-widget] img')).some(i => i.src.includes('/demo/avatars/') && i.complete && i.naturalWidth === 64)`, 5*time.Second)
}
