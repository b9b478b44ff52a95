// Package handlers is the HTTP layer: echo routes, the WebSocket keep-alive,
// the JSON API and the HTML pages. routes.go lists every route.
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// Store is what the handlers need from the database.
type Store interface {
	CreateUser(ctx context.Context, username, password string) (store.User, error)
	Authenticate(ctx context.Context, username, password string) (store.User, error)
	CreateToken(ctx context.Context, userID int64, kind store.TokenKind, ttl time.Duration) (string, error)
	UserByToken(ctx context.Context, kind store.TokenKind, secret string) (store.User, error)
	RevokeToken(ctx context.Context, secret string) error
	UserByName(ctx context.Context, username string) (store.User, error)
	UsersByIDs(ctx context.Context, ids []int64) (map[int64]store.User, error)
	Ping(ctx context.Context) error
	Stats() store.Stats
}

// Config holds the HTTP layer's settings.
type Config struct {
	// AllowedOrigins are extra origins (scheme://host[:port]) trusted for
	// cross-origin WebSocket upgrades and form posts. The server's own origin
	// is always allowed.
	AllowedOrigins []string
	// CookieSecure sets the Secure flag on the session cookie (use it behind HTTPS).
	CookieSecure bool
	// SessionTTL is how long a browser session lasts.
	SessionTTL time.Duration
	// TokenTTL is how long an API token lasts; 0 means no expiry.
	TokenTTL time.Duration
	// PingInterval is how often the server sends a WebSocket ping frame.
	PingInterval time.Duration
}

// Deps are the handlers' collaborators.
type Deps struct {
	Store    Store
	Engine   *presence.Engine
	Batcher  *presence.Batcher
	Sessions *sessions.CookieStore
	Log      *slog.Logger
	Config   Config
}

// Server is the HTTP handler of the presence server. Create it with New;
// caller must call Shutdown to close the WebSockets it holds.
type Server struct {
	echo *echo.Echo
	ws   *wsHub
}

// New builds the server with every route.
func New(d Deps) (*Server, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Config.PingInterval <= 0 {
		d.Config.PingInterval = 10 * time.Second
	}
	origins, err := newOriginPolicy(d.Config.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(d.Log)
	s := &Server{echo: e, ws: newWSHub(d.Engine, d.Log, d.Config.PingInterval)}
	addRoutes(e, d, origins, s.ws)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// WebSockets returns how many WebSocket connections are open.
func (s *Server) WebSockets() int { return s.ws.len() }

// Shutdown refuses new WebSockets, sends every open one a close frame
// (1001 going away) and waits, until ctx is done, for them to finish.
// Connections still open then are closed hard.
func (s *Server) Shutdown(ctx context.Context) error { return s.ws.shutdown(ctx) }
