// Package handlers is the HTTP layer: echo routes and their handlers for the
// JSON API, the HTML pages, the widget and the WebSocket handshake.
// routes.go lists every route. What a connection becomes after the handler
// has authorised it (a WebSocket in the hub, an event stream in the broker)
// lives in package realtime.
package handlers

import (
	"context"
	"errors"
	"github.com/presencehq/presence/cluster"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/listener"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/ratelimit"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/webhook"
)

// Store is what the handlers need from the database.
type Store interface {
	CreateUser(ctx context.Context, username, password string) (store.User, error)
	HasUsers(ctx context.Context) (bool, error)
	Authenticate(ctx context.Context, username, password string) (store.User, error)
	CreateToken(ctx context.Context, userID int64, kind store.TokenKind, ttl time.Duration) (string, error)
	UserByToken(ctx context.Context, kind store.TokenKind, secret string) (store.User, error)
	RevokeToken(ctx context.Context, secret string) error
	// ResolveToken, RevokeTokenReturningID and the revocation cursor let
	// revoking a token end the connections it opened (realtime.Revocations).
	ResolveToken(ctx context.Context, kind store.TokenKind, secret string) (store.User, int64, error)
	RevokeTokenReturningID(ctx context.Context, secret string) (int64, error)
	RevocationCursorNow() store.RevocationCursor
	RevokedTokens(ctx context.Context, after store.RevocationCursor) ([]int64, store.RevocationCursor, error)
	UserByName(ctx context.Context, username string) (store.User, error)
	UsersByIDs(ctx context.Context, ids []int64) (map[int64]store.User, error)
	Ping(ctx context.Context) error
	Stats() store.Stats

	// Host users and server keys (host sites: api_server.go, hostauth.go).
	UpsertHostUser(ctx context.Context, p store.HostProfile) (store.User, bool, error)
	HostUsers(ctx context.Context, externalIDs []string) (map[string]store.User, error)
	DeleteHostUser(ctx context.Context, externalID string) (store.User, error)
	HostUser(ctx context.Context, externalID string) (store.User, error)
	ResolveServerKey(ctx context.Context, secret string) (store.ServerKey, error)

	// Limits that hold across nodes (ratelimit.go, avatars.go).
	ratelimit.BucketStore

	// Profile settings (page_settings.go, avatars.go, timezones.go).
	SetAvatar(ctx context.Context, id int64, name string, png []byte) (string, error)
	AvatarPNG(ctx context.Context, name string) ([]byte, error)
	ImportAvatar(ctx context.Context, name string, png []byte) (bool, error)
	SweepAvatars(ctx context.Context) (int64, error)
	UploadedAvatars(ctx context.Context) ([]string, error)
	SaveTimeZones(ctx context.Context, zones map[int64]string) error
	LocalTimeOf(ctx context.Context, id int64) (store.LocalTime, error)
	SetShowLocalTime(ctx context.Context, id int64, show bool) error

	// Online history (api_user_history.go, profile_history.go).
	History(ctx context.Context, userID int64, since time.Time) ([]store.Session, error)

	friendStore
}

// WebhookStats is what /metrics reads from the webhook dispatcher
// (webhook.Dispatcher).
type WebhookStats interface {
	Stats() webhook.Stats
}

// friendStore is the part of Store for friends (api_friends.go,
// page_friends.go, api_server_friends.go).
type friendStore interface {
	RequestFriend(ctx context.Context, from, to int64) (store.RequestResult, error)
	AcceptFriendRequest(ctx context.Context, userID, id int64) (store.FriendRequest, error)
	DeclineFriendRequest(ctx context.Context, userID, id int64) (store.FriendRequest, error)
	RemoveFriend(ctx context.Context, userID, friendID int64) error
	AreFriends(ctx context.Context, a, b int64) (bool, error)
	FriendIDs(ctx context.Context, userID int64) ([]int64, error)
	Friends(ctx context.Context, userID int64) ([]store.Friend, error)
	FriendRequests(ctx context.Context, userID int64) (incoming, outgoing []store.FriendRequest, err error)
	FriendStateOf(ctx context.Context, userID, other int64) (store.FriendState, error)
	SetFriends(ctx context.Context, userID int64, friendIDs []int64, keep func(store.User) bool) (added, removed []int64, err error)
	FriendNotify(ctx context.Context, userID int64) (bool, error)
	SetFriendNotify(ctx context.Context, userID int64, on bool) error
	FriendNotifyUsers(ctx context.Context) ([]int64, error)
	// Devices and /admin (devices.go, admin.go).
	UserByID(ctx context.Context, id int64) (store.User, error)
	RevokeTokenID(ctx context.Context, userID, id int64) error
	TokensOf(ctx context.Context, userID int64) ([]store.TokenInfo, error)
	RevokeTokenByShortID(ctx context.Context, id string) (store.TokenInfo, error)
	SetAdmin(ctx context.Context, id int64, admin bool) error
	RecordAdminAction(ctx context.Context, a store.AdminAction) error
	AdminActions(ctx context.Context, limit int) ([]store.AdminAction, error)
}

// Config holds the HTTP layer's settings.
type Config struct {
	// AllowedOrigins are extra origins (scheme://host[:port]) trusted for
	// cross-origin WebSocket upgrades and form posts. The server's own origin
	// is always allowed.
	AllowedOrigins []string
	// CookieSecure sets the Secure flag on every session cookie. Without
	// it the cookie is Secure when the request came over https: a TLS
	// connection, or X-Forwarded-Proto: https from a trusted proxy.
	CookieSecure bool
	// TrustedProxies are the addresses (CIDRs or single addresses) of
	// reverse proxies whose X-Forwarded-For / X-Real-IP, X-Forwarded-Proto
	// and X-Forwarded-Host are believed, for rate limits, logs, Secure
	// cookies, the Origin and CSRF checks and the widget's links. Empty:
	// those headers are ignored and the peer address is the client.
	TrustedProxies []string
	// SessionTTL is how long a browser session lasts.
	SessionTTL time.Duration
	// TokenTTL is how long an API token lasts; 0 means no expiry.
	TokenTTL time.Duration
	// PublicURL is the server's public origin (https://presence.example.com),
	// used in the widget's links and stream URL. Empty: taken from each request.
	PublicURL string
	// SSEKeepAlive is how often an idle event stream gets a comment.
	SSEKeepAlive time.Duration
	// WSMessageRate and WSMessageBurst limit what one WebSocket may send
	// (messages per second, refilled, and at once). Defaults 10/s and 100
	// when zero; a negative rate means no limit (the serve command maps
	// --ws-message-rate 0 to it). A message over the limit is answered
	// with an error and not processed; flooding past twice the burst
	// closes the socket with 1008.
	WSMessageRate  float64
	WSMessageBurst int
	// WSWriteWait is how long a write to a WebSocket may block before
	// the socket is closed as not reading; 0 means 10 s.
	WSWriteWait time.Duration
	// LoginPerMinute limits password checks per client address per minute
	// (429 beyond it); 0 means no limit. Failed checks of each account are
	// limited too, per address and in all (see loginLimits).
	LoginPerMinute int
	// RegisterPerHour limits accounts created per client address per hour
	// (429 beyond it); 0 means no limit.
	RegisterPerHour int
	// MaxConns caps WebSockets plus event streams held at once; beyond it
	// new ones get 503. 0 means no cap.
	MaxConns int
	// SeparateMetrics takes /metrics off this handler (404): the caller
	// serves Server.MetricsHandler on its own listener (--metrics-addr).
	// Without it, /metrics here answers only local, unproxied requests.
	SeparateMetrics bool
	// MaxStreamsPerUser caps the widget event streams one signed-in user,
	// or one client address using an embed token, may hold (429 beyond
	// it); 0 means no cap. All the addresses using one embed token
	// together may hold at most half of MaxConns.
	MaxStreamsPerUser int
	// AvatarDir turns avatar uploads on: they are kept in the database,
	// so every node sharing it serves them. It names the directory where
	// versions before migration 0013 kept them as files (<data>/avatars):
	// those in use are moved into the database at start. Empty: uploads
	// are off (the settings page says so; POSTs answer 404).
	AvatarDir string

	// JWTSecret (HS256) or JWTPublicKey (PEM: RS256, ES256 or EdDSA) lets
	// the host site's own access tokens sign its users in, on the
	// WebSocket, the JSON API and the widget (docs/INTEGRATION.md). At
	// most one may be set.
	JWTSecret    string
	JWTPublicKey []byte
	// NoLocalAccounts turns local accounts off (--local-accounts=false):
	// sign-up and password sign-in answer 404, and local API tokens and
	// sessions are refused. Embed tokens keep working.
	NoLocalAccounts bool

	// HistoryDays is how many days of users' online sessions are kept and
	// shown (GET /api/users/{id}/history/, the profile's timeline); 0
	// turns history off (the caller then keeps none: presence.Config.
	// Sessions nil).
	HistoryDays int

	// Demo marks a throwaway demo server (presence serve --demo): every
	// page shows a banner, /demo/avatars/ serves the demo people's
	// avatars and POST /demo/sign-in signs the visitor in as one of
	// DemoPeople (usernames), picked at random.
	Demo       bool
	DemoPeople []string
}

// Deps are the handlers' collaborators.
type Deps struct {
	Store    Store
	Engine   *presence.Engine
	Batcher  *presence.Batcher
	Sessions *sessions.CookieStore
	Log      *slog.Logger
	Config   Config
	// Webhooks reports the webhook dispatcher's counters on /metrics;
	// nil (no --webhook-url) reports zeros.
	Webhooks WebhookStats
	// Clock times the rate limits, the widget feed's coalescing window,
	// the streams' keep-alives and write timeouts, and the poll for tokens
	// revoked by other processes; nil means presence.SystemClock. Tests
	// pass the engine's FakeClock.
	Clock presence.Clock
	// Friends answers who is friends with whom, for users who show their
	// presence to friends only; nil means the Store's friendships.
	Friends FriendChecker
	// Cluster is this node's share of presence across nodes (--redis):
	// /healthz reports it degraded while it cannot reach Redis, /metrics
	// its traffic. nil: a single node.
	Cluster ClusterNode
}

// ClusterNode is what the handlers ask of a cluster.Node.
type ClusterNode interface {
	// Err returns why the node is degraded, or nil.
	Err() error
	// Stats returns the node's counters.
	Stats() cluster.Stats
}

// Server is the HTTP handler of the presence server. Create it with New;
// caller must call Shutdown to close the WebSockets it holds.
type Server struct {
	log    *slog.Logger
	conns  *realtime.ConnCap
	echo   *echo.Echo
	ws     *realtime.Hub
	feed   *realtime.Feed
	broker *realtime.Broker
	// friends keeps friends-scoped widgets live (realtime.FriendsFeed).
	friends *realtime.FriendsFeed
	// rooms keeps room widgets live (realtime.RoomFeed).
	rooms *realtime.RoomFeed

	metrics echo.HandlerFunc // GET /metrics, unguarded: see MetricsHandler
	revs    *realtime.Revocations
	// userEnds ends a user's connections on the server API's word.
	userEnds *realtime.UserEnds
	// zones batches the time zones browsers report on connect.
	zones *zoneRecorder
	// admin is /admin, with its figures stream.
	admin *adminArea
}

// hostSetup is what host-site integration adds to the routes.
type hostSetup struct {
	verifier *hostVerifier // nil: no host JWTs
	userEnds *realtime.UserEnds
	admin    *adminArea // /admin and the devices sign-out
}

// profileSetup is what profile settings add to the routes.
type profileSetup struct {
	avatars *avatars
	zones   *zoneRecorder
}

// New builds the server with every route.
func New(d Deps) (*Server, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = presence.SystemClock{}
	}
	if d.Friends == nil {
		d.Friends = d.Store
	}
	origins, err := newOriginPolicy(d.Config.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	proxies, err := newProxyTrust(d.Config.TrustedProxies)
	if err != nil {
		return nil, err
	}
	verifier, err := newHostVerifier(d.Config.JWTSecret, d.Config.JWTPublicKey, d.Clock)
	if err != nil {
		return nil, err
	}
	if d.Config.NoLocalAccounts && verifier == nil {
		return nil, errors.New("handlers: local accounts are off and no host JWT key is set: nobody could sign in")
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The peer's address; X-Forwarded-For only from --trusted-proxies: a
	// header anyone can set must not choose whose rate limit a request
	// counts against.
	e.IPExtractor = proxies.ipExtractor()
	e.Pre(proxies.headers)
	e.HTTPErrorHandler = errorHandler(d.Log)
	if d.Config.WSMessageRate == 0 {
		d.Config.WSMessageRate = 10
	}
	if d.Config.WSMessageBurst <= 0 {
		d.Config.WSMessageBurst = 100
	}
	if d.Config.SSEKeepAlive <= 0 {
		d.Config.SSEKeepAlive = 15 * time.Second
	}
	d.Config.PublicURL = strings.TrimRight(d.Config.PublicURL, "/")
	conns := &realtime.ConnCap{Max: int64(d.Config.MaxConns)}
	broker := realtime.NewBroker(realtime.BrokerConfig{
		KeepAlive:    d.Config.SSEKeepAlive,
		WriteTimeout: sseWriteTimeout,
		Conns:        conns,
		Clock:        d.Clock,
		MaxPerOwner:  d.Config.MaxStreamsPerUser,
		MaxPerGroup:  d.Config.MaxConns / 2,
	})
	hub := realtime.NewHub(d.Engine, d.Log, d.Config.WSMessageRate, d.Config.WSMessageBurst, conns)
	s := &Server{
		log:    d.Log,
		conns:  conns,
		echo:   e,
		ws:     hub,
		broker: broker,
		// The widgets' pushes wait for the sockets' events of the same
		// change (Hub.Settle).
		feed: realtime.NewFeed(d.Engine, d.Store, broker, hub, maxWidgetMax+1, d.Clock, d.Log),
		revs: realtime.NewRevocations(d.Store, d.Clock, realtime.DefaultRevocationPoll, d.Log),
	}
	if d.Config.WSWriteWait > 0 {
		s.ws.SetWriteWait(d.Config.WSWriteWait)
	}
	s.zones = newZoneRecorder(d.Store, d.Clock, zoneFlushInterval, d.Log)
	avatars, err := newAvatars(d.Config.AvatarDir, d.Store, s.feed, d.Clock, d.Log)
	if err != nil {
		s.feed.Close()
		return nil, err
	}
	s.friends = realtime.NewFriendsFeed(d.Engine, d.Store, broker, d.Log)
	s.rooms = realtime.NewRoomFeed(d.Engine, d.Store, broker, d.Log)
	s.metrics = handleMetrics(d.Store, d.Engine, d.Batcher, s.ws, s.feed, s.broker, conns, d.Webhooks, s.friends, s.rooms, d.Cluster)
	s.userEnds = realtime.NewUserEnds(d.Clock)
	s.admin = newAdminArea(d, s, conns)
	addRoutes(e, d, origins, s.ws, s.feed, s.broker, s.metrics, s.revs, hostSetup{verifier: verifier, userEnds: s.userEnds, admin: s.admin},
		profileSetup{avatars: avatars, zones: s.zones}, s.friends)
	s.revs.Start()
	return s, nil
}

// MetricsHandler serves GET /metrics to anyone, and 404 for every other
// path: for a listener of its own that only operators can reach
// (--metrics-addr), with Config.SeparateMetrics set.
func (s *Server) MetricsHandler() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = errorHandler(s.log)
	e.Use(recoverPanics(s.log))
	e.GET("/metrics", s.metrics)
	return e
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Listener wraps ln for serving this server: when the process runs out of
// file descriptors, clients waiting to connect are answered 503 with
// Retry-After instead of hanging in the accept queue, and counted in
// presence_connections_refused_no_fds_total. Closing it closes ln.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return listener.WithFDReserve(ln, s.log, &s.conns.NoFDs)
}

// FriendsFeed returns the feed of friends-scoped widgets (for tests and
// the load generator's in-process checks).
func (s *Server) FriendsFeed() *realtime.FriendsFeed { return s.friends }

// RoomFeed returns the feed of room widgets (for tests).
func (s *Server) RoomFeed() *realtime.RoomFeed { return s.rooms }

// WebSockets returns how many WebSocket connections are open.
func (s *Server) WebSockets() int { return s.ws.Len() }

// sseWriteTimeout bounds one write to an event stream; a client that cannot
// take even the newest state within it is cut off.
const sseWriteTimeout = 2 * time.Second

// CloseStreams ends every open event stream (the browser reconnects to
// whichever server answers next). Call it when the HTTP server starts
// shutting down, since http.Server.Shutdown waits for streams to end.
func (s *Server) CloseStreams(ctx context.Context) error {
	s.feed.Close()
	s.friends.Close()
	s.rooms.Close()
	s.admin.figures.close()
	return errors.Join(s.broker.Shutdown(ctx), s.admin.stream.Shutdown(ctx))
}

// Shutdown ends every event stream, then refuses new WebSockets, sends every
// open one a close frame (1001 going away) and waits, until ctx is done, for
// them to finish. Connections still open then are closed hard.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.revs.Close()
	err := errors.Join(s.CloseStreams(ctx), s.ws.Shutdown(ctx))
	return errors.Join(err, s.zones.Close(ctx))
}

// Routes lists every route as "METHOD /path" (with :params), for tests
// that must cover all of them (the /admin 403 walk).
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}
