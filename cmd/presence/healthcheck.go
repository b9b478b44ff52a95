package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck asks a running server's /healthz whether it is healthy:
// nil (exit 0) for 200, an error (exit 1) for anything else or no answer.
// It is Docker's HEALTHCHECK, where the image has no curl. The server is
// found at --addr (PRESENCE_ADDR, as serve reads it), or --healthcheck-url.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", stderr)
	var addr, url string
	var timeout time.Duration
	fs.StringVar(&addr, "addr", "localhost:8080", "address the server listens on (as for serve); a wildcard host (:8080, 0.0.0.0) is asked on loopback")
	fs.StringVar(&url, "healthcheck-url", "", "full URL to ask instead (https://presence.example.com/healthz)")
	fs.DurationVar(&timeout, "healthcheck-timeout", 5*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if url == "" {
		u, err := healthURL(addr)
		if err != nil {
			return err
		}
		url = u
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s", body)
	return nil
}

// healthURL is the /healthz URL of a server listening on addr; a wildcard
// or empty host is reached on loopback.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("healthcheck: --addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
