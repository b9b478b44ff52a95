package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/store"
)

// The demo (presence serve --demo): a throwaway data dir, and demoPeople
// simulated people who come and go over the real WebSocket path, each as
// an in-process client that dials the server's own listener with a real
// API token, sets a mode and status text through the JSON API, pings like
// a browser tab and leaves with a close frame.

// demoPeople is how many simulated people the demo runs.
const demoPeople = 40

// demoPassword is every demo person's password, printed at start: anyone
// may sign in as anyone in a throwaway demo ("ada" is its administrator).
const demoPassword = "demo-password"

// demoGrace is the demo's default --grace: shorter than the usual 5 s so
// that people are seen leaving soon after they do.
const demoGrace = 2 * time.Second

var demoNames = []string{
	"ada", "alan", "barbara", "bjarne", "claude", "dennis", "donald", "edsger",
	"frances", "grace", "guido", "hedy", "ivan", "james", "jean", "john",
	"ken", "larry", "leslie", "linus", "margaret", "mary", "niklaus", "radia",
	"rasmus", "rob", "robin", "ruth", "shafi", "sophie", "tim", "tony",
	"ward", "whitfield", "yukihiro", "adele", "anita", "betty", "carol", "karen",
}

// demoAgents are the devices simulated people use (User-Agent strings of
// real browsers), so the devices list and /admin show a realistic mix.
var demoAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
}

// demoStatuses are the modes and status texts people set when they arrive.
var demoStatuses = []struct{ mode, text, emoji string }{
	{"online", "", ""}, {"online", "", ""}, {"online", "Shipping the release", "🚀"},
	{"online", "Reviewing pull requests", "👀"}, {"away", "Lunch", "🍜"}, {"away", "Back in 15", "☕"},
	{"dnd", "Deep work", "🎧"}, {"dnd", "In a meeting", "📅"}, {"online", "On call", "📟"},
	{"online", "Working from the train", "🚆"},
}

// demoPace is how long people stay and stay away: uniformly between the
// bounds, so that with 40 people someone arrives or leaves about twice a
// second and the widget visibly lives.
type demoPace struct {
	onlineMin, onlineMax   time.Duration
	offlineMin, offlineMax time.Duration
	pingMin, pingMax       time.Duration
}

var defaultDemoPace = demoPace{
	onlineMin: 8 * time.Second, onlineMax: 40 * time.Second,
	offlineMin: 6 * time.Second, offlineMax: 30 * time.Second,
	pingMin: 5 * time.Second, pingMax: 30 * time.Second,
}

// demoPerson is one simulated person.
type demoPerson struct {
	name, token string
	agent       string
	second      string // a second device used now and then, or ""
}

// makeDemoDataDir makes the demo's throwaway data dir; the caller removes
// it at exit.
func makeDemoDataDir() (string, error) {
	dir, err := os.MkdirTemp("", "presence-demo-")
	if err != nil {
		return "", fmt.Errorf("demo: make data dir: %w", err)
	}
	return dir, nil
}

// createDemoPeople creates the demo people, with avatars and API tokens.
// The first, ada, is the server's administrator (the first account).
func createDemoPeople(ctx context.Context, db *store.DB) ([]demoPerson, error) {
	cost := db.BcryptCost
	db.BcryptCost = 4 // a throwaway password, and start-up stays quick
	defer func() { db.BcryptCost = cost }()
	people := make([]demoPerson, 0, demoPeople)
	for i, name := range demoNames[:demoPeople] {
		u, err := db.CreateUser(ctx, name, demoPassword)
		if err != nil {
			return nil, fmt.Errorf("demo: create %s: %w", name, err)
		}
		if err := db.SetProfileImage(ctx, u.ID, handlers.DemoAvatarURL(i)); err != nil {
			return nil, fmt.Errorf("demo: avatar of %s: %w", name, err)
		}
		tok, err := db.CreateToken(ctx, u.ID, store.TokenAPI, 0)
		if err != nil {
			return nil, fmt.Errorf("demo: token of %s: %w", name, err)
		}
		p := demoPerson{name: name, token: tok, agent: demoAgents[i%len(demoAgents)]}
		if i%4 == 0 {
			p.second = demoAgents[(i+4)%len(demoAgents)] // a phone beside the desktop
		}
		people = append(people, p)
	}
	return people, nil
}

// demoDriver runs the simulated people against the server at base.
type demoDriver struct {
	base   string // http(s)://host:port of the server's own listener
	people []demoPerson
	pace   demoPace
	log    *slog.Logger
	dialer *websocket.Dialer
	client *http.Client

	statusRefused sync.Once // PUT /api/users/me/status/ refused one
	cancel        context.CancelFunc
	wg            sync.WaitGroup
}

// demoBase is the URL at which the demo reaches the server's own
// listener: a wildcard address is dialled on loopback.
func demoBase(addr net.Addr, tls bool) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// startDemo starts every simulated person. About half are online at once;
// the others arrive within the first seconds. Stop ends them all.
func startDemo(base string, people []demoPerson, pace demoPace, log *slog.Logger) *demoDriver {
	// The server's own certificate names its public host, not loopback.
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // our own listener, on loopback
	d := &demoDriver{
		base: base, people: people, pace: pace, log: log,
		dialer: &websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: tc},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for i, p := range people {
		d.wg.Go(func() { d.run(ctx, p, i%2 == 0) })
	}
	return d
}

// Stop makes everyone leave (close frames) and waits, at most a few
// seconds, for them to go.
func (d *demoDriver) Stop() {
	d.cancel()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

func between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run is one person's life: online for a while, away for a while, again.
func (d *demoDriver) run(ctx context.Context, p demoPerson, startOnline bool) {
	first := true
	if !startOnline && !sleep(ctx, between(0, d.pace.offlineMax/2)) {
		return
	}
	for {
		stay := between(d.pace.onlineMin, d.pace.onlineMax)
		if first {
			// Already part-way through a visit when the demo starts, as
			// in its steady state: people leave from the first seconds
			// on, not only after the shortest stay, and not all at once.
			stay = between(0, stay)
			first = false
		}
		if !d.visit(ctx, p, stay) {
			return
		}
		if !sleep(ctx, between(d.pace.offlineMin, d.pace.offlineMax)) {
			return
		}
	}
}

// visit holds p's socket (and now and then a second device's) for stay,
// pinging like a tab in use. It reports whether the demo goes on.
func (d *demoDriver) visit(ctx context.Context, p demoPerson, stay time.Duration) bool {
	conn, err := d.dial(ctx, p.token, p.agent)
	if err != nil {
		d.log.Debug("demo: dial", "person", p.name, "err", err)
		return sleep(ctx, time.Second)
	}
	defer leave(conn)
	if p.second != "" && rand.N(2) == 0 {
		if c2, err := d.dial(ctx, p.token, p.second); err == nil {
			defer leave(c2)
		}
	}
	d.setStatus(ctx, p)
	end := time.Now().Add(stay)
	for {
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		if !sleep(ctx, min(left, between(d.pace.pingMin, d.pace.pingMax))) {
			return false
		}
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) != nil {
			return true // dropped: come back later
		}
	}
}

// dial opens a presence socket as a browser tab would (events=0), and
// reads it in the background so control frames (pings, close) are
// answered.
func (d *demoDriver) dial(ctx context.Context, token, agent string) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(d.base, "http") + "/ws/user-status/?events=0&token=" + url.QueryEscape(token)
	conn, resp, err := d.dialer.DialContext(ctx, u, http.Header{"User-Agent": {agent}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (%s)", err, resp.Status)
		}
		return nil, err
	}
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				conn.Close()
				return
			}
		}
	}()
	return conn, nil
}

// leave closes a socket the polite way, as a tab does on pagehide.
func leave(conn *websocket.Conn) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	conn.Close()
}

// setStatus sets a mode and status text through PUT /api/users/me/status/,
// as a client would. A refusal is logged once (the person is then shown
// without it).
func (d *demoDriver) setStatus(ctx context.Context, p demoPerson) {
	s := demoStatuses[rand.N(len(demoStatuses))]
	body, _ := json.Marshal(map[string]any{"mode": s.mode, "text": s.text, "emoji": s.emoji, "expires_in": nil})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, d.base+"/api/users/me/status/", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		d.statusRefused.Do(func() {
			d.log.Warn("demo: PUT /api/users/me/status/ refused a demo status", "person", p.name, "status", resp.Status)
		})
	}
}
