package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/presencehq/presence/cluster"
	"github.com/redis/go-redis/v9"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// serveConfig is everything `presence serve` can be told.
type serveConfig struct {
	addr            string
	metricsAddr     string
	data            string
	databaseURL     string
	grace           time.Duration
	deadline        time.Duration
	pingInterval    time.Duration
	awayAfter       time.Duration
	flushInterval   time.Duration
	shutdownTimeout time.Duration
	headerTimeout   time.Duration
	maxConnsPerUser int
	maxStreams      int
	maxConns        int
	registerPerHour int
	loginPerMinute  int
	wsMessageRate   float64
	wsMessageBurst  int
	allowedOrigins  string
	trustedProxies  string
	publicURL       string
	cookieSecure    bool
	tlsCert         string
	tlsKey          string
	sessionTTL      time.Duration
	sessionKeys     string
	tokenTTL        time.Duration
	bcryptCost      int
	historyDays     int
	logLevel        string
	logFormat       string
	// demo runs the throwaway demo (demo.go).
	demo bool
	// Host sites (hostflags.go) and webhooks to them (webhook.go).
	host     hostFlags
	webhooks webhookFlags
	acme     acmeConfig
	cluster  clusterFlags // --redis, --node-id (cluster.go)
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	cfg := &serveConfig{}
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&cfg.addr, "addr", "localhost:8080", "address to listen on (host:port)")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "", "serve /metrics only on this address (127.0.0.1:9090), and 404 on --addr; default: on --addr, to loopback clients only")
	addDataFlag(fs, &cfg.data)
	addDatabaseURLFlag(fs, &cfg.databaseURL)
	fs.DurationVar(&cfg.grace, "grace", presence.DefaultGrace, "how long a user stays online after their last connection ends")
	fs.DurationVar(&cfg.deadline, "heartbeat-deadline", presence.DefaultDeadline, "drop a connection silent for this long (no ping, no pong)")
	fs.DurationVar(&cfg.pingInterval, "ping-interval", 10*time.Second, "ping a WebSocket that has been silent this long; must be below the deadline")
	fs.DurationVar(&cfg.awayAfter, "away-after", 10*time.Minute, "show a user away after this long without activity (an application ping) on any of their connections (0 = never)")
	fs.DurationVar(&cfg.flushInterval, "flush-interval", presence.DefaultFlushInterval, "how often presence changes are written to the database")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fs.DurationVar(&cfg.headerTimeout, "read-header-timeout", 10*time.Second, "how long a client may take to send request headers (slowloris)")
	fs.IntVar(&cfg.maxConnsPerUser, "max-conns-per-user", 32, "simultaneous WebSockets one user may hold (0 = no cap)")
	fs.IntVar(&cfg.maxStreams, "max-streams-per-user", 32, "widget event streams one user, or one address using an embed token, may hold (0 = no cap)")
	fs.IntVar(&cfg.loginPerMinute, "login-limit", 60, "password checks one client address may make per minute (0 = no limit; failures per account are limited too)")
	fs.IntVar(&cfg.registerPerHour, "register-limit", 20, "accounts one client address may create per hour (0 = no limit)")
	fs.IntVar(&cfg.maxConns, "max-conns", defaultMaxConns(), "WebSockets plus event streams held at once; new ones beyond get 503 (0 = no cap; default: the file limit less 512, or less a quarter under 2,048)")
	fs.Float64Var(&cfg.wsMessageRate, "ws-message-rate", 10, "messages per second one WebSocket may send, refilled (0 = no limit)")
	fs.IntVar(&cfg.wsMessageBurst, "ws-message-burst", 100, "messages one WebSocket may send at once")
	fs.StringVar(&cfg.allowedOrigins, "allowed-origins", "", "comma-separated extra origins (https://example.com) trusted for WebSockets and posts")
	fs.StringVar(&cfg.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs or addresses of reverse proxies whose X-Forwarded-For/-Proto/-Host and X-Real-IP are believed (default: none, the headers are ignored)")
	fs.StringVar(&cfg.publicURL, "public-url", "", "public origin of the server (https://presence.example.com) for widget links and streams; default: from each request")
	fs.BoolVar(&cfg.cookieSecure, "cookie-secure", false, "always mark the session cookie Secure (implied by --tls-cert; without it: Secure when the request came over https, directly or per a trusted proxy)")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS and HTTP/2 (needs --tls-key)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.DurationVar(&cfg.sessionTTL, "session-ttl", 30*24*time.Hour, "how long a browser session lasts")
	fs.StringVar(&cfg.sessionKeys, "session-keys", "", "file of the session cookie keys, made on first start if missing; give every node on one database the same file so a browser signed in on one is signed in on all (default: session.keys in --data)")
	fs.DurationVar(&cfg.tokenTTL, "token-ttl", 30*24*time.Hour, "how long an API token lasts (0 = never expires)")
	fs.IntVar(&cfg.bcryptCost, "bcrypt-cost", 10, "bcrypt cost of new password hashes (4-31)")
	fs.IntVar(&cfg.historyDays, "history-days", 30, "keep each user's online sessions (start, end, device kind) this many days, for their profile and friends; pruned daily (0 = keep no history)")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&cfg.demo, "demo", false, "run a throwaway demo: a temporary data dir (removed at exit, --data is ignored), 40 simulated people who come and go, a banner and one-click sign-in")
	cfg.host.register(fs)     // --jwt-secret, --jwt-public-key, --local-accounts
	cfg.webhooks.register(fs) // --webhook-url, --webhook-secret
	cfg.cluster.register(fs)  // --redis, --node-id
	addACMEFlags(fs, &cfg.acme)
	return fs, cfg
}

func (c *serveConfig) validate() error {
	if err := c.webhooks.validate(); err != nil {
		return err
	}
	if err := c.cluster.validate(c.databaseURL, c.demo); err != nil {
		return err
	}
	switch {
	case c.demo && c.databaseURL != "":
		return fmt.Errorf("--demo runs on a throwaway SQLite database: do not give it --database-url (PRESENCE_DATABASE_URL)")
	case c.deadline > 0 && c.pingInterval >= c.deadline:
		return fmt.Errorf("--ping-interval (%v) must be below --heartbeat-deadline (%v)", c.pingInterval, c.deadline)
	case c.pingInterval <= 0:
		return fmt.Errorf("--ping-interval must be positive")
	case c.awayAfter < 0:
		return fmt.Errorf("--away-after must not be negative (0 = never away automatically)")
	case c.historyDays < 0:
		return fmt.Errorf("--history-days must not be negative (0 = no history)")
	case c.bcryptCost < 4 || c.bcryptCost > 31:
		return fmt.Errorf("--bcrypt-cost must be 4 to 31")
	case c.shutdownTimeout <= 0:
		return fmt.Errorf("--shutdown-timeout must be positive")
	case c.headerTimeout <= 0:
		return fmt.Errorf("--read-header-timeout must be positive")
	case c.tlsCert != "" && c.acme.enabled():
		return fmt.Errorf("--acme-domain and --tls-cert are exclusive: certificates come from ACME or from files, not both")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return fmt.Errorf("--tls-cert and --tls-key (PRESENCE_TLS_CERT, PRESENCE_TLS_KEY) go together: give both or neither")
	}
	return nil
}

// tlsConfig loads the certificate and key when TLS is configured (nil
// otherwise). HTTP/2 is offered first in ALPN: over it one connection
// carries every event stream and request of a browser, so the browser's
// six-connections-per-host limit of HTTP/1.1 does not apply.
func (c *serveConfig) tlsConfig() (*tls.Config, error) {
	if c.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func addDataFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "data", "./data", "data directory (database and session keys)")
}

// addDatabaseURLFlag adds --database-url (PRESENCE_DATABASE_URL).
func addDatabaseURLFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "database-url", "", "PostgreSQL database (postgres://user:password@host:5432/db?sslmode=require) instead of SQLite in --data; session keys stay in --data")
}

// storeFlags say where the database is: SQLite in the data directory, or
// PostgreSQL at a URL.
type storeFlags struct {
	data string // --data
	url  string // --database-url
}

// addStoreFlags adds --data and --database-url.
func addStoreFlags(fs *flag.FlagSet, p *storeFlags) {
	addDataFlag(fs, &p.data)
	addDatabaseURLFlag(fs, &p.url)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json")
}

// openStore opens and migrates the database: PostgreSQL at
// where.url when given, else SQLite in the data directory.
func openStore(ctx context.Context, where storeFlags) (*store.DB, []string, error) {
	var db *store.DB
	var err error
	if where.url != "" {
		if !store.IsPostgresURL(where.url) {
			return nil, nil, fmt.Errorf("--database-url (PRESENCE_DATABASE_URL) must be a postgres:// or postgresql:// URL")
		}
		db, err = store.OpenPostgres(ctx, where.url)
	} else {
		if err := os.MkdirAll(where.data, 0o700); err != nil {
			return nil, nil, fmt.Errorf("create data dir: %w", err)
		}
		db, err = store.Open(filepath.Join(where.data, "presence.db"))
	}
	if err != nil {
		return nil, nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, applied, nil
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, cfg := serveFlags(stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return err
	}
	if tlsConf != nil {
		cfg.cookieSecure = true // the browser only ever sees HTTPS
	}

	if cfg.demo {
		dir, err := makeDemoDataDir()
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir) // runs last: after the database is closed
		cfg.data = dir
		if !flagGiven(fs, "grace") {
			cfg.grace = demoGrace
		}
	}
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.data)
	if err != nil {
		return err
	}
	defer unlock()
	db, applied, err := openStore(ctx, storeFlags{data: cfg.data, url: cfg.databaseURL})
	if err != nil {
		return err
	}
	defer db.Close()
	db.BcryptCost = cfg.bcryptCost
	log.Info("database", "engine", db.Dialect().String())
	if len(applied) > 0 {
		log.Info("applied migrations", "names", applied)
	}
	// With --redis, other nodes may be serving users already.
	var rdb *redis.Client
	nodeID, alone := "", true
	if cfg.cluster.redisURL != "" {
		if rdb, nodeID, alone, err = cfg.cluster.connect(ctx, cfg.addr); err != nil {
			return err
		}
		defer rdb.Close()
		log.Info("sharing presence through Redis", "node", nodeID, "first_node", alone)
	}
	// Nobody is connected yet: whoever the database says is online is a
	// ghost of the previous run (of the whole cluster, when no other node
	// is alive; otherwise the users are theirs, and the nodes that died
	// are reaped through Redis).
	if alone {
		ghosts, err := db.ResetPresence(ctx, time.Now())
		if err != nil {
			return err
		}
		if ghosts > 0 {
			log.Info("reset users left online by the previous run", "count", ghosts)
		}
		if rdb != nil {
			if err := cluster.ResetDone(ctx, rdb, cfg.cluster.prefix); err != nil {
				return err
			}
		}
	} else if err := cluster.WaitReset(ctx, rdb, cfg.cluster.prefix); err != nil {
		return err
	}
	var demoPeople []demoPerson
	var demoNames []string
	if cfg.demo {
		if demoPeople, err = createDemoPeople(ctx, db); err != nil {
			return err
		}
		for _, p := range demoPeople {
			demoNames = append(demoNames, p.name)
		}
	}
	keysFile := cfg.sessionKeys
	if keysFile == "" {
		keysFile = filepath.Join(cfg.data, "session.keys")
	}
	keys, err := loadSessionKeys(keysFile)
	if err != nil {
		return err
	}
	// With --acme-domain, --addr serves HTTPS with certificates from ACME
	// (cmd/presence/acme.go).
	var certs *acmeCertificates
	if cfg.acme.enabled() {
		if certs, err = cfg.acme.start(cfg.data, log, cfg.headerTimeout); err != nil {
			return err
		}
		defer certs.close()
		tlsConf = certs.TLS
		cfg.cookieSecure = true // the browser only ever sees HTTPS
	}

	batcher := presence.NewBatcher(db, nil, cfg.flushInterval, log)
	// History: sessions go through the batcher, in its transactions.
	var history presence.SessionRecorder
	if cfg.historyDays > 0 {
		history = batcher
		pruning := startHistoryPruning(db, presence.SystemClock{}, cfg.historyDays, log)
		defer pruning.stop()
	}
	// Between the engine and the batcher, a cluster node (--redis) turns
	// this node's connections into edges in Redis and every node's into
	// the engine's view of who is online.
	var node *cluster.Node
	engineCfg := presence.Config{Recorder: batcher}
	if rdb != nil {
		if node, err = cfg.cluster.newNode(rdb, nodeID, batcher, history, log); err != nil {
			return err
		}
		engineCfg = presence.Config{Recorder: node, Bus: node, Directory: node, Rooms: node}
		if history != nil {
			history = node // the node records one history for the cluster
		}
	}
	engine := presence.New(presence.Config{
		Recorder:        engineCfg.Recorder,
		Bus:             engineCfg.Bus,
		Directory:       engineCfg.Directory,
		Rooms:           engineCfg.Rooms,
		Sessions:        history,
		Grace:           orNone(cfg.grace),
		Deadline:        orNone(cfg.deadline),
		PingAfter:       cfg.pingInterval,
		MaxConnsPerUser: cfg.maxConnsPerUser,
		AwayAfter:       cfg.awayAfter,
	})
	settings, err := db.PresenceSettings(ctx)
	if err != nil {
		return err
	}
	engine.LoadSettings(settings)
	host, err := cfg.host.load()
	if err != nil {
		return err
	}
	// Webhooks subscribe before anyone can connect, and resume what the
	// previous run left pending.
	hooks, err := cfg.webhooks.start(ctx, db, cfg.data, engine, !alone, log)
	if err != nil {
		return err
	}
	closeHooks := func(offline []presence.Status) error {
		if hooks == nil {
			return nil
		}
		hctx, cancel := context.WithTimeout(context.Background(), finalSaveTimeout)
		defer cancel()
		return hooks.Close(hctx, offline)
	}
	defer closeHooks(nil) // on an early return; a no-op after the one below
	if node != nil {
		// After the webhooks subscribed: the users online elsewhere,
		// read at the start, are known to them (and not theirs to send).
		left, err := node.Start(ctx, engine)
		if err != nil {
			return err
		}
		if hooks != nil && !alone {
			hooks.Offline(left) // alone, the dispatcher found them itself
		}
		defer node.Close(context.Background()) // on an early return; a no-op after the one below
	}
	var origins []string
	if cfg.allowedOrigins != "" {
		origins = strings.Split(cfg.allowedOrigins, ",")
	}
	deps := handlers.Deps{
		Store:    db,
		Engine:   engine,
		Batcher:  batcher,
		Sessions: sessions.NewCookieStore(keys...),
		Log:      log,
		Config: handlers.Config{
			AllowedOrigins:    origins,
			TrustedProxies:    splitList(cfg.trustedProxies),
			CookieSecure:      cfg.cookieSecure,
			SessionTTL:        cfg.sessionTTL,
			TokenTTL:          cfg.tokenTTL,
			PublicURL:         cfg.publicURL,
			WSMessageRate:     noLimitIfZero(cfg.wsMessageRate),
			WSMessageBurst:    cfg.wsMessageBurst,
			MaxConns:          cfg.maxConns,
			RegisterPerHour:   cfg.registerPerHour,
			LoginPerMinute:    cfg.loginPerMinute,
			SeparateMetrics:   cfg.metricsAddr != "",
			MaxStreamsPerUser: cfg.maxStreams,
			AvatarDir:         filepath.Join(cfg.data, "avatars"),
			JWTSecret:         host.secret,
			JWTPublicKey:      host.publicKey,
			NoLocalAccounts:   host.noLocal,
			HistoryDays:       cfg.historyDays,
			Demo:              cfg.demo,
			DemoPeople:        demoNames,
		},
	}
	if hooks != nil {
		deps.Webhooks = hooks
	}
	if node != nil {
		deps.Cluster = node
	}
	srv, err := handlers.New(deps)
	if err != nil {
		return err
	}

	tcp, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The fd-reserve listener is the TCP listener's wrapper, under TLS
	// (ServeTLS adds that layer): it refuses on the raw connection, before
	// any handshake.
	ln := srv.Listener(tcp)
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.headerTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConf,
	}
	// http.Server.Shutdown waits for open requests, and event streams never
	// end by themselves: end them as soon as shutdown starts.
	httpSrv.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := srv.CloseStreams(ctx); err != nil {
			log.Warn("closing event streams", "err", err)
		}
	})
	serveErr := make(chan error, 3)
	var metricsSrv *http.Server
	if cfg.metricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics: %w", err)
		}
		metricsSrv = &http.Server{
			Handler:           srv.MetricsHandler(),
			ReadHeaderTimeout: cfg.headerTimeout,
			ReadTimeout:       30 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		go func() { serveErr <- fmt.Errorf("metrics: %w", metricsSrv.Serve(mln)) }()
		fmt.Fprintf(stdout, "presence: metrics at http://%s/metrics\n", mln.Addr())
	}
	stopDemo := func() {}
	go func() {
		if tlsConf != nil {
			// ServeTLS enables HTTP/2 (ALPN h2); the certificates come
			// from TLSConfig.
			serveErr <- httpSrv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- httpSrv.Serve(ln)
	}()
	if certs != nil && certs.HTTPAddr != nil {
		go func() {
			if err := certs.serveHTTP(); err != nil {
				serveErr <- err
			}
		}()
		fmt.Fprintf(stdout, "presence: ACME HTTP-01 and redirects to https on http://%s\n", certs.HTTPAddr)
	}
	fmt.Fprintf(stdout, "presence: listening on %s://%s\n", scheme, ln.Addr())
	if cfg.demo {
		demo := startDemo(demoBase(ln.Addr(), tlsConf != nil), demoPeople, defaultDemoPace, log)
		defer demo.Stop() // also on a serve error; at shutdown it stops first (below)
		stopDemo = demo.Stop
		fmt.Fprintf(stdout, "presence: demo with %d simulated people; data in %s (removed at exit); sign in with one click, or as any of them with the password %q (%s is the administrator)\n",
			len(demoPeople), cfg.data, demoPassword, demoPeople[0].name)
	}
	log.Info("serving", "addr", ln.Addr().String(), "tls", tlsConf != nil, "acme_domains", cfg.acme.domains.String(), "data", cfg.data, "version", version())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Graceful shutdown: stop accepting, close every socket with a close
	// frame, mark everyone offline, flush pending writes.
	log.Info("shutting down")
	stopDemo() // the simulated people leave before the server goes
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	var errs []error
	if metricsSrv != nil && metricsSrv.Shutdown(sctx) != nil {
		metricsSrv.Close()
	}
	if err := httpSrv.Shutdown(sctx); err != nil {
		// A request still sending its body, say: cut it off.
		httpSrv.Close()
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("websocket shutdown: %w", err))
	}
	// Users still online (in their grace period now that their sockets
	// are closed) get user.offline webhooks: the engine publishes nothing
	// when it closes.
	stillOnline := engine.Online()
	if node != nil {
		// Only the users this node was the last to hold go offline, and
		// they are this node's to announce.
		ctx, cancel := context.WithTimeout(context.Background(), finalSaveTimeout)
		offline, err := node.Close(ctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("leave the cluster: %w", err))
		}
		stillOnline = offline
	}
	// The final save gets its own time, whatever the connections used up.
	engine.Close()
	if err := closeHooks(stillOnline); err != nil {
		errs = append(errs, err)
	}
	if err := finalSave(batcher, finalSaveTimeout, log); err != nil {
		errs = append(errs, err)
	}
	log.Info("stopped")
	return errors.Join(errs...)
}

// finalSaveTimeout bounds the last write at shutdown (everyone offline,
// pending activity), on top of --shutdown-timeout.
const finalSaveTimeout = 5 * time.Second

// finalSave closes the batcher, writing what is pending, and retries a
// failed write (database locked by a backup, say) until timeout.
func finalSave(b *presence.Batcher, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := b.Close(ctx)
	for attempt, pause := 1, 50*time.Millisecond; err != nil; attempt++ {
		select {
		case <-ctx.Done():
			return fmt.Errorf("final save gave up after %d attempts in %v: %w", attempt, timeout, err)
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
		log.Warn("final save failed; retrying", "attempt", attempt, "err", err)
		if err = b.Flush(ctx); err == nil {
			log.Info("final save written", "attempts", attempt+1)
		}
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// noLimitIfZero maps --ws-message-rate 0 ("no limit", like every other
// limit flag) to the handlers' negative "no limit"; their zero means the
// default.
func noLimitIfZero(rate float64) float64 {
	if rate == 0 {
		return -1
	}
	return rate
}

// orNone maps a zero duration flag ("no grace", "no deadline") to the
// engine's negative "disabled" value.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// loadSessionKeys reads the cookie signing and encryption keys, creating
// them on first start so sessions survive restarts.
func loadSessionKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 64+32)
		rand.Read(raw)
		b = []byte(hex.EncodeToString(raw) + "\n")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write session keys: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read session keys: %w", err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != 96 {
		return nil, fmt.Errorf("session keys in %s are malformed (delete the file to make new ones; users will be signed out)", path)
	}
	return [][]byte{raw[:64], raw[64:]}, nil
}
