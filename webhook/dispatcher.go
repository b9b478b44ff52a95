// Package webhook tells the host site's backend when its users come online
// and go offline: a signed JSON POST to each configured URL for every real
// change (after the grace period, so a reload sends nothing).
//
// Delivery is at least once. Each event is stored, one row per receiver
// URL, before the first attempt; a failed attempt (no 2xx, a timeout) is
// retried with capped, jittered exponential backoff for up to a day, then
// given up; pending deliveries resume after a restart. The events of one
// user reach one URL in order: the next is not sent before the one before
// has succeeded or been given up. Nothing here can slow presence down: the
// bus subscriber only appends to memory, a writer stores batches, and a
// bounded pool of senders does the HTTP.
//
// Several nodes may dispatch from one database: each claims the deliveries
// it sends (store.ClaimWebhooks) for a lease longer than an attempt, so no
// two nodes send one delivery at once and a line's next delivery waits for
// the one before wherever it is being sent; a node that dies leaves its
// claims to run out, then another node sends them.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 8
	DefaultMaxAge      = 24 * time.Hour
	// DefaultKeep is how long delivered and given-up deliveries are kept
	// for `presence webhook log`.
	DefaultKeep = 7 * 24 * time.Hour
)

const (
	// subscriberBuffer is the bus subscription's buffer; the subscriber
	// only appends to memory, so it rarely holds more than a few.
	subscriberBuffer = 4096
	// maxBuffered bounds the deliveries waiting in memory to be stored
	// (the database is failing): beyond it new ones are dropped, counted
	// and logged rather than eating the memory.
	maxBuffered = 100_000
	// storeRetry is how long to wait after a failed database read or
	// write before trying again.
	storeRetry = time.Second
	// expediteAfter is how many failures in a row make a URL "down", so
	// that its next success expedites its waiting deliveries.
	expediteAfter = 3
	// pruneEvery is how often old finished deliveries are deleted.
	pruneEvery = time.Hour
	// recordTimeout bounds recording an attempt's outcome.
	recordTimeout = 10 * time.Second
	// leaseMargin is added to an attempt's timeout and recordTimeout to
	// make a claim's lease, so that it outlasts the attempt even on a
	// node whose clock is somewhat off.
	leaseMargin = 10 * time.Second
)

// Store is what the dispatcher needs from the database (store.DB).
type Store interface {
	EnqueueWebhooks(ctx context.Context, ds []store.WebhookDelivery) error
	ClaimWebhooks(ctx context.Context, now time.Time, url string, limit int, node string, until time.Time) ([]store.WebhookDelivery, error)
	ReleaseWebhooks(ctx context.Context, node string, now time.Time) (int64, error)
	NextWebhookAfter(ctx context.Context, t time.Time) (time.Time, bool, error)
	RecordWebhookAttempt(ctx context.Context, id int64, a store.WebhookAttempt) error
	ExpediteWebhooks(ctx context.Context, url string, now time.Time) (int64, error)
	PendingWebhooks(ctx context.Context) (int64, error)
	PruneWebhooks(ctx context.Context, before time.Time) (int64, error)
	AbandonWebhooks(ctx context.Context, urls []string, at time.Time) (int64, error)
	WebhooksLeftOnline(ctx context.Context, eventType string) ([]store.WebhookDelivery, error)
}

// Config configures a Dispatcher. Zero fields take the defaults.
type Config struct {
	// URLs receive every event. Secret signs them; both are required.
	URLs   []string
	Secret string
	Store  Store
	// Bus is the engine's bus (presence.Engine.Bus); its events are per
	// user and come after the grace period.
	Bus   presence.Bus
	Clock presence.Clock // default presence.SystemClock
	Log   *slog.Logger
	// Client sends the requests; default a client that does not follow
	// redirects (a 3xx is not a success). Timeout bounds each attempt.
	Client  *http.Client
	Timeout time.Duration
	// Concurrency bounds the attempts in flight, across users and URLs;
	// each of n URLs may have at most Concurrency/n (at least one), so
	// that a receiver that hangs does not hold up the others.
	Concurrency int
	Backoff     Backoff
	// MaxAge is how long after an event its delivery is retried before it
	// is given up.
	MaxAge time.Duration
	// Keep is how long finished deliveries stay in the log.
	Keep time.Duration
	// Rand returns numbers in [0, 1) for the backoff's jitter; default
	// math/rand/v2.
	Rand func() float64
	// UserAgent is sent with every request.
	UserAgent string
	// OthersServing says that other nodes may be serving users while
	// this one starts (several nodes sharing presence): Start then does
	// not take the users a receiver was last told came online for ghosts
	// of a crash. What a restarted node held is given to Offline instead.
	OthersServing bool
	// Node names this dispatcher in the claims it takes on deliveries;
	// default a random name. Give a node the same name across restarts
	// (serve derives it from the host and data directory) so that, after
	// a crash, it takes back its claims at once instead of waiting for
	// them to run out.
	Node string
	// Poll, when positive, is the longest the dispatcher waits before
	// looking for due deliveries again: with several nodes dispatching
	// from one database, so that a node picks up what another stored or
	// left claimed when it died. Zero: only when this dispatcher stores
	// deliveries or one it knows of falls due.
	Poll time.Duration
}

// Stats are the dispatcher's counters, for /metrics.
type Stats struct {
	Succeeded      int64 // deliveries answered with a 2xx
	FailedAttempts int64 // attempts that failed (to be retried or given up)
	GivenUp        int64 // deliveries given up after MaxAge
	Pending        int64 // deliveries not yet delivered or given up
	Gaps           int64 // times the bus dropped the subscriber: events were missed
	Dropped        int64 // deliveries dropped because they could not be stored in time
}

// Dispatcher turns presence events into webhook deliveries and sends them.
// Create it with New and call Start; caller must call Close.
type Dispatcher struct {
	urls    []string
	secret  string
	store   Store
	bus     presence.Bus
	clock   presence.Clock
	log     *slog.Logger
	client  *http.Client
	timeout time.Duration
	conc    int
	urlCap  int // attempts in flight to one URL: a share of conc
	backoff Backoff
	maxAge  time.Duration
	keep    time.Duration
	rand    func() float64
	ua      string
	node    string
	// othersServing: Config.OthersServing.
	othersServing bool
	poll          time.Duration
	lease         time.Duration // how long a claim holds: longer than an attempt and its record

	ctx    context.Context // cancelled by Close: stops dispatching and sending
	cancel context.CancelFunc

	subMu     sync.Mutex
	sub       *presence.Subscription
	subBuffer int
	closing   bool
	subDone   chan struct{}
	// shown holds the users last announced online, by user key (the
	// subscriber's alone).
	shown map[string]bool

	closeOnce sync.Once
	closeErr  error

	bufMu      sync.Mutex
	buf        []store.WebhookDelivery
	bufSignal  chan struct{}
	stopWriter chan struct{}
	writerDone chan struct{}

	wake     chan struct{}
	loopDone chan struct{}
	mu       sync.Mutex
	inflight map[int64]string // delivery id → its URL
	// failures counts each URL's failed attempts since its last success.
	// A success after expediteAfter of them (a URL that was down, not one
	// user's event refused) expedites the URL's waiting deliveries.
	failures map[string]int
	// finished holds the deliveries that finished while dispatch was
	// reading the due ones: what it read of them may be stale.
	finished map[int64]bool
	timer    presence.Timer
	prune    presence.Timer
	workers  sync.WaitGroup

	succeeded, failedAttempts, givenUp, pending, gaps, dropped atomic.Int64

	// pokes counts wake-ups sent to the loop and handled those it has
	// dispatched; with flushing, they tell tests when all is quiet.
	pokes, handled atomic.Int64
	flushing       atomic.Bool
}

// New checks cfg and returns a Dispatcher, not yet started.
func New(cfg Config) (*Dispatcher, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("webhook: no URLs")
	}
	if cfg.Secret == "" {
		return nil, errors.New("webhook: a secret is required: receivers must be able to tell our requests from forgeries")
	}
	for _, u := range cfg.URLs {
		if err := CheckURL(u); err != nil {
			return nil, err
		}
	}
	if cfg.Store == nil || cfg.Bus == nil {
		return nil, errors.New("webhook: Store and Bus are required")
	}
	var urls []string // each once
	for _, u := range cfg.URLs {
		if !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = presence.SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Client == nil {
		// Keep a connection per attempt in flight (the default keeps two
		// per host, so the others would reconnect every time).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		cfg.Client = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.Backoff.Base <= 0 || cfg.Backoff.Max <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Presence-Webhooks"
	}
	if cfg.Node == "" {
		cfg.Node = newEventID()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{
		urls: urls, secret: cfg.Secret, store: cfg.Store, bus: cfg.Bus, clock: cfg.Clock, log: cfg.Log,
		client: cfg.Client, timeout: cfg.Timeout, conc: cfg.Concurrency, urlCap: max(1, cfg.Concurrency/len(urls)), backoff: cfg.Backoff,
		maxAge: cfg.MaxAge, keep: cfg.Keep, rand: cfg.Rand, ua: cfg.UserAgent,
		node: cfg.Node, othersServing: cfg.OthersServing, poll: max(cfg.Poll, 0), lease: cfg.Timeout + recordTimeout + leaseMargin,
		ctx: ctx, cancel: cancel,
		subDone: make(chan struct{}), shown: map[string]bool{}, bufSignal: make(chan struct{}, 1), stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}), wake: make(chan struct{}, 1), loopDone: make(chan struct{}),
		inflight: make(map[int64]string), finished: make(map[int64]bool), subBuffer: subscriberBuffer,
		failures: make(map[string]int),
	}, nil
}

// CheckURL reports whether u can receive webhooks: an absolute http or
// https URL with a host.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("webhook: %q is not an http:// or https:// URL", u)
	}
	return nil
}

// Start subscribes to the bus and resumes the deliveries left pending by
// a previous run; those to URLs no longer configured are given up. If the
// previous run crashed, each user a receiver was last told came online
// gets a user.offline now (nobody is online after a start). Events
// published after Start returns are delivered. Call it before anyone can
// connect.
func (d *Dispatcher) Start(ctx context.Context) error {
	now := d.clock.Now()
	if _, err := d.store.ReleaseWebhooks(ctx, d.node, now); err != nil { // left by a crash
		return fmt.Errorf("webhook: start: %w", err)
	}
	if n, err := d.store.AbandonWebhooks(ctx, d.urls, now); err != nil {
		return fmt.Errorf("webhook: start: %w", err)
	} else if n > 0 {
		d.log.Warn("webhook: gave up pending deliveries to URLs no longer configured", "count", n)
	}
	if !d.othersServing {
		if err := d.offlineLeftOnline(ctx, now); err != nil {
			return fmt.Errorf("webhook: start: %w", err)
		}
	}
	n, err := d.store.PendingWebhooks(ctx)
	if err != nil {
		return fmt.Errorf("webhook: start: %w", err)
	}
	d.pending.Store(n)
	if n > 0 {
		// The URLs may have been down before: the first success expedites.
		for _, u := range d.urls {
			d.failures[u] = expediteAfter
		}
		d.log.Info("webhook: resuming pending deliveries", "count", n)
	}
	d.sub = d.bus.Subscribe(d.subBuffer)
	go d.subscriber()
	go d.writer()
	go d.loop()
	d.pruneOld()
	d.poke()
	return nil
}

// Offline queues a user.offline, now, for each of users: those a
// restarted node of a cluster held when it went down, which no event
// announces to it. Call it after Start.
func (d *Dispatcher) Offline(users []presence.Status) {
	now := d.clock.Now()
	for _, s := range users {
		d.add(presence.Event{UserID: s.UserID, Username: s.Username, PublicID: s.PublicID, LastSeen: now}, now)
	}
}

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	d.bufMu.Lock()
	buffered := int64(len(d.buf))
	d.bufMu.Unlock()
	return Stats{
		Succeeded: d.succeeded.Load(), FailedAttempts: d.failedAttempts.Load(), GivenUp: d.givenUp.Load(),
		Pending: d.pending.Load() + buffered, Gaps: d.gaps.Load(), Dropped: d.dropped.Load(),
	}
}

// Close stops taking events, queues user.offline for each of offline
// (the users online when the server stops: the engine publishes no event
// for them), stores what is queued, and stops sending; attempts in flight
// are abandoned, their claims released for another node or the next
// start. It waits for all of it
// until ctx is done. Only the first call does anything.
func (d *Dispatcher) Close(ctx context.Context, offline []presence.Status) error {
	d.closeOnce.Do(func() { d.closeErr = d.close(ctx, offline) })
	return d.closeErr
}

func (d *Dispatcher) close(ctx context.Context, offline []presence.Status) error {
	d.subMu.Lock()
	d.closing = true
	if d.sub != nil {
		d.sub.Close()
	}
	d.subMu.Unlock()
	<-d.subDone // the subscriber drains what the bus had already sent
	now := d.clock.Now()
	for _, s := range offline {
		d.add(presence.Event{UserID: s.UserID, Username: s.Username, PublicID: s.PublicID, LastSeen: now}, now)
	}
	d.cancel()
	<-d.loopDone
	close(d.stopWriter)
	var err error
	select {
	case <-d.writerDone:
	case <-ctx.Done():
		err = fmt.Errorf("webhook: storing queued deliveries: %w", ctx.Err())
	}
	done := make(chan struct{})
	go func() { d.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("webhook: waiting for attempts in flight: %w", ctx.Err()))
	}
	if _, rerr := d.store.ReleaseWebhooks(ctx, d.node, d.clock.Now()); rerr != nil {
		err = errors.Join(err, fmt.Errorf("webhook: releasing claims (they run out on their own): %w", rerr))
	}
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.prune != nil {
		d.prune.Stop()
	}
	d.mu.Unlock()
	d.bufMu.Lock()
	if n := len(d.buf); n > 0 {
		err = errors.Join(err, fmt.Errorf("webhook: %d deliveries could not be stored and are lost", n))
	}
	d.bufMu.Unlock()
	return err
}
