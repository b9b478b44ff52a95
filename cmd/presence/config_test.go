package main

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestServeHelp: -h and --help list every serve flag with its environment
// variable and default, and exit 0.
func TestServeHelp(t *testing.T) {
	all, _ := serveFlags(io.Discard)
	for _, arg := range []string{"-h", "--help"} {
		out, err := runCmd(t, "", nil, "serve", arg)
		if err != nil {
			t.Fatalf("serve %s: %v", arg, err)
		}
		all.VisitAll(func(f *flag.Flag) {
			entry := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(f.Name) + `( \w+)?\n      .+\n      \(` +
				regexp.QuoteMeta(envName(f.Name)) + `, default [^\n]+\)$`)
			if !entry.MatchString(out) {
				t.Errorf("serve %s: no entry with env and default for --%s in:\n%s", arg, f.Name, out)
			}
		})
	}
	out, _ := runCmd(t, "", nil, "serve", "--help")
	for _, want := range []string{`(PRESENCE_ADDR, default "localhost:8080")`, "(PRESENCE_GRACE, default 5s)", "(PRESENCE_METRICS_ADDR, default none)", "(PRESENCE_COOKIE_SECURE, default false)"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	// A flag with no environment variable says none.
	out, err := runCmd(t, "", nil, "user", "token", "--help")
	if err != nil || !strings.Contains(out, "--ttl duration") || strings.Contains(out, "PRESENCE_TTL") {
		t.Fatalf("user token --help: %v\n%s", err, out)
	}
}

// TestConfig: flags win over the environment, which wins over defaults,
// and each line says which it was.
func TestConfig(t *testing.T) {
	env := map[string]string{"PRESENCE_GRACE": "7s", "PRESENCE_ADDR": "0.0.0.0:1", "PRESENCE_PUBLIC_URL": "https://ops:hunter2@presence.example.com"}
	out, err := runCmd(t, "", env, "config", "--addr", "127.0.0.1:9", "--log-level=debug")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^--addr +127\.0\.0\.1:9 +flag$`),
		regexp.MustCompile(`(?m)^--log-level +debug +flag$`),
		regexp.MustCompile(`(?m)^--grace +7s +PRESENCE_GRACE$`),
		regexp.MustCompile(`(?m)^--flush-interval +1s +default$`),
		regexp.MustCompile(`(?m)^--metrics-addr +"" +default$`),
		regexp.MustCompile(`(?m)^--public-url +https://ops:\[redacted\]@presence\.example\.com +PRESENCE_PUBLIC_URL$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("config output lacks %v:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Error("a URL's password is printed")
	}
	all, _ := serveFlags(io.Discard)
	all.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out, "--"+f.Name+" ") {
			t.Errorf("config does not print --%s", f.Name)
		}
	})
	if _, err := runCmd(t, "", nil, "config", "--ping-interval", "1m"); err == nil || !strings.Contains(err.Error(), "would not start") {
		t.Fatalf("an invalid configuration: %v", err)
	}
	if _, err := runCmd(t, "", nil, "config", "--no-such-flag"); err == nil {
		t.Fatal("unknown flag: no error")
	}
}

// TestConfigRedaction: which names count as secret is explicit, and every
// secret-looking flag is redacted unless listed as not secret.
func TestConfigRedaction(t *testing.T) {
	for name, secret := range map[string]bool{
		"session-secret": true, "smtp-password": true, "api-key": true, "admin-token": true,
		"oauth-client-secret": true, "db-passwd": true, "private-key-file": true,
		"token-ttl": false, "tls-key": false, "addr": false, "grace": false, "public-url": false,
	} {
		if got := isSecretFlag(name); got != secret {
			t.Errorf("isSecretFlag(%q) = %v, want %v", name, got, secret)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("smtp-password", "", "")
	fs.String("api-key", "", "")
	fs.String("token-ttl", "", "")
	fs.Parse([]string{"--smtp-password", "hunter2", "--token-ttl", "1h"})
	var buf bytes.Buffer
	writeConfig(&buf, fs, map[string]bool{"smtp-password": true, "token-ttl": true}, func(string) string { return "" })
	out := buf.String()
	if strings.Contains(out, "hunter2") || !regexp.MustCompile(`(?m)^--smtp-password +\[redacted\] +flag$`).MatchString(out) {
		t.Errorf("secret not redacted:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^--api-key +"" +default$`).MatchString(out) || !strings.Contains(out, "1h") {
		t.Errorf("unset secret or non-secret shown wrong:\n%s", out)
	}

	// Today's serve flags: the ones redacted, listed so that adding a
	// secret-looking flag is a decision (add it here, or to notSecret).
	var got []string
	all, _ := serveFlags(io.Discard)
	all.VisitAll(func(f *flag.Flag) {
		if isSecretFlag(f.Name) {
			got = append(got, f.Name)
		}
	})
	if want := []string{"jwt-secret", "webhook-secret"}; !slices.Equal(got, want) {
		t.Errorf("serve flags redacted by presence config = %v, want %v", got, want)
	}
}

// TestHealthcheck asks a real server, a failing one and nobody.
func TestHealthcheck(t *testing.T) {
	data := dataDir(t)
	base, stop := inProcess(t, fastArgs(data))
	defer stop()
	addr := strings.TrimPrefix(base, "http://")
	if out, err := runCmd(t, "", map[string]string{"PRESENCE_ADDR": addr}, "healthcheck"); err != nil || !strings.Contains(out, `"status":"ok"`) {
		t.Fatalf("healthy server: %q %v", out, err)
	}
	// A wildcard listen address is asked on loopback.
	_, port, _ := strings.Cut(addr, ":")
	if _, err := runCmd(t, "", nil, "healthcheck", "--addr", ":"+port); err != nil {
		t.Fatalf("--addr :%s: %v", port, err)
	}
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"status":"unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	if _, err := runCmd(t, "", nil, "healthcheck", "--healthcheck-url", sick.URL+"/healthz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v", err)
	}
	stop()
	if _, err := runCmd(t, "", nil, "healthcheck", "--addr", addr); err == nil {
		t.Fatal("stopped server: healthy")
	}
}
