package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeConfig is what `presence serve` is told about automatic certificates.
type acmeConfig struct {
	domains   listFlag
	email     string
	httpAddr  string
	directory string
}

// addACMEFlags adds the --acme-* flags to serve's flag set.
func addACMEFlags(fs *flag.FlagSet, c *acmeConfig) {
	fs.Var(&c.domains, "acme-domain", "get and renew a certificate for this `name` automatically (ACME, Let's Encrypt by default) and serve HTTPS and HTTP/2 on --addr; repeat it, or comma-separate (as in PRESENCE_ACME_DOMAIN), for several names")
	fs.StringVar(&c.email, "acme-email", "", "contact address given to the ACME CA for expiry and problem notices (optional)")
	fs.StringVar(&c.httpAddr, "acme-http-addr", ":80", `with --acme-domain: listen here for ACME HTTP-01 challenges and redirect everything else to https ("" = no HTTP listener; TLS-ALPN-01 on --addr still works)`)
	fs.StringVar(&c.directory, "acme-directory", acme.LetsEncryptURL, "ACME directory URL of the CA (Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory)")
}

// enabled reports whether certificates come from ACME.
func (c *acmeConfig) enabled() bool { return len(c.domains) > 0 }

// acmeCertificates is a running ACME set-up: the TLS configuration for the
// main listener (TLS-ALPN-01 answered there) and, unless disabled, the
// HTTP-01 listener's server.
type acmeCertificates struct {
	TLS      *tls.Config
	http     *http.Server
	httpLn   net.Listener
	HTTPAddr net.Addr // nil without an HTTP-01 listener
}

// start prepares autocert with its cache in <data>/acme and opens the
// HTTP-01 listener. Certificates are requested on the first handshake for
// a name and renewed 30 days before they expire, both by autocert.
func (c *acmeConfig) start(dataDir string, log *slog.Logger, headerTimeout time.Duration) (*acmeCertificates, error) {
	for _, d := range c.domains {
		if strings.ContainsAny(d, ":/ ") || !strings.Contains(d, ".") && d != "localhost" {
			return nil, fmt.Errorf("--acme-domain %q: give a host name (presence.example.com)", d)
		}
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Join(dataDir, "acme")),
		HostPolicy: autocert.HostWhitelist(c.domains...),
		Email:      c.email,
		Client:     &acme.Client{DirectoryURL: c.directory, UserAgent: "presence/" + version()},
	}
	// h2, http/1.1 and acme-tls/1 (TLS-ALPN-01 is answered on this
	// listener). A name that gets no certificate fails its handshake, which
	// the server's error log reports.
	tlsConf := m.TLSConfig()
	tlsConf.MinVersion = tls.VersionTLS12
	a := &acmeCertificates{TLS: tlsConf}
	if c.httpAddr != "" {
		ln, err := net.Listen("tcp", c.httpAddr)
		if err != nil {
			return nil, fmt.Errorf("--acme-http-addr: %w", err)
		}
		a.httpLn, a.HTTPAddr = ln, ln.Addr()
		// HTTP-01 challenges; every other request is redirected to https.
		a.http = &http.Server{
			Handler:           stripPort(m.HTTPHandler(nil)),
			ReadHeaderTimeout: headerTimeout,
			ReadTimeout:       30 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	return a, nil
}

// serveHTTP serves the HTTP-01 listener until Close; nil without one.
func (a *acmeCertificates) serveHTTP() error {
	if a.http == nil {
		return nil
	}
	if err := a.http.Serve(a.httpLn); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("acme http: %w", err)
	}
	return nil
}

// close stops the HTTP-01 listener.
func (a *acmeCertificates) close() {
	if a.http != nil {
		a.http.Close()
	}
}

// stripPort drops a port from the Host header before autocert sees it:
// its host policy compares bare names, so a challenge fetched on a port
// other than 80 (a port mapping, a test CA) would get 403.
func stripPort(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r = r.Clone(r.Context())
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// listFlag is a repeatable flag that also takes comma-separated values,
// so the environment variable can carry several.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set appends each comma-separated item of v.
func (l *listFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}
