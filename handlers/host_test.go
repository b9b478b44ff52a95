package handlers_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/presencehq/presence/handlers"
	"github.com/presencehq/presence/store"
)

// hostSecret is the HS256 secret a test host site shares with Presence.
const hostSecret = "a-host-secret-of-at-least-32-bytes!!"

// simpleJWT signs an access token shaped exactly like djangorestframework-
// simplejwt's default (token_type, exp, iat, jti, user_id), issued at now
// and lasting five minutes, plus any extra claims.
func simpleJWT(tb testing.TB, now time.Time, userID any, extra jwt.MapClaims) string {
	tb.Helper()
	claims := jwt.MapClaims{
		"token_type": "access",
		"exp":        now.Add(5 * time.Minute).Unix(),
		"iat":        now.Unix(),
		"jti":        "6f1b2c3d4e5f40718293a4b5c6d7e8f9",
		"user_id":    userID,
	}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(hostSecret))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func hostServer(tb testing.TB, cfg handlers.Config) *testServer {
	tb.Helper()
	if cfg.JWTPublicKey == nil {
		cfg.JWTSecret = hostSecret
	}
	return MustStartServer(tb, cfg)
}

// onlineIDs returns the raw JSON ids of GET /api/users/online/.
func onlineIDs(tb testing.TB, ts *testServer, tok string) []string {
	tb.Helper()
	code, body := do(tb, nil, "GET", ts.URL+"/api/users/online/", "", bearer(tok))
	if code != 200 {
		tb.Fatalf("online list: %d %s", code, body)
	}
	var list []struct {
		ID       json.RawMessage `json:"id"`
		Username string          `json:"username"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for _, u := range list {
		ids = append(ids, string(u.ID)+"="+u.Username)
	}
	return ids
}

// dialAck opens the presence socket with ?token= and returns the ack.
func (ts *testServer) dialAck(tb testing.TB, tok string) (*wsClient, map[string]any) {
	tb.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+url.QueryEscape(tok)), nil)
	if err != nil {
		tb.Fatalf("dial: %v (%v)", err, respStatus(resp))
	}
	c := &wsClient{tb: tb, conn: conn, msgs: make(chan map[string]any, 256), errc: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.errc <- err
				close(c.msgs)
				return
			}
			var m map[string]any
			json.Unmarshal(data, &m)
			c.msgs <- m
		}
	}()
	tb.Cleanup(func() { conn.Close() })
	ack := c.next()
	if ack["type"] != "connection.ack" {
		tb.Fatalf("first message = %v, want connection.ack", ack)
	}
	return c, ack
}

// statusFor waits for a user.status.changed with this wire user_id.
func (c *wsClient) statusFor(id any, online bool) map[string]any {
	c.tb.Helper()
	for {
		m := c.nextOfType("user.status.changed")
		if m["user_id"] == id && m["is_online"] == online {
			return m
		}
	}
}

// TestHostJWT_OriginalFrontend is the original app's frontend flow with its
// own simplejwt access token: the WebSocket is acked with the host's id,
// status events carry it (as a string, like str(user.id)), and the REST
// list shows it as a number.
func TestHostJWT_OriginalFrontend(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	now := ts.Clock.Now()
	alice := simpleJWT(t, now, 42, nil)
	bob := simpleJWT(t, now, 7, jwt.MapClaims{"username": "bob"})

	ca, ack := ts.dialAck(t, alice)
	if ack["user_id"] != "42" {
		t.Fatalf("ack = %v, want user_id \"42\"", ack)
	}
	_, ackB := ts.dialAck(t, bob)
	if ackB["user_id"] != "7" {
		t.Fatalf("ack = %v, want user_id \"7\"", ackB)
	}
	if m := ca.statusFor("7", true); m["username"] != "bob" {
		t.Fatalf("status = %v, want bob", m)
	}
	// A simplejwt token has no name: the user is named after their id.
	if got := onlineIDs(t, ts, bob); len(got) != 1 || got[0] != "42=42" {
		t.Fatalf("bob sees %v, want [42=42] (the host id as a JSON number)", got)
	}
	// Bearer works as well as ?token=, on the JSON API.
	if got := onlineIDs(t, ts, alice); len(got) != 1 || got[0] != "7=bob" {
		t.Fatalf("alice sees %v, want [7=bob]", got)
	}
}

// TestHostJWT_ClaimsCreateThenUpdate: the first token creates the user from
// its claims; later tokens update username and avatar; a string id (UUID)
// is a string everywhere; picture must be http(s).
func TestHostJWT_ClaimsCreateThenUpdate(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	now := ts.Clock.Now()
	const uuid = "3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b"
	tok := simpleJWT(t, now, nil, jwt.MapClaims{"user_id": nil, "sub": uuid, "preferred_username": "Ada Lovelace", "picture": "javascript:alert(1)"})
	_, ack := ts.dialAck(t, tok)
	if ack["user_id"] != uuid {
		t.Fatalf("ack = %v, want the UUID", ack)
	}
	u, err := ts.DB.HostUser(ctx, uuid)
	if err != nil || u.Username != "Ada Lovelace" || u.ProfileImageURL != "" {
		t.Fatalf("created %+v, %v; want Ada Lovelace without the javascript: avatar", u, err)
	}
	tok2 := simpleJWT(t, now, nil, jwt.MapClaims{"user_id": nil, "sub": uuid, "username": "ada", "name": "ignored", "picture": "https://img.example.com/a.png"})
	viewer := simpleJWT(t, now, 1, nil)
	ts.dialAck(t, tok2)
	u, _ = ts.DB.HostUser(ctx, uuid)
	if u.Username != "ada" || u.ProfileImageURL != "https://img.example.com/a.png" {
		t.Fatalf("updated %+v, want ada with the https avatar", u)
	}
	if got := onlineIDs(t, ts, viewer); len(got) != 1 || got[0] != `"`+uuid+`"=ada` {
		t.Fatalf("list = %v, want the UUID as a string", got)
	}
	// A later token without a name keeps the name.
	ts.dialAck(t, simpleJWT(t, now, nil, jwt.MapClaims{"user_id": nil, "sub": uuid}))
	if u, _ = ts.DB.HostUser(ctx, uuid); u.Username != "ada" {
		t.Fatalf("name = %q after a nameless token, want ada", u.Username)
	}
}

// TestHostJWT_Refused: refresh tokens, expired, not yet valid, wrongly
// signed, alg none, no exp, non-integral ids and algorithm confusion are
// refused on the WebSocket and the JSON API; skew within the leeway is
// tolerated.
func TestHostJWT_Refused(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	now := ts.Clock.Now()
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"token_type": "access", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": "x", "user_id": 5}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	refused := map[string]string{
		"refresh token":     simpleJWT(t, now, 5, jwt.MapClaims{"token_type": "refresh"}),
		"expired":           simpleJWT(t, now, 5, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-6 * time.Minute).Unix()}),
		"not yet valid":     simpleJWT(t, now, 5, jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()}),
		"issued in future":  simpleJWT(t, now, 5, jwt.MapClaims{"iat": now.Add(time.Minute).Unix()}),
		"no exp":            simpleJWT(t, now, 5, jwt.MapClaims{"exp": nil}),
		"wrong secret":      sign(jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!!"), base(nil)),
		"HS512":             sign(jwt.SigningMethodHS512, []byte(hostSecret), base(nil)),
		"alg none":          sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base(nil)),
		"fractional id":     simpleJWT(t, now, 5.5, nil),
		"no id":             simpleJWT(t, now, nil, jwt.MapClaims{"user_id": nil}),
		"tampered payload":  tamper(simpleJWT(t, now, 5, nil)),
		"id with spaces":    simpleJWT(t, now, "a b", nil),
		"control char name": simpleJWT(t, now, 5, jwt.MapClaims{"username": "bad\x00name"}),
	}
	for name, tok := range refused {
		if code, body := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(tok)); code != 401 {
			t.Errorf("%s: API answered %d %s, want 401", name, code, body)
		}
		_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+url.QueryEscape(tok)), nil)
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("%s: WebSocket = %v, %v; want 401", name, err, respStatus(resp))
		}
	}
	// Within the leeway: expired 3 s ago is still accepted.
	skewed := simpleJWT(t, now, 5, jwt.MapClaims{"exp": now.Add(-3 * time.Second).Unix(), "iat": now.Add(-5 * time.Minute).Unix()})
	if code, body := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(skewed)); code != 200 {
		t.Fatalf("3 s of skew: %d %s, want 200", code, body)
	}
	// The clock moves on: the same token is now too old.
	ts.Clock.Advance(10 * time.Second)
	if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(skewed)); code != 401 {
		t.Fatalf("expired 13 s ago: %d, want 401", code)
	}
}

// tamper changes the user id in a signed token's payload.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := jwt.NewParser().DecodeSegment(parts[1])
	p = []byte(strings.Replace(string(p), `"user_id":5`, `"user_id":6`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

// TestHostJWT_PublicKeys: RS256, ES256 and EdDSA tokens verify against a
// PEM public key; an HS256 token "signed" with the public key's bytes
// (algorithm confusion) and a token of another algorithm are refused.
func TestHostJWT_PublicKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		method jwt.SigningMethod
		priv   any
		pub    any
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey, &rsaKey.PublicKey},
		{"ES256", jwt.SigningMethodES256, ecKey, &ecKey.PublicKey},
		{"EdDSA", jwt.SigningMethodEdDSA, edKey, edKey.Public()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			der, err := x509.MarshalPKIXPublicKey(tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			ts := hostServer(t, handlers.Config{JWTPublicKey: pemKey})
			now := ts.Clock.Now()
			claims := jwt.MapClaims{"token_type": "access", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": "j", "user_id": 9, "username": "nine"}
			good, err := jwt.NewWithClaims(tc.method, claims).SignedString(tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			if _, ack := ts.dialAck(t, good); ack["user_id"] != "9" {
				t.Fatalf("ack = %v", ack)
			}
			confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pemKey)
			if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(confused)); code != 401 {
				t.Fatalf("HS256 signed with the public key: %d, want 401", code)
			}
			other, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(rsaKey)
			if tc.name != "RS256" {
				if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(other)); code != 401 {
					t.Fatalf("RS256 against a %s key: %d, want 401", tc.name, code)
				}
			}
		})
	}
}

// TestHostJWT_IDCollision: the host's user 1 and local account 1 are two
// people. A host token for user_id 1 never authenticates as local account
// 1; both are listed, the host's as 1 and the local one as "local:1"; each
// socket is acked with its own id.
func TestHostJWT_IDCollision(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	local, localTok := ts.MustCreateUser(t, "alice")
	if local.ID != 1 {
		t.Fatalf("local id = %d, want 1 for the collision", local.ID)
	}
	hostTok := simpleJWT(t, ts.Clock.Now(), 1, jwt.MapClaims{"username": "alice"})
	hc, ack := ts.dialAck(t, hostTok)
	if ack["user_id"] != "1" {
		t.Fatalf("host ack = %v, want \"1\"", ack)
	}
	_, lack := ts.dialAck(t, localTok)
	if lack["user_id"] != "local:1" {
		t.Fatalf("local ack = %v, want \"local:1\"", lack)
	}
	hc.statusFor("local:1", true)
	host, err := ts.DB.HostUser(ctx, "1")
	if err != nil || host.ID == local.ID {
		t.Fatalf("host user 1 = %+v, %v; want a row of its own", host, err)
	}
	if got := onlineIDs(t, ts, localTok); len(got) != 1 || got[0] != "1=alice" {
		t.Fatalf("local alice sees %v, want the host's alice as 1", got)
	}
	if got := onlineIDs(t, ts, hostTok); len(got) != 1 || got[0] != `"local:1"=alice` {
		t.Fatalf("host alice sees %v, want the local alice as \"local:1\"", got)
	}
	// The host user has no password: "@host:1" cannot sign in.
	if code, _ := do(t, nil, "POST", ts.URL+"/api/auth/token/", `{"username":"@host:1","password":""}`, nil); code == 200 {
		t.Fatal("signed in as a host user with a password")
	}
	// A local account made now is shown with its prefix too.
	code, body := do(t, nil, "POST", ts.URL+"/api/auth/register/", `{"username":"carol","password":"password1"}`, nil)
	if code != 201 || !strings.Contains(body, `"id":"local:`) {
		t.Fatalf("register in host mode: %d %s, want a local: id", code, body)
	}
	if st := ts.Engine.Online(); len(st) != 2 || st[0].PublicID == st[1].PublicID {
		t.Fatalf("engine snapshot = %+v, want each user's public id", st)
	}
	// Without host JWTs, local ids are plain numbers (strings on the socket).
	plain := MustStartServer(t, handlers.Config{})
	_, tok := plain.MustCreateUser(t, "carol")
	if _, ack := plain.dialAck(t, tok); ack["user_id"] != "1" {
		t.Fatalf("plain ack = %v, want \"1\"", ack)
	}
}

// TestLocalAccountsOff: sign-up and password sign-in answer 404, local API
// tokens are refused, host tokens work.
func TestLocalAccountsOff(t *testing.T) {
	ts := hostServer(t, handlers.Config{NoLocalAccounts: true})
	_, tok := ts.MustCreateUser(t, "alice") // made before, by the CLI
	for _, p := range []string{"/api/auth/register/", "/api/auth/token/", "/register", "/login"} {
		if code, _ := do(t, nil, "POST", ts.URL+p, `{"username":"alice","password":"password1"}`, http.Header{"Content-Type": {"application/json"}}); code != 404 {
			t.Errorf("POST %s = %d, want 404", p, code)
		}
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(tok)); code != 401 {
		t.Fatalf("local token = %d, want 401", code)
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(simpleJWT(t, ts.Clock.Now(), 3, nil))); code != 200 {
		t.Fatalf("host token = %d, want 200", code)
	}
	if _, err := handlers.New(handlers.Deps{Config: handlers.Config{NoLocalAccounts: true}, Store: ts.DB, Engine: ts.Engine}); err == nil {
		t.Fatal("local accounts off without a host key was accepted")
	}
}

// serverKey makes a server key in the server's database.
func (ts *testServer) serverKey(tb testing.TB) string {
	tb.Helper()
	k, _, err := ts.DB.CreateServerKey(ctx, "backend")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestServerAPI_Keys: /api/server/ takes a live server key only; a user
// token is refused there (403) and a server key everywhere else (401).
func TestServerAPI_Keys(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	key := ts.serverKey(t)
	_, userTok := ts.MustCreateUser(t, "alice")
	hostTok := simpleJWT(t, ts.Clock.Now(), 5, nil)
	put := ts.URL + "/api/server/users/5/"
	for name, tc := range map[string]struct {
		h    http.Header
		want int
	}{
		"no key":      {nil, 401},
		"user token":  {bearer(userTok), 403},
		"host JWT":    {bearer(hostTok), 403},
		"unknown key": {bearer("prsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401},
		"server key":  {bearer(key), 201},
	} {
		if code, body := do(t, nil, "PUT", put, `{"username":"five"}`, tc.h); code != tc.want {
			t.Errorf("%s: %d %s, want %d", name, code, body, tc.want)
		}
	}
	if code, _ := do(t, nil, "GET", ts.URL+"/api/users/online/", "", bearer(key)); code != 401 {
		t.Errorf("server key on the user API: %d, want 401", code)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("?token="+key), nil); err == nil || resp.StatusCode != 401 {
		t.Errorf("server key on the WebSocket: %v, want 401", respStatus(resp))
	}
	if _, err := ts.DB.RevokeServerKey(ctx, "backend"); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, nil, "PUT", put, `{}`, bearer(key)); code != 401 {
		t.Errorf("revoked key: %d, want 401", code)
	}
}

// TestServerAPI_Users: PUT creates then updates; the presence query
// answers by host id, in order; DELETE and disconnect end the user's
// sockets (1008) and widget streams, and nobody else's.
func TestServerAPI_Users(t *testing.T) {
	ts := hostServer(t, handlers.Config{})
	key := ts.serverKey(t)
	code, body := do(t, nil, "PUT", ts.URL+"/api/server/users/5/", `{"username":"five","profile_image_url":"https://img.example.com/5.png"}`, bearer(key))
	if code != 201 || !strings.Contains(body, `"id":5`) || !strings.Contains(body, `"username":"five"`) {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body = do(t, nil, "PUT", ts.URL+"/api/server/users/5", `{"username":"Five"}`, bearer(key)); code != 200 || !strings.Contains(body, `"username":"Five"`) || !strings.Contains(body, "5.png") {
		t.Fatalf("update: %d %s", code, body)
	}
	if code, _ = do(t, nil, "PUT", ts.URL+"/api/server/users/5/", `{"profile_image_url":"javascript:alert(1)"}`, bearer(key)); code != 400 {
		t.Fatalf("javascript: avatar: %d, want 400", code)
	}

	now := ts.Clock.Now()
	five, _ := ts.dialAck(t, simpleJWT(t, now, 5, nil))
	five2, _ := ts.dialAck(t, simpleJWT(t, now, 5, nil))
	six, _ := ts.dialAck(t, simpleJWT(t, now, 6, nil))
	stream := ts.openStream(t, "/widgets/online-users/stream", bearer(simpleJWT(t, now, 5, nil)))
	other := ts.openStream(t, "/widgets/online-users/stream", bearer(simpleJWT(t, now, 6, nil)))

	ids := make([]string, 0, 1001)
	for i := range 1001 {
		ids = append(ids, `"x`+strings.Repeat("0", i%3)+string(rune('a'+i%26))+`"`)
	}
	if code, _ = do(t, nil, "POST", ts.URL+"/api/server/presence/query/", `{"user_ids":[`+strings.Join(ids, ",")+`]}`, bearer(key)); code != 400 {
		t.Fatalf("1,001 ids: %d, want 400", code)
	}
	code, body = do(t, nil, "POST", ts.URL+"/api/server/presence/query/", `{"user_ids":[6,"5","nobody",5]}`, bearer(key))
	var q struct {
		Users []struct {
			ID           json.RawMessage `json:"id"`
			IsOnline     bool            `json:"is_online"`
			LastSeen     *string         `json:"last_seen"`
			LastActivity *string         `json:"last_activity"`
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(body), &q); code != 200 || err != nil || len(q.Users) != 3 {
		t.Fatalf("query: %d %s", code, body)
	}
	if string(q.Users[0].ID) != "6" || !q.Users[0].IsOnline || q.Users[0].LastActivity == nil ||
		string(q.Users[1].ID) != "5" || !q.Users[1].IsOnline ||
		string(q.Users[2].ID) != `"nobody"` || q.Users[2].IsOnline || q.Users[2].LastSeen != nil {
		t.Fatalf("query = %s", body)
	}

	if code, _ = do(t, nil, "POST", ts.URL+"/api/server/users/5/disconnect/", "", bearer(key)); code != 204 {
		t.Fatalf("disconnect: %d", code)
	}
	for _, c := range []*wsClient{five, five2} {
		c.expectEnded("disconnected by the site")
	}
	stream.ended(t)
	six.ping() // a barrier: six's socket is still served
	if !other.open() {
		t.Fatal("user 6's stream was ended too")
	}
	// Disconnected, not banned: a new token connects again.
	ts.Clock.Advance(time.Millisecond)
	again, _ := ts.dialAck(t, simpleJWT(t, ts.Clock.Now(), 5, nil))
	if code, _ = do(t, nil, "POST", ts.URL+"/api/server/users/nobody/disconnect/", "", bearer(key)); code != 404 {
		t.Fatalf("disconnect unknown: %d, want 404", code)
	}

	if code, _ = do(t, nil, "DELETE", ts.URL+"/api/server/users/5/", "", bearer(key)); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	again.expectEnded("disconnected by the site")
	if _, err := ts.DB.HostUser(ctx, "5"); err != store.ErrNotFound {
		t.Fatalf("after delete: %v, want not found", err)
	}
	if code, _ = do(t, nil, "DELETE", ts.URL+"/api/server/users/5/", "", bearer(key)); code != 404 {
		t.Fatalf("second delete: %d, want 404", code)
	}
	six.ping()
}

// expectEnded waits for the socket to close with 1008 and reason.
func (c *wsClient) expectEnded(reason string) {
	c.tb.Helper()
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue
			}
			err := <-c.errc
			ce, isClose := err.(*websocket.CloseError)
			if !isClose || ce.Code != websocket.ClosePolicyViolation || ce.Text != reason {
				c.tb.Fatalf("socket ended with %v, want close 1008 %q", err, reason)
			}
			return
		case <-time.After(5 * time.Second):
			c.tb.Fatal("socket still open after 5s")
		}
	}
}

// TestAPICORS: an allow-listed origin may call /api/ from a browser
// (preflight with Authorization and Content-Type); other origins get no
// CORS headers; /api/server/ never answers CORS.
func TestAPICORS(t *testing.T) {
	const app = "https://app.example.com"
	ts := hostServer(t, handlers.Config{AllowedOrigins: []string{app}})
	preflight := func(path, origin string) (*http.Response, error) {
		req, _ := http.NewRequest("OPTIONS", ts.URL+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		return http.DefaultClient.Do(req)
	}
	resp, err := preflight("/api/auth/online/", app)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	for _, tc := range []struct{ path, origin string }{{"/api/auth/online/", "https://evil.example.com"}, {"/api/server/presence/query/", app}} {
		resp, err := preflight(tc.path, tc.origin)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode/100 == 2 {
			t.Errorf("preflight %s from %s: %d %v, want no CORS", tc.path, tc.origin, resp.StatusCode, resp.Header)
		}
	}
	tok := simpleJWT(t, ts.Clock.Now(), 1, nil)
	req, _ := http.NewRequest("GET", ts.URL+"/api/auth/online/", nil)
	req.Header.Set("Origin", app)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != app || resp.Header.Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("GET from %s: %d %v", app, resp.StatusCode, resp.Header)
	}
	// A cross-origin POST from the allowed origin passes the CSRF check.
	code, _ := do(t, nil, "POST", ts.URL+"/api/auth/token/", `{"username":"x","password":"y"}`,
		http.Header{"Origin": {app}, "Sec-Fetch-Site": {"cross-site"}, "Content-Type": {"application/json"}})
	if code != 401 {
		t.Fatalf("POST from %s: %d, want 401 (bad password, not refused as cross-origin)", app, code)
	}
}
