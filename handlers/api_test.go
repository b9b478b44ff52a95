package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
)

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

func TestAPIRegister(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	url := ts.URL + "/api/auth/register/"
	t.Run("OK", func(t *testing.T) {
		code, body := do(t, nil, "POST", url, `{"username":"alice","password":"password1"}`, jsonHeader)
		var got struct {
			ID       int64  `json:"id"`
			Username string `json:"username"`
		}
		if code != 201 || json.Unmarshal([]byte(body), &got) != nil || got.ID == 0 || got.Username != "alice" {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("ErrTaken", func(t *testing.T) {
		code, body := do(t, nil, "POST", url, `{"username":"ALICE","password":"password1"}`, jsonHeader)
		if code != 409 || !strings.Contains(body, `"detail"`) {
			t.Fatalf("%d %s", code, body)
		}
	})
	for name, body := range map[string]string{
		"ErrShortName":     `{"username":"al","password":"password1"}`,
		"ErrBadCharacters": `{"username":"<b>x</b>","password":"password1"}`,
		"ErrShortPassword": `{"username":"carol","password":"short"}`,
		"ErrMissing":       `{"username":"carol"}`,
		"ErrMalformed":     `{"username":`,
		"ErrNotJSON":       `hello`,
		"ErrEmpty":         ``,
	} {
		t.Run(name, func(t *testing.T) {
			code, resp := do(t, nil, "POST", url, body, jsonHeader)
			var d map[string]string
			if code != 400 || json.Unmarshal([]byte(resp), &d) != nil || d["detail"] == "" {
				t.Fatalf("%d %s", code, resp)
			}
		})
	}
	t.Run("ErrTooLarge", func(t *testing.T) {
		code, _ := do(t, nil, "POST", url, `{"username":"`+strings.Repeat("a", 1<<20)+`"}`, jsonHeader)
		if code != 413 {
			t.Fatalf("code = %d, want 413", code)
		}
	})
	t.Run("FormBody", func(t *testing.T) {
		code, body := do(t, nil, "POST", url, "username=dave&password=password1",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
		if code != 201 {
			t.Fatalf("%d %s", code, body)
		}
	})
}

func TestAPIToken(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	url := ts.URL + "/api/auth/token/"
	t.Run("OK", func(t *testing.T) {
		code, body := do(t, nil, "POST", url, `{"username":"alice","password":"password1"}`, jsonHeader)
		var got map[string]string
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got["token_type"] != "Bearer" || got["access"] == "" {
			t.Fatalf("%d %s", code, body)
		}
		if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(got["access"])); code != 200 {
			t.Fatalf("new token refused: %d", code)
		}
	})
	for name, body := range map[string]string{
		"ErrWrongPassword": `{"username":"alice","password":"password2"}`,
		"ErrUnknownUser":   `{"username":"mallory","password":"password1"}`,
	} {
		t.Run(name, func(t *testing.T) {
			code, resp := do(t, nil, "POST", url, body, jsonHeader)
			if code != 401 || !strings.Contains(resp, "no active account") {
				t.Fatalf("%d %s", code, resp)
			}
		})
	}
}

func TestAPIOnlineUsers(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")
	bob, tokB := ts.MustCreateUser(t, "bob")
	_, tokC := ts.MustCreateUser(t, "carol")
	ts.MustDial(t, tokA)
	ts.MustDial(t, tokB)
	eventually(t, "both online", func() bool { n, _ := ts.Engine.Counts(); return n == 2 })

	type item struct {
		ID              int64   `json:"id"`
		Username        string  `json:"username"`
		ProfileImageURL *string `json:"profile_image_url"`
		IsOnline        bool    `json:"is_online"`
		LastSeen        *string `json:"last_seen"`
		LastActivity    *string `json:"last_activity"`
	}
	get := func(t *testing.T, path, tok string) []item {
		t.Helper()
		code, body := do(t, nil, "GET", ts.URL+path, "", bearer(tok))
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var out []item
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		// Every field of the contract is present, even when null.
		var raw []map[string]any
		json.Unmarshal([]byte(body), &raw)
		for _, r := range raw {
			for _, k := range []string{"id", "username", "profile_image_url", "is_online", "last_seen", "last_activity"} {
				if _, ok := r[k]; !ok {
					t.Fatalf("field %q missing in %s", k, body)
				}
			}
		}
		return out
	}

	t.Run("ExcludesRequester", func(t *testing.T) {
		got := get(t, "/api/users/online/", tokA)
		if len(got) != 1 || got[0].ID != bob.ID || !got[0].IsOnline || got[0].LastActivity == nil {
			t.Fatalf("alice sees %+v, want only bob", got)
		}
	})
	t.Run("AliasPath", func(t *testing.T) {
		got := get(t, "/api/auth/online/", tokC)
		if len(got) != 2 || got[0].ID != alice.ID || got[1].ID != bob.ID {
			t.Fatalf("carol sees %+v, want alice and bob", got)
		}
	})
	t.Run("EmptyIsArray", func(t *testing.T) {
		ts2 := MustStartServer(t, handlers.Config{})
		_, tok := ts2.MustCreateUser(t, "zed")
		code, body := do(t, nil, "GET", ts2.URL+"/api/users/online/", "", bearer(tok))
		if code != 200 || strings.TrimSpace(body) != "[]" {
			t.Fatalf("%d %q, want []", code, body)
		}
	})
	t.Run("ErrNoAuth", func(t *testing.T) {
		code, body := do(t, nil, "GET", ts.URL+"/api/users/online/", "", nil)
		if code != 401 || !strings.Contains(body, `"detail"`) {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("ErrBadToken", func(t *testing.T) {
		code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer("prs_nope"))
		if code != 401 {
			t.Fatalf("code = %d", code)
		}
	})
	t.Run("ErrBadScheme", func(t *testing.T) {
		code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", http.Header{"Authorization": {"Basic " + tokA}})
		if code != 401 {
			t.Fatalf("code = %d", code)
		}
	})
}

func TestHealthz(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	code, body := do(t, nil, "GET", ts.URL+"/healthz", "", nil)
	if code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("%d %s", code, body)
	}
	ts.DB.Close()
	code, body = do(t, nil, "GET", ts.URL+"/healthz", "", nil)
	if code != 503 || !strings.Contains(body, "unavailable") {
		t.Fatalf("with the database closed: %d %s", code, body)
	}
}

func TestMetrics(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	_, tok := ts.MustCreateUser(t, "alice")
	ts.MustDial(t, tok)
	code, body := do(t, nil, "GET", ts.URL+"/metrics", "", nil)
	for _, want := range []string{"presence_users_online 1", "presence_websockets_open 1", "presence_db_write_transactions_total "} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q: %s", want, body)
		}
	}
}

// TestLoginRateLimit: an account gets 10 failed password checks from one
// address, and the answer does not reveal whether it exists; an address
// gets its own budget across accounts. The limits run on the server's fake
// clock, so a slow machine cannot refill them mid-test; advancing it does.
func TestLoginRateLimit(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{LoginPerMinute: 30})
	ts.MustCreateUser(t, "alice")
	try := func(name string) (int, http.Header) {
		req, _ := http.NewRequest("POST", ts.URL+"/api/auth/token/", strings.NewReader(`{"username":"`+name+`","password":"guess-guess"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for _, name := range []string{"alice", "nobody"} {
		for i := range 10 {
			if code, _ := try(name); code != 401 {
				t.Fatalf("%s attempt %d: %d, want 401", name, i, code)
			}
		}
		code, h := try(name)
		if code != 429 || h.Get("Retry-After") == "" {
			t.Fatalf("%s 11th attempt: %d Retry-After=%q, want 429", name, code, h.Get("Retry-After"))
		}
	}
	// The HTML form shares the account's budget.
	code, body := do(t, browser(t), "POST", ts.URL+"/login", "username=ALICE&password=password1", formHeader)
	if code != 429 || !strings.Contains(body, "too many login attempts") {
		t.Fatalf("form login over the limit: %d", code)
	}
	// 23 checks so far from this address; fresh accounts still get through
	// until the address's 30 are spent.
	for i := range 7 {
		if code, _ := try(fmt.Sprintf("fresh%d", i)); code != 401 {
			t.Fatalf("fresh account %d: %d, want 401", i, code)
		}
	}
	if code, _ := try("fresh-last"); code != 429 {
		t.Fatalf("31st check from one address: %d, want 429", code)
	}
	// Two seconds on, the address has one check again (30 a minute).
	ts.Clock.Advance(2 * time.Second)
	if code, _ := try("fresh-later"); code != 401 {
		t.Fatalf("after the refill: %d, want 401", code)
	}
	if code, _ := try("fresh-later2"); code != 429 {
		t.Fatalf("refilled beyond the rate: %d, want 429", code)
	}
}

// failingPersister is a database whose writes fail (disk full).
type failingPersister struct{}

func (failingPersister) SavePresence(context.Context, []presence.Record) error {
	return errors.New("disk I/O error: database or disk is full")
}

// TestHealthzDegraded: failing presence writes are reported as degraded
// (200, so a load balancer keeps the node), presence keeps working, and
// the internal error is not shown.
func TestHealthzDegraded(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	b := presence.NewBatcher(failingPersister{}, presence.NewFakeClock(t0), time.Second, nil)
	h, err := handlers.New(handlers.Deps{Store: ts.DB, Engine: ts.Engine, Batcher: b,
		Sessions: sessions.NewCookieStore(make([]byte, 64), make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Shutdown(ctx)
	b.RecordStatus(1, true, time.Time{})
	if err := b.Flush(ctx); err == nil {
		t.Fatal("flush to a full disk succeeded")
	}
	code, body := do(t, nil, "GET", srv.URL+"/healthz", "", nil)
	if code != 200 || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, "failing; retrying") || strings.Contains(body, "disk I/O") {
		t.Fatalf("%d %s", code, body)
	}
	if b.Pending() != 1 {
		t.Fatalf("the failed change was dropped: %d pending", b.Pending())
	}
	_, metrics := do(t, nil, "GET", srv.URL+"/metrics", "", nil)
	if !strings.Contains(metrics, "presence_persist_failing 1") {
		t.Fatal("metrics do not show the failing writes")
	}
}

func TestRegisterRateLimit(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{RegisterPerHour: 3})
	for i := range 3 {
		if code, body := do(t, nil, "POST", ts.URL+"/api/auth/register/", fmt.Sprintf(`{"username":"user%d","password":"password1"}`, i), jsonHeader); code != 201 {
			t.Fatalf("account %d: %d %s", i, code, body)
		}
	}
	code, body := do(t, nil, "POST", ts.URL+"/api/auth/register/", `{"username":"user9","password":"password1"}`, jsonHeader)
	if code != 429 || !strings.Contains(body, "too many new accounts") {
		t.Fatalf("4th account: %d %s", code, body)
	}
	if code, _ := do(t, browser(t), "POST", ts.URL+"/register", "username=user8&password=password1", formHeader); code != 429 {
		t.Fatalf("4th account by form: %d", code)
	}
}
