package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/presencehq/presence/handlers"
)

const (
	chromeLinux    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	firefoxWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
)

// sessionHeader is the Cookie header of a signed-in test browser, with a
// User-Agent, for dialling the WebSocket as that browser.
func sessionHeader(tb testing.TB, ts *testServer, b *http.Client, ua string) http.Header {
	tb.Helper()
	u, _ := url.Parse(ts.URL)
	var parts []string
	for _, c := range b.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	if len(parts) == 0 {
		tb.Fatal("browser has no cookies")
	}
	return http.Header{"Cookie": {strings.Join(parts, "; ")}, "User-Agent": {ua}}
}

type device struct {
	ID           string `json:"id"`
	Browser      string `json:"browser"`
	OS           string `json:"os"`
	Kind         string `json:"kind"`
	Label        string `json:"label"`
	Since        string `json:"since"`
	LastActivity string `json:"last_activity"`
	Current      bool   `json:"current"`
	ThisTab      bool   `json:"this_tab"`
}

func listDevices(tb testing.TB, ts *testServer, client *http.Client, h http.Header) []device {
	tb.Helper()
	code, body := do(tb, client, "GET", ts.URL+"/api/users/me/devices/", "", h)
	if code != 200 {
		tb.Fatalf("devices: %d %s", code, body)
	}
	var out []device
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		tb.Fatalf("devices: %v in %s", err, body)
	}
	return out
}

// A user's devices are their live sockets, with browser and OS from the
// User-Agent; signing one out closes it (1008) and ends the session that
// opened it, and touches nothing else.
func TestDevices_ListAndSignOut(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "root") // the first account: an administrator
	alice, aliceTok := ts.MustCreateUser(t, "alice")
	_, bobTok := ts.MustCreateUser(t, "bob")

	b := signedIn(t, ts, "alice")
	sessWS := ts.MustDialHeader(t, "?events=0&tab=tab-1", sessionHeader(t, ts, b, chromeLinux))
	tokWS := ts.MustDialHeader(t, "?token="+aliceTok, http.Header{"User-Agent": {firefoxWindows}})
	bobWS := ts.MustDial(t, bobTok)
	tokWS.ping() // an application ping: last activity moves (on the fake clock, not here)

	h := sessionHeader(t, ts, b, chromeLinux)
	h.Set("X-Presence-Tab", "tab-1")
	devs := listDevices(t, ts, nil, h)
	if len(devs) != 2 {
		t.Fatalf("alice has %d devices, want 2: %+v", len(devs), devs)
	}
	var sess, tok device
	for _, d := range devs {
		if d.Current {
			sess = d
		} else {
			tok = d
		}
	}
	if sess.Browser != "Chrome" || sess.OS != "Linux" || !sess.ThisTab || sess.Label != "Chrome on Linux" {
		t.Fatalf("session device = %+v", sess)
	}
	if tok.Browser != "Firefox" || tok.OS != "Windows" || tok.ThisTab || tok.Since == "" || tok.LastActivity == "" {
		t.Fatalf("token device = %+v", tok)
	}
	if len(sess.ID) < 20 {
		t.Fatalf("id %q is too short to be unguessable", sess.ID)
	}

	// The page lists them too, marking this browser's.
	code, body := do(t, b, "GET", ts.URL+"/devices", "", nil)
	doc := mustDoc(t, body)
	if code != 200 || doc.Find(`[data-testid="device"]`).Length() != 2 || doc.Find(`[data-testid="this-browser"]`).Length() != 1 {
		t.Fatalf("/devices: %d, %d devices, %d marked", code, doc.Find(`[data-testid="device"]`).Length(), doc.Find(`[data-testid="this-browser"]`).Length())
	}
	// The list fragment, as presence.js asks for it, marks this tab.
	code, body = do(t, b, "GET", ts.URL+"/devices/list", "", http.Header{"X-Presence-Tab": {"tab-1"}})
	if code != 200 || mustDoc(t, body).Find(`[data-testid="this-tab"]`).Length() != 1 {
		t.Fatalf("/devices/list: %d %s", code, body)
	}

	// Bob can neither see nor sign out alice's devices.
	if devs := listDevices(t, ts, nil, bearer(bobTok)); len(devs) != 1 {
		t.Fatalf("bob sees %d devices, want his 1", len(devs))
	}
	if code, body := do(t, nil, "DELETE", ts.URL+"/api/users/me/devices/"+sess.ID+"/", "", bearer(bobTok)); code != 404 {
		t.Fatalf("bob deleting alice's device: %d %s", code, body)
	}
	sessWS.ping() // still open

	// Alice signs her browser out from her API client.
	if code, body := do(t, nil, "DELETE", ts.URL+"/api/users/me/devices/"+sess.ID+"/", "", bearer(aliceTok)); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	sessWS.expectEnded("signed out from the devices list")
	if code, _ := do(t, b, "GET", ts.URL+"/devices", "", nil); code != http.StatusSeeOther {
		t.Fatalf("the signed-out browser still gets /devices: %d", code)
	}
	tokWS.ping()
	bobWS.ping()
	if devs := listDevices(t, ts, nil, bearer(aliceTok)); len(devs) != 1 || devs[0].ID != tok.ID {
		t.Fatalf("after sign-out: %+v", devs)
	}
	if code, _ := do(t, nil, "DELETE", ts.URL+"/api/users/me/devices/"+sess.ID+"/", "", bearer(aliceTok)); code != 404 {
		t.Fatalf("deleting a gone device: %d, want 404", code)
	}
	for _, bad := range []string{"x", strings.Repeat("A", 200), "%00"} {
		if code, body := do(t, nil, "DELETE", ts.URL+"/api/users/me/devices/"+bad+"/", "", bearer(aliceTok)); code != 404 || !strings.Contains(body, "detail") {
			t.Fatalf("delete %q: %d %s", bad, code, body)
		}
	}
	_, metrics := do(t, nil, "GET", ts.URL+"/metrics", "", nil)
	if !strings.Contains(metrics, "presence_websockets_closed_by_request_total 1\n") {
		t.Fatalf("metrics do not count the sign-out:\n%s", metrics)
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/api/users/me/devices/", "", nil); code != 401 {
		t.Fatalf("anonymous devices: %d", code)
	}
	_ = alice
}

// The page's sign-out button is a same-origin form post; signing out
// another device of one's own closes it and returns to the list.
func TestDevices_PageSignOut(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "root")
	ts.MustCreateUser(t, "alice")
	laptop, phone := signedIn(t, ts, "alice"), signedIn(t, ts, "alice")
	ts.MustDialHeader(t, "?events=0", sessionHeader(t, ts, laptop, chromeLinux))
	phoneWS := ts.MustDialHeader(t, "?events=0", sessionHeader(t, ts, phone, firefoxWindows))

	_, body := do(t, laptop, "GET", ts.URL+"/devices", "", nil)
	var phoneID string
	mustDoc(t, body).Find(`[data-testid="device"]`).Each(func(_ int, s *goquery.Selection) {
		if strings.Contains(s.Text(), "Firefox on Windows") {
			phoneID, _ = s.Attr("data-device-id")
		}
	})
	if phoneID == "" {
		t.Fatalf("phone not listed: %s", body)
	}
	// A cross-site form post is refused (CSRF).
	if code, _ := do(t, laptop, "POST", ts.URL+"/devices/"+phoneID+"/sign-out", "", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); code != 403 {
		t.Fatalf("cross-site sign-out: %d, want 403", code)
	}
	phoneWS.ping()
	code, _ := do(t, laptop, "POST", ts.URL+"/devices/"+phoneID+"/sign-out", "", nil)
	if code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	phoneWS.expectEnded("signed out from the devices list")
	if code, _ := do(t, phone, "GET", ts.URL+"/online", "", nil); code != http.StatusSeeOther {
		t.Fatalf("the phone's session still works: %d", code)
	}
	if code, _ := do(t, laptop, "GET", ts.URL+"/online", "", nil); code != 200 {
		t.Fatalf("the laptop was signed out too: %d", code)
	}
}
