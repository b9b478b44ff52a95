// Package hostsite is a tiny host site, the kind Presence plugs into: its
// own origin, its own users and sign-in (a form and a cookie), and access
// tokens it signs itself (HS256 JWTs, with the secret it shares with
// Presence). Its pages show who is online with Presence's widget, through
// embed.js (/) or an iframe (/frame), and nobody ever signs in to Presence.
// examples/host runs it; a browser test drives it (cmd/presence).
package hostsite

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// User is one of the host's users.
type User struct {
	// ID is the host's id: digits (an integer id, as Django's) or any
	// other text (a UUID).
	ID       string
	Username string
	Password string
}

// Config configures the site.
type Config struct {
	// PresenceURL is the Presence server's origin
	// ("https://presence.example.com").
	PresenceURL string
	// Secret signs the access tokens: Presence's --jwt-secret.
	Secret []byte
	// Users are the accounts that can sign in.
	Users []User
	// TokenTTL is the access tokens' lifetime (default 15 minutes);
	// embed.js asks /token for a new one before it ends.
	TokenTTL time.Duration
}

const sessionCookie = "host_session"

// Site is the host site's HTTP handler.
type Site struct {
	cfg       Config
	mux       *http.ServeMux
	cookieKey []byte
}

// New returns the site.
func New(cfg Config) (*Site, error) {
	if len(cfg.Secret) < 32 {
		return nil, errors.New("hostsite: the secret must be at least 32 bytes")
	}
	if _, err := url.Parse(cfg.PresenceURL); err != nil || cfg.PresenceURL == "" {
		return nil, fmt.Errorf("hostsite: presence URL %q: want an origin", cfg.PresenceURL)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 15 * time.Minute
	}
	cfg.PresenceURL = strings.TrimRight(cfg.PresenceURL, "/")
	s := &Site{cfg: cfg, mux: http.NewServeMux(), cookieKey: make([]byte, 32)}
	rand.Read(s.cookieKey)
	s.mux.HandleFunc("GET /{$}", s.home)
	s.mux.HandleFunc("GET /frame", s.frame)
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.HandleFunc("GET /token", s.token)
	return s, nil
}

func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Token signs an access token for u, shaped like simplejwt's (token_type,
// exp, iat, jti, user_id) plus username: user_id is a JSON number for an
// integer id, else a string.
func (s *Site) Token(u User) (string, error) {
	now := time.Now()
	jti := make([]byte, 16)
	rand.Read(jti)
	var id any = u.ID
	if n, err := strconv.ParseInt(u.ID, 10, 64); err == nil && strconv.FormatInt(n, 10) == u.ID {
		id = n
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "access",
		"user_id":    id,
		"username":   u.Username,
		"iat":        now.Unix(),
		"exp":        now.Add(s.cfg.TokenTTL).Unix(),
		"jti":        hex.EncodeToString(jti),
	}).SignedString(s.cfg.Secret)
}

// ---- sessions: "<user id>|<signature>" in a cookie ----------------------

func (s *Site) sign(v string) string {
	m := hmac.New(sha256.New, s.cookieKey)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Site) current(r *http.Request) (User, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return User{}, false
	}
	raw, err := url.QueryUnescape(c.Value)
	if err != nil {
		return User{}, false
	}
	i := strings.LastIndexByte(raw, '|')
	if i < 0 || !hmac.Equal([]byte(raw[i+1:]), []byte(s.sign(raw[:i]))) {
		return User{}, false
	}
	for _, u := range s.cfg.Users {
		if u.ID == raw[:i] {
			return u, true
		}
	}
	return User{}, false
}

// ---- pages ------------------------------------------------------------

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.}} · Example host</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f8fafc;color:#0f172a}
main{max-width:56rem;margin:0 auto;padding:2rem}nav{display:flex;gap:1rem;align-items:center}
ul{list-style:square}</style></head><body><main>{{end}}
{{define "nav"}}<nav><strong>Example host</strong> <span data-testid="host-user">{{.User.Username}}</span>
<a href="/">script tag</a> <a href="/frame">iframe</a>
<form method="post" action="/logout"><button>Sign out</button></form></nav>{{end}}

{{define "login"}}{{template "head" "Sign in"}}
<h1>Sign in to the example host</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form></main></body></html>{{end}}

{{define "home"}}{{template "head" "Home"}}{{template "nav" .}}
<h1>Hello, {{.User.Username}}</h1>
<p>This page is the host's. The card below is Presence's widget, from one script tag.</p>
<ul><li>A host page's own list keeps its bullets: the widget's CSS is scoped.</li></ul>
<script src="{{.Presence}}/embed.js" data-token="{{.Token}}" data-token-url="/token"
        data-max="8" data-title="Who's here" async></script>
</main></body></html>{{end}}

{{define "frame"}}{{template "head" "Frame"}}{{template "nav" .}}
<h1>Hello, {{.User.Username}}</h1>
<p>This page runs no script at all (its CSP says so): the widget is in a frame.</p>
<iframe src="{{.FrameURL}}" title="Who's here" data-testid="presence-frame"
        style="display:block;width:100%;height:320px;border:0"></iframe>
</main></body></html>{{end}}
`))

type pageData struct {
	User               User
	Presence, FrameURL string
	Token              string
	Error              string
}

func (s *Site) render(w http.ResponseWriter, status int, name string, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (s *Site) home(w http.ResponseWriter, r *http.Request) {
	u, ok := s.current(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	tok, err := s.Token(u)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// A strict policy that still lets embed.js in: only Presence's origin
	// runs scripts, and the widget talks only to it.
	p := s.cfg.PresenceURL
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src "+p+"; style-src 'self' 'unsafe-inline' "+p+
		"; connect-src 'self' "+p+" "+wsOrigin(p)+"; img-src 'self' https: data:")
	s.render(w, http.StatusOK, "home", pageData{User: u, Presence: p, Token: tok})
}

// frame shows the widget in an iframe, under a policy that runs no script.
func (s *Site) frame(w http.ResponseWriter, r *http.Request) {
	u, ok := s.current(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	tok, err := s.Token(u)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-src "+s.cfg.PresenceURL)
	s.render(w, http.StatusOK, "frame", pageData{User: u, FrameURL: s.cfg.PresenceURL + "/embed/online-users?max=8&title=" +
		url.QueryEscape("Who's here") + "&token=" + url.QueryEscape(tok)})
}

func wsOrigin(p string) string {
	return "ws" + strings.TrimPrefix(p, "http")
}

func (s *Site) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "login", pageData{})
}

func (s *Site) login(w http.ResponseWriter, r *http.Request) {
	name, pw := r.PostFormValue("username"), r.PostFormValue("password")
	for _, u := range s.cfg.Users {
		if u.Username == name && subtle.ConstantTimeCompare([]byte(u.Password), []byte(pw)) == 1 {
			http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: url.QueryEscape(u.ID + "|" + s.sign(u.ID)),
				Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
	}
	s.render(w, http.StatusUnauthorized, "login", pageData{Error: "Wrong username or password."})
}

func (s *Site) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// token answers a fresh access token for the signed-in user: embed.js's
// data-token-url.
func (s *Site) token(w http.ResponseWriter, r *http.Request) {
	u, ok := s.current(r)
	if !ok {
		http.Error(w, `{"detail":"not signed in"}`, http.StatusUnauthorized)
		return
	}
	tok, err := s.Token(u)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"token": tok})
}
