package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testCert is a self-signed certificate for 127.0.0.1, localhost and
// presence.test, made once per test binary; the test clients trust it.
var testCert = func() struct{ certPEM, keyPEM []byte } {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "presence test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", "presence.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return struct{ certPEM, keyPEM []byte }{
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
	}
}()

// testTLS trusts testCert.
var testTLS = func() *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(testCert.certPEM) {
		panic("test certificate")
	}
	return &tls.Config{RootCAs: pool}
}()

// testClient and testDialer are the tests' HTTP and WebSocket clients: the
// defaults, trusting testCert.
var (
	testClient = func() *http.Client {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = testTLS.Clone()
		return &http.Client{Transport: tr}
	}()
	testDialer = &websocket.Dialer{HandshakeTimeout: 45 * time.Second, TLSClientConfig: testTLS.Clone()}
)

// writeTestCert writes testCert's certificate and key files into a temp dir.
func writeTestCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, testCert.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, testCert.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestServe_TLSFlags: --tls-cert and --tls-key (or their environment
// variables) go together, and unreadable files are an error at start.
func TestServe_TLSFlags(t *testing.T) {
	cert, key := writeTestCert(t)
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--tls-cert", cert}, nil, "give both or neither"},
		{[]string{"--tls-key", key}, nil, "give both or neither"},
		{nil, map[string]string{"PRESENCE_TLS_CERT": cert}, "give both or neither"},
		{[]string{"--tls-cert", cert, "--tls-key", filepath.Join(data, "missing.pem")}, nil, "--tls-cert/--tls-key"},
		{[]string{"--tls-cert", key, "--tls-key", key}, nil, "--tls-cert/--tls-key"},
	} {
		args := append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0"}, tc.args...)
		if _, err := runCmd(t, "", tc.env, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err = %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// TestServe_TLS: with a certificate the server speaks HTTPS with HTTP/2
// (ALPN h2), says https:// when it starts, sets a Secure session cookie,
// and serves many widget streams at once over one HTTP/2 connection (the
// SSE broker cannot hijack an HTTP/2 stream and serves it in the handler).
func TestServe_TLS(t *testing.T) {
	cert, key := writeTestCert(t)
	base, stop := inProcess(t, fastArgs(dataDir(t), "--tls-cert", cert, "--tls-key", key))
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("the server says it listens on %s", base)
	}
	resp, err := testClient.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("proto %s, ALPN %v: want HTTP/2 over h2", resp.Proto, resp.TLS)
	}

	// The session cookie is Secure.
	alice := mustToken(t, base, "alice")
	bob := mustToken(t, base, "bob")
	noRedirect := *testClient
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.PostForm(base+"/login", url.Values{"username": {"alice"}, "password": {"password1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Fatalf("login: %s, cookies %v", resp.Status, resp.Cookies())
	}
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Fatalf("cookie %s is not Secure", c.Name)
		}
	}

	// Ten streams on one HTTP/2 connection, and one over HTTP/1.1 (a
	// client without h2: the broker hijacks the TLS connection); bob comes
	// online; every stream says so.
	h1 := testClient.Transport.(*http.Transport).Clone()
	h1.ForceAttemptHTTP2 = false
	h1.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	h1.TLSClientConfig.NextProtos = []string{"http/1.1"}
	const streams = 11
	lines := make(chan string, 64)
	for i := range streams {
		client, major := testClient, 2
		if i == streams-1 {
			client, major = &http.Client{Transport: h1}, 1
		}
		req, _ := http.NewRequest("GET", base+"/widgets/online-users/stream", nil)
		req.Header.Set("Authorization", "Bearer "+alice)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 || resp.ProtoMajor != major || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream %d: %s %s %q", i, resp.Proto, resp.Status, resp.Header.Get("Content-Type"))
		}
		go func() {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), `data-username="bob"`) {
					lines <- "bob"
					return
				}
			}
		}()
	}
	eventually(t, "all subscribers", 5*time.Second, func() bool { return metric(t, base, "presence_sse_subscribers") == streams })
	mustDial(t, base, bob) // over wss://
	deadline := time.After(5 * time.Second)
	for i := range streams {
		select {
		case <-lines:
		case <-deadline:
			t.Fatalf("%d of %d streams showed bob within 5 s", i, streams)
		}
	}
	// A graceful shutdown ends the HTTP/2 streams too.
	if err := stop(); err != nil {
		t.Fatalf("shutdown with streams open: %v", err)
	}
}
