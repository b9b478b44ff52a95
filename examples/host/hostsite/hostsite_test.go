package hostsite

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "an-example-host-secret-of-32-bytes!!"

func newSite(t *testing.T) *Site {
	t.Helper()
	s, err := New(Config{PresenceURL: "https://presence.example", Secret: []byte(secret), Users: []User{
		{ID: "42", Username: "ada", Password: "pw"},
		{ID: "3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b", Username: "grace", Password: "pw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestToken: tokens are shaped like simplejwt's, with an integer id as a
// JSON number and any other id as a string, verifiable with the secret.
func TestToken(t *testing.T) {
	s := newSite(t)
	for _, tc := range []struct {
		u    User
		want string
	}{{s.cfg.Users[0], `42`}, {s.cfg.Users[1], `"3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b"`}} {
		tok, err := s.Token(tc.u)
		if err != nil {
			t.Fatal(err)
		}
		claims := jwt.MapClaims{}
		p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithJSONNumber())
		if _, err := p.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
			t.Fatal(err)
		}
		id, _ := json.Marshal(claims["user_id"])
		if string(id) != tc.want || claims["token_type"] != "access" || claims["username"] != tc.u.Username || claims["jti"] == nil || claims["iat"] == nil {
			t.Errorf("claims = %v, user_id %s want %s", claims, id, tc.want)
		}
	}
}

// TestSignIn: pages need the host's own sign-in; a forged cookie is
// refused; the token URL answers only a signed-in user.
func TestSignIn(t *testing.T) {
	ts := httptest.NewServer(newSite(t))
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		resp, err := c.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, `action="/login"`) {
		t.Fatalf("signed out: %d", code)
	}
	if code, _ := get("/token"); code != 401 {
		t.Fatalf("token signed out: %d", code)
	}
	u, _ := url.Parse(ts.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: url.QueryEscape("42|forged")}})
	if code, _ := get("/token"); code != 401 {
		t.Fatalf("forged cookie: %d", code)
	}
	resp, err := c.PostForm(ts.URL+"/login", url.Values{"username": {"ada"}, "password": {"wrong"}})
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong password: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	resp, err = c.PostForm(ts.URL+"/login", url.Values{"username": {"ada"}, "password": {"pw"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sign in: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	code, body := get("/")
	if code != 200 || !strings.Contains(body, `src="https://presence.example/embed.js"`) || !strings.Contains(body, `data-token="ey`) {
		t.Fatalf("home: %d %s", code, body)
	}
	if code, body := get("/frame"); code != 200 || !strings.Contains(body, `src="https://presence.example/embed/online-users?`) {
		t.Fatalf("frame: %d %s", code, body)
	}
	if code, body := get("/token"); code != 200 || !strings.HasPrefix(body, `{"token":"ey`) {
		t.Fatalf("token: %d %s", code, body)
	}
}
