package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// apiCall makes an authenticated JSON API call and decodes the answer.
func apiCall(tb testing.TB, method, url, token, body string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// befriendAPI makes a and b friends through the JSON API.
func befriendAPI(tb testing.TB, base, aTok, bTok, bName string) {
	tb.Helper()
	code, m := apiCall(tb, "POST", base+"/api/friends/requests/", aTok, `{"username":"`+bName+`"}`)
	if code != 201 {
		tb.Fatalf("friend request: %d %v", code, m)
	}
	id, _ := json.Marshal(m["id"])
	if code, m := apiCall(tb, "POST", base+"/api/friends/requests/"+string(id)+"/accept/", bTok, ""); code != 200 {
		tb.Fatalf("accept: %d %v", code, m)
	}
}

// TestBrowser_ProfileHistory: alice is online in Chromium; bob, her
// friend, sees today's bar on her profile's timeline, drawn with a width,
// from a desktop browser; carol, no friend, sees no timeline.
func TestBrowser_ProfileHistory(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t), "--flush-interval", "100ms"))
	aliceTok := mustToken(t, base, "alice")
	bobTok := mustToken(t, base, "bob")
	mustToken(t, base, "carol")
	befriendAPI(t, base, bobTok, aliceTok, "alice")

	alice, _ := newTab(t, newPerson(t, browser))
	login(t, alice, base, "alice") // her page's socket starts a session

	bob, _ := newTab(t, newPerson(t, browser))
	login(t, bob, base, "bob")
	deadline := time.Now().Add(5 * time.Second)
	for {
		must(t, bob, chromedp.Navigate(base+"/users/alice"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile-history]`)))
		n := mustEval[int](t, bob, `document.querySelectorAll('[data-testid=history-day]:first-child [data-testid=history-bar][data-device=desktop]').length`)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("today's row has %d desktop bars, want 1", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if days := mustEval[int](t, bob, `document.querySelectorAll('[data-testid=history-day]').length`); days != 7 {
		t.Fatalf("%d days on the timeline, want 7", days)
	}
	if w := mustEval[float64](t, bob, `document.querySelector('[data-testid=history-day] svg').getBoundingClientRect().width`); w < 100 {
		t.Fatalf("the day's bar is %v px wide: the timeline's CSS is missing", w)
	}

	carol, _ := newTab(t, newPerson(t, browser))
	login(t, carol, base, "carol")
	must(t, carol, chromedp.Navigate(base+"/users/alice"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=profile]`)))
	if n := mustEval[int](t, carol, `document.querySelectorAll('[data-testid=profile-history]').length`); n != 0 {
		t.Fatal("carol, no friend, sees alice's history")
	}
}

// TestHistoryClosedAtShutdown: a session open when the server stops
// gracefully ends at the stop time, and the next run shows it closed.
func TestHistoryClosedAtShutdown(t *testing.T) {
	data := dataDir(t)
	base, stop := inProcess(t, fastArgs(data, "--flush-interval", "50ms"))
	tok := mustToken(t, base, "alice")
	mustDial(t, base, tok)
	time.Sleep(200 * time.Millisecond)
	code, m := apiCall(t, "GET", base+"/api/users/1/history/", tok, "")
	sessions, _ := m["sessions"].([]any)
	if code != 200 || len(sessions) != 1 || sessions[0].(map[string]any)["end"] != nil {
		t.Fatalf("while online: %d %v, want one open session", code, m)
	}
	before := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	base, _ = inProcess(t, fastArgs(data))
	tok = mustToken(t, base, "alice")
	code, m = apiCall(t, "GET", base+"/api/users/1/history/", tok, "")
	sessions, _ = m["sessions"].([]any)
	if code != 200 || len(sessions) != 1 {
		t.Fatalf("after restart: %d %v, want one session", code, m)
	}
	end, _ := sessions[0].(map[string]any)["end"].(string)
	at, err := time.Parse(time.RFC3339, end)
	if err != nil || at.Before(before.Add(-time.Second)) || at.After(after.Add(time.Second)) {
		t.Fatalf("session ended at %q, want the stop time (%v to %v)", end, before, after)
	}
}
