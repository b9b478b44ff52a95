package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/presencehq/presence/handlers"
)

// TestFirstRun follows a new operator: an empty server says what it is and
// offers the first account; that account, made through the form, is the
// administrator and the header says so; the next account is not.
func TestFirstRun(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	anon := browser(t)

	_, body := do(t, anon, "GET", ts.URL+"/", "", nil)
	doc := mustDoc(t, body)
	if doc.Find(`[data-testid="first-run"]`).Length() != 1 {
		t.Fatalf("empty database: no first-run section:\n%s", body)
	}
	link := doc.Find(`a[data-testid="create-first-account"]`)
	if href, _ := link.Attr("href"); href != "/register" || strings.TrimSpace(link.Text()) != "Create the first account" {
		t.Fatalf("first-run link = %q %q", href, link.Text())
	}
	_, body = do(t, anon, "GET", ts.URL+"/register", "", nil)
	if mustDoc(t, body).Find(`[data-testid="first-account"]`).Length() != 1 {
		t.Fatal("register page does not say the first account becomes the administrator")
	}

	admin := browser(t)
	if code, body := do(t, admin, "POST", ts.URL+"/register", "username=founder&password=password1", formHeader); code != http.StatusSeeOther {
		t.Fatalf("first registration: %d %s", code, body)
	}
	_, body = do(t, admin, "GET", ts.URL+"/", "", nil)
	doc = mustDoc(t, body)
	if doc.Find(`[data-testid="nav-admin"]`).Length() != 1 || strings.TrimSpace(doc.Find(`[data-testid="nav-user"]`).Text()) != "founder" {
		t.Fatalf("the first account's header has no admin mark:\n%s", body)
	}

	// Once an account exists, the signed-out home page is the usual one.
	_, body = do(t, anon, "GET", ts.URL+"/", "", nil)
	doc = mustDoc(t, body)
	if doc.Find(`[data-testid="first-run"]`).Length() != 0 || !strings.Contains(doc.Text(), "create an account") {
		t.Fatalf("after the first account, still the first-run page:\n%s", body)
	}
	_, body = do(t, anon, "GET", ts.URL+"/register", "", nil)
	if mustDoc(t, body).Find(`[data-testid="first-account"]`).Length() != 0 {
		t.Fatal("register page still promises administrator rights")
	}

	second := browser(t)
	if code, _ := do(t, second, "POST", ts.URL+"/register", "username=second&password=password1", formHeader); code != http.StatusSeeOther {
		t.Fatalf("second registration: %d", code)
	}
	_, body = do(t, second, "GET", ts.URL+"/", "", nil)
	if mustDoc(t, body).Find(`[data-testid="nav-admin"]`).Length() != 0 {
		t.Fatal("the second account is marked admin")
	}
	// Profiles show who the administrator is.
	_, body = do(t, second, "GET", ts.URL+"/users/founder", "", nil)
	if mustDoc(t, body).Find(`[data-testid="profile-admin"]`).Length() != 1 {
		t.Fatal("the administrator's profile does not say so")
	}
	_, body = do(t, second, "GET", ts.URL+"/users/second", "", nil)
	if mustDoc(t, body).Find(`[data-testid="profile-admin"]`).Length() != 0 {
		t.Fatal("a normal profile says administrator")
	}
}

// TestFirstRunAPI registers the first accounts through the JSON API, many
// at once: exactly one is the administrator.
func TestFirstRunAPI(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	const n = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		admins []string
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, body := do(t, nil, "POST", ts.URL+"/api/auth/register/", fmt.Sprintf(`{"username":"user%d","password":"password1"}`, i), jsonHeader)
			var got struct {
				Username string `json:"username"`
				IsAdmin  *bool  `json:"is_admin"`
			}
			if code != 201 || json.Unmarshal([]byte(body), &got) != nil || got.IsAdmin == nil {
				t.Errorf("register %d: %d %s", i, code, body)
				return
			}
			if *got.IsAdmin {
				mu.Lock()
				admins = append(admins, got.Username)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(admins) != 1 {
		t.Fatalf("admins = %v; want exactly one", admins)
	}
}

// TestFirstRunDatabaseDown: the landing and sign-up pages still render when
// the database cannot say whether any account exists; they do not claim a
// first run.
func TestFirstRunDatabaseDown(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.DB.Close()
	for _, path := range []string{"/", "/register"} {
		code, body := do(t, browser(t), "GET", ts.URL+path, "", nil)
		doc := mustDoc(t, body)
		if code != 200 || doc.Find(`[data-testid="first-run"], [data-testid="first-account"]`).Length() != 0 {
			t.Fatalf("GET %s with the database closed: %d\n%s", path, code, body)
		}
	}
}
