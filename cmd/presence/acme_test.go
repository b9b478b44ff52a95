package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// pebble is a running Pebble, an RFC 8555 test CA (Debian's pebble).
type pebble struct {
	dir    string // ACME directory URL
	caFile string // PEM of the certificate Pebble serves its API with
	roots  *x509.CertPool
	cmd    *exec.Cmd
}

// pebbleOptions say how Pebble validates challenges.
type pebbleOptions struct {
	// validate makes Pebble really validate challenges: it resolves names
	// with dnsServer and connects to httpPort (HTTP-01) and tlsPort
	// (TLS-ALPN-01) there. Without it every challenge passes unasked
	// (PEBBLE_VA_ALWAYS_VALID).
	validate          bool
	dnsServer         string
	httpPort, tlsPort int
}

// needTool returns the path of a Debian tool the ACME tests need. It
// skips the test when it is not installed, except under CI=true, where
// that fails.
func needTool(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must install it (apt-get install -y pebble)", name)
		}
		t.Skipf("%s is not installed (apt-get install -y pebble): the ACME tests need a local ACME server", name)
	}
	return bin
}

// startPebble runs Pebble on loopback ports.
func startPebble(t *testing.T, o pebbleOptions) *pebble {
	t.Helper()
	bin := needTool(t, "pebble")
	if !o.validate {
		o.httpPort, o.tlsPort = 5002, 5001
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "cert.pem")
	writeSelfSigned(t, caFile, filepath.Join(dir, "key.pem"))
	api, mgmt := freePort(t), freePort(t)
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": api, "managementListenAddress": mgmt,
		"certificate": caFile, "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": o.httpPort, "tlsPort": o.tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	if err := os.WriteFile(filepath.Join(dir, "pebble.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "pebble.json"))
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	if o.validate {
		cmd.Args = append(cmd.Args, "-dnsserver", o.dnsServer)
	} else {
		cmd.Env = append(cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble's log:\n%s", log.String())
		}
	})
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(pemBytes)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p := &pebble{dir: "https://" + api + "/dir", caFile: caFile, cmd: cmd}
	// Ready when the management API hands out the root it issues under.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get("https://" + mgmt + "/roots/0")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			p.roots = x509.NewCertPool()
			if resp.StatusCode == 200 && p.roots.AppendCertsFromPEM(body) {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v\n%s", err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeSelfSigned writes a self-signed CA certificate for 127.0.0.1.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble API"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// handedOut holds the ports freePort has returned, so that it never
// returns one twice: the kernel readily hands a just-closed port out again,
// and a helper started a moment earlier may not have bound its port yet
// (pebble once got the DNS server's port as its own).
var handedOut = struct {
	sync.Mutex
	ports map[string]bool
}{ports: map[string]bool{}}

// freePort returns a loopback address that was free a moment ago and that
// it has not returned before.
func freePort(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut.ports[addr] {
			handedOut.ports[addr] = true
			return addr
		}
	}
}

// acmeServer is `presence serve` with ACME in a child process.
type acmeServer struct {
	cmd            *exec.Cmd
	addr, httpAddr string
}

// startACMEServer runs the server as a child process, so that
// SSL_CERT_FILE (trusting Pebble's API) is read fresh, as in production.
func startACMEServer(t *testing.T, args []string, env ...string) *acmeServer {
	t.Helper()
	argv, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PRESENCE_TEST_ARGS="+string(argv))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &acmeServer{cmd: cmd}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if _, a, ok := strings.Cut(line, "redirects to https on http://"); ok {
				s.httpAddr = a
			}
			if _, a, ok := strings.Cut(line, "listening on https://"); ok {
				s.addr = a
				done <- nil
				break
			}
		}
		done <- fmt.Errorf("server output ended: %v", sc.Err())
		io.Copy(io.Discard, out)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start")
	}
	return s
}

// stop sends SIGTERM and waits for a graceful exit.
func (s *acmeServer) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
}

// clientFor is a browser-like HTTPS client that reaches name at addr (a
// name mapped to 127.0.0.1) and trusts only roots.
func clientFor(addr string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 90 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:     &tls.Config{RootCAs: roots},
			TLSHandshakeTimeout: 90 * time.Second, // the first handshake waits for issuance
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TestACME gets certificates from Pebble for two names (one from the
// flag, one more from the environment's comma-separated list), serves
// HTTPS and HTTP/2 with them, refuses other names, redirects plain HTTP,
// and after a restart with Pebble gone serves the cached certificate.
func TestACME(t *testing.T) {
	p := startPebble(t, pebbleOptions{})
	data := dataDir(t)
	args := fastArgs(data, "--acme-domain", "presence.test", "--acme-email", "ops@presence.test",
		"--acme-directory", p.dir, "--acme-http-addr", "127.0.0.1:0")
	s := startACMEServer(t, args, "SSL_CERT_FILE="+p.caFile)
	if s.httpAddr == "" {
		t.Fatal("no HTTP-01 listener announced")
	}
	c := clientFor(s.addr, p.roots)
	get := func(c *http.Client, url string) *http.Response {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := get(c, "https://presence.test/healthz")
	leaf := resp.TLS.PeerCertificates[0]
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || !slices.Contains(leaf.DNSNames, "presence.test") {
		t.Fatalf("healthz over ACME TLS: %d %s, names %v", resp.StatusCode, resp.Proto, leaf.DNSNames)
	}
	if !strings.HasPrefix(leaf.Issuer.CommonName, "Pebble") {
		t.Fatalf("issuer %q, want Pebble's", leaf.Issuer.CommonName)
	}
	// The session cookie is Secure: the browser only ever sees HTTPS.
	reg, err := c.Post("https://presence.test/register", "application/x-www-form-urlencoded", strings.NewReader("username=founder&password=password1"))
	if err != nil {
		t.Fatal(err)
	}
	reg.Body.Close()
	if ck := reg.Cookies(); len(ck) == 0 || !ck[0].Secure {
		t.Fatalf("register over ACME TLS: %d, cookies %v; want a Secure session cookie", reg.StatusCode, ck)
	}

	// A name not configured gets no certificate.
	bad := clientFor(s.addr, p.roots)
	if _, err := bad.Get("https://other.test/healthz"); err == nil {
		t.Fatal("a handshake for a name not in --acme-domain succeeded")
	}

	// Plain HTTP on --acme-http-addr: challenges there, the rest redirected.
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+s.httpAddr+"/online?x=1", nil)
	req.Host = "presence.test"
	r, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if loc := r.Header.Get("Location"); r.StatusCode != http.StatusFound || loc != "https://presence.test/online?x=1" {
		t.Fatalf("plain HTTP: %d to %q, want a redirect to https", r.StatusCode, loc)
	}
	entries, _ := os.ReadDir(filepath.Join(data, "acme"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "presence.test") {
		t.Fatalf("<data>/acme holds %v, want the certificate cached as presence.test", names)
	}
	s.stop(t)

	// Restart with Pebble gone and a second name from the environment: the
	// cached certificate is served without the CA; the new name cannot be
	// issued now, and that fails only its own handshakes.
	p.cmd.Process.Kill()
	p.cmd.Wait()
	args = fastArgs(data, "--acme-directory", p.dir, "--acme-http-addr", "")
	s = startACMEServer(t, args, "SSL_CERT_FILE="+p.caFile, "PRESENCE_ACME_DOMAIN=presence.test, www.presence.test")
	if s.httpAddr != "" {
		t.Fatalf("--acme-http-addr \"\" still opened %s", s.httpAddr)
	}
	resp = get(clientFor(s.addr, p.roots), "https://presence.test/healthz")
	if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("after restart: %d, serial %v want %v (the cached one)", resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber, leaf.SerialNumber)
	}
	if _, err := clientFor(s.addr, p.roots).Get("https://www.presence.test/healthz"); err == nil {
		t.Fatal("www.presence.test got a certificate with the CA down")
	}
	s.stop(t)
}

// TestACMEFlags: the domain list takes repeats and commas; bad names are
// refused before anything listens.
func TestACMEFlags(t *testing.T) {
	fs, cfg := serveFlags(io.Discard)
	env := map[string]string{"PRESENCE_ACME_DOMAIN": "a.example, b.example"}
	if err := parseFlags(fs, nil, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if got := []string(cfg.acme.domains); !slices.Equal(got, []string{"a.example", "b.example"}) {
		t.Fatalf("from env: %v", got)
	}
	fs, cfg = serveFlags(io.Discard)
	if err := parseFlags(fs, []string{"--acme-domain", "a.example", "--acme-domain", "c.example,d.example"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if got := []string(cfg.acme.domains); !slices.Equal(got, []string{"a.example", "c.example", "d.example"}) {
		t.Fatalf("flags (which win over env): %v", got)
	}
	if cfg.acme.httpAddr != ":80" || !strings.Contains(cfg.acme.directory, "letsencrypt.org") {
		t.Fatalf("defaults: %q %q", cfg.acme.httpAddr, cfg.acme.directory)
	}
	_, err := runCmd(t, "", nil, "serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--acme-domain", "a.example",
		"--tls-cert", "c.pem", "--tls-key", "k.pem")
	if err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("--acme-domain with --tls-cert: %v", err)
	}
	for _, bad := range []string{"https://x.example", "x.example:443", "nodot"} {
		_, err := runCmd(t, "", nil, "serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--acme-domain", bad, "--acme-http-addr", "")
		if err == nil || !strings.Contains(err.Error(), "--acme-domain") {
			t.Errorf("--acme-domain %q: %v", bad, err)
		}
	}
}

// TestACMEChallenges lets Pebble really validate: its DNS is
// pebble-challtestsrv, which answers 127.0.0.1 for every name, and it
// connects to the server's own ports. TLS-ALPN-01 is answered on --addr;
// for HTTP-01, Pebble's TLS-ALPN-01 port is a closed one, so that
// challenge fails and autocert falls back to HTTP-01 on --acme-http-addr.
func TestACMEChallenges(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dnsBin := needTool(t, "pebble-challtestsrv")
	dns := freePort(t)
	cmd := exec.Command(dnsBin, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", dns,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-management", freePort(t))
	var dnsLog strings.Builder
	cmd.Stdout, cmd.Stderr = &dnsLog, &dnsLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble-challtestsrv's log:\n%s", dnsLog.String())
		}
	})
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n := 0
		fmt.Sscan(p, &n)
		return n
	}
	for _, tc := range []struct{ name, challenge string }{{"TLS-ALPN-01", "tls-alpn-01"}, {"HTTP-01", "http-01"}} {
		t.Run(tc.name, func(t *testing.T) {
			tlsAddr, httpAddr := freePort(t), freePort(t)
			o := pebbleOptions{validate: true, dnsServer: dns, httpPort: port(httpAddr), tlsPort: port(tlsAddr)}
			if tc.challenge == "http-01" {
				o.tlsPort = port(freePort(t)) // nothing listens: TLS-ALPN-01 fails
			}
			p := startPebble(t, o)
			data := dataDir(t)
			args := []string{"serve", "--addr", tlsAddr, "--data", data, "--bcrypt-cost", "4", "--log-level", "warn",
				"--acme-domain", "presence.test", "--acme-directory", p.dir, "--acme-http-addr", httpAddr}
			s := startACMEServer(t, args, "SSL_CERT_FILE="+p.caFile)
			resp, err := clientFor(s.addr, p.roots).Get("https://presence.test/healthz")
			if err != nil {
				t.Fatalf("handshake after %s: %v", tc.challenge, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || !slices.Contains(resp.TLS.PeerCertificates[0].DNSNames, "presence.test") {
				t.Fatalf("%d, names %v", resp.StatusCode, resp.TLS.PeerCertificates[0].DNSNames)
			}
			s.stop(t)
		})
	}
}
