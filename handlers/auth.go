package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// sessionCookie is the name of the browser session cookie. It carries a
// session token (signed and encrypted by the CookieStore); the token's row
// in the database is what makes it valid, so logout revokes it for good.
const sessionCookie = "presence_session"

const userKey = "presence.user"

// authenticator resolves the user behind a request: an API token
// (Authorization: Bearer) or the session cookie.
type authenticator struct {
	store    Store
	sessions *sessions.CookieStore
	cfg      Config
	// revocations ends the connections of revoked sessions and tokens.
	revocations *realtime.Revocations
	// host verifies JWTs signed by the host site; nil when none is
	// configured. userEnds ends a host user's connections on the server
	// API's word (their JWTs have no revocable row).
	host     *hostVerifier
	userEnds *realtime.UserEnds
	ids      idPolicy
	log      *slog.Logger
	// noLocal refuses local accounts' API tokens and sessions
	// (--local-accounts=false); embed tokens still work.
	noLocal bool
}

func newAuthenticator(s Store, cs *sessions.CookieStore, cfg Config) *authenticator {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 30 * 24 * time.Hour
	}
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   cfg.CookieSecure,
		SameSite: http.SameSiteLaxMode,
	}
	cs.MaxAge(int(cfg.SessionTTL / time.Second))
	return &authenticator{store: s, sessions: cs, cfg: cfg}
}

var errNoCredentials = errors.New("no credentials")

// resolve returns the user of the request. An Authorization header, when
// present, decides alone: a bad token is not rescued by a cookie.
func (a *authenticator) resolve(c echo.Context, allowQueryToken bool) (store.User, error) {
	r := c.Request()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return store.User{}, store.ErrInvalidToken
		}
		return a.bearer(c, strings.TrimSpace(tok))
	}
	if allowQueryToken {
		if tok := r.URL.Query().Get("token"); tok != "" {
			return a.bearer(c, tok)
		}
	}
	if tok := a.sessionToken(r); tok != "" {
		if a.noLocal {
			return store.User{}, store.ErrInvalidToken
		}
		return a.lookup(c, store.TokenSession, tok)
	}
	return store.User{}, errNoCredentials
}

// errServerKeyHere refuses a server key outside /api/server/.
var errServerKeyHere = errors.New("a server key is only accepted on /api/server/")

// bearer resolves a Bearer or ?token= credential: a host JWT when one is
// configured, else one of our API tokens. A server key is refused: it
// speaks for the host's backend, never for a user.
func (a *authenticator) bearer(c echo.Context, tok string) (store.User, error) {
	switch {
	case store.IsServerKey(tok):
		return store.User{}, errServerKeyHere
	case a.host != nil && looksLikeJWT(tok):
		return a.hostUser(c, tok)
	case a.noLocal:
		return store.User{}, store.ErrInvalidToken
	}
	return a.lookup(c, store.TokenAPI, tok)
}

// hostAuth marks a request authenticated by a host JWT, for watch.
type hostAuth struct {
	userID int64
	at     time.Time // the UserEnds clock, taken before the lookup
}

const hostAuthKey = "presence.hostauth"

// hostUser verifies a host JWT and returns its user, created on first
// sight and updated when the token's name or avatar changed.
func (a *authenticator) hostUser(c echo.Context, tok string) (store.User, error) {
	at := a.userEnds.Now()
	p, err := a.host.verify(tok)
	if err != nil {
		a.log.Debug("host token refused", "client", c.RealIP(), "err", err) // the client learns only "invalid token"
		return store.User{}, store.ErrInvalidToken
	}
	u, _, err := a.store.UpsertHostUser(c.Request().Context(), p)
	if err != nil {
		if errors.Is(err, store.ErrInvalidHostUser) {
			return store.User{}, store.ErrInvalidToken
		}
		return store.User{}, err
	}
	c.Set(hostAuthKey, hostAuth{userID: u.ID, at: at})
	return u, nil
}

// authToken is the token that authenticated a request, for watch.
type authToken struct {
	id   int64
	at   time.Time // the revocations clock, taken before the lookup
	kind store.TokenKind
}

const tokenKey = "presence.token"

// lookup returns the owner of a live token of kind and remembers the
// token for watch.
func (a *authenticator) lookup(c echo.Context, kind store.TokenKind, secret string) (store.User, error) {
	at := a.revocations.Now()
	u, id, err := a.store.ResolveToken(c.Request().Context(), kind, secret)
	if err == nil {
		c.Set(tokenKey, authToken{id: id, at: at, kind: kind})
	}
	return u, err
}

// watch returns a context that ends when the token that authenticated the
// request is revoked (signed out, revoked from the CLI), for a connection
// that outlives the request; 401 if that has already happened.
func (a *authenticator) watch(c echo.Context) (context.Context, error) {
	if h, ok := c.Get(hostAuthKey).(hostAuth); ok {
		// A host JWT: ended by the server API (disconnect, delete).
		ctx := a.userEnds.Watch(h.userID, h.at)
		if ctx.Err() != nil {
			return nil, authError(store.ErrInvalidToken)
		}
		return ctx, nil
	}
	t, ok := c.Get(tokenKey).(authToken)
	if !ok {
		return nil, authError(errNoCredentials)
	}
	ctx := a.revocations.Watch(t.id, t.at)
	if ctx.Err() != nil {
		return nil, authError(store.ErrInvalidToken)
	}
	return ctx, nil
}

// revoke revokes a token and ends, at once, the connections it opened.
func (a *authenticator) revoke(ctx context.Context, secret string) error {
	id, err := a.store.RevokeTokenReturningID(ctx, secret)
	if err != nil {
		return err
	}
	a.revocations.Revoke(id)
	return nil
}

// sessionToken returns the session token in the request's cookie, if any.
func (a *authenticator) sessionToken(r *http.Request) string {
	if _, err := r.Cookie(sessionCookie); err != nil {
		return ""
	}
	sess, err := a.sessions.Get(r, sessionCookie)
	if err != nil {
		return "" // tampered with, or signed by old keys
	}
	tok, _ := sess.Values["token"].(string)
	return tok
}

// authError maps a resolve error to a response error.
func authError(err error) error {
	if errors.Is(err, errNoCredentials) {
		return httpError(http.StatusUnauthorized, "authentication credentials were not provided")
	}
	if errors.Is(err, store.ErrInvalidToken) {
		return httpError(http.StatusUnauthorized, "invalid, expired or revoked token")
	}
	if errors.Is(err, errServerKeyHere) {
		return httpError(http.StatusUnauthorized, errServerKeyHere.Error())
	}
	return err
}

// requireAPI is middleware that answers 401 {"detail"} without a valid user.
func (a *authenticator) requireAPI(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := a.resolve(c, false)
		if err != nil {
			return authError(err)
		}
		c.Set(userKey, u)
		return next(c)
	}
}

// optional is middleware that loads the signed-in user when there is one.
func (a *authenticator) optional(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if u, err := a.resolve(c, false); err == nil {
			c.Set(userKey, u)
		}
		return next(c)
	}
}

// requirePage is middleware for pages that show presence: signed-out
// visitors are sent (303) to the login page.
func (a *authenticator) requirePage(next echo.HandlerFunc) echo.HandlerFunc {
	return a.optional(func(c echo.Context) error {
		if _, ok := currentUser(c); !ok {
			return c.Redirect(http.StatusSeeOther, "/login")
		}
		return next(c)
	})
}

// signIn starts a fresh session for u, revoking the one the browser had:
// the session is rotated at every login.
func (a *authenticator) signIn(c echo.Context, u store.User) error {
	r := c.Request()
	if old := a.sessionToken(r); old != "" {
		if err := a.revoke(r.Context(), old); err != nil {
			return err
		}
	}
	tok, err := a.store.CreateToken(r.Context(), u.ID, store.TokenSession, a.cfg.SessionTTL)
	if err != nil {
		return err
	}
	sess := sessions.NewSession(a.sessions, sessionCookie)
	opts := *a.sessions.Options
	opts.Secure = opts.Secure || isHTTPS(r)
	sess.Options = &opts
	sess.IsNew = true
	sess.Values["token"] = tok
	return sess.Save(r, c.Response())
}

// signOut revokes the browser's session, which ends its WebSockets and
// event streams in every tab, and clears the cookie.
func (a *authenticator) signOut(c echo.Context) error {
	r := c.Request()
	if tok := a.sessionToken(r); tok != "" {
		if err := a.revoke(r.Context(), tok); err != nil {
			return err
		}
	}
	sess := sessions.NewSession(a.sessions, sessionCookie)
	opts := *a.sessions.Options
	opts.Secure = opts.Secure || isHTTPS(r)
	opts.MaxAge = -1
	sess.Options = &opts
	return sess.Save(r, c.Response())
}

// currentUser returns the user loaded by the auth middleware.
func currentUser(c echo.Context) (store.User, bool) {
	u, ok := c.Get(userKey).(store.User)
	return u, ok
}

// pageFor returns the page data for the request.
func pageFor(c echo.Context, title string) views.Page {
	p := views.Page{Title: title, Path: c.Request().URL.RequestURI()}
	if u, ok := currentUser(c); ok {
		p.Username = u.Username
		p.IsAdmin = u.IsAdmin
		if e, ok := c.Get(engineKey).(*presence.Engine); ok {
			p.Status = statusMenu(e, u.ID)
		}
	}
	p.Demo, _ = c.Get(demoKey).(bool)
	return p
}

// render writes a templ component as the response.
func render(c echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return comp.Render(c.Request().Context(), c.Response())
}
