package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presencehq/presence/store"
)

func runCmd(t *testing.T, stdin string, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &out)
	return out.String(), err
}

func TestRun(t *testing.T) {
	t.Run("Version", func(t *testing.T) {
		out, err := runCmd(t, "", nil, "version")
		if err != nil || !strings.HasPrefix(out, "presence ") {
			t.Fatalf("%q %v", out, err)
		}
	})
	t.Run("ErrNoCommand", func(t *testing.T) {
		if out, err := runCmd(t, "", nil); err == nil || !strings.Contains(out, "Usage") {
			t.Fatalf("%q %v", out, err)
		}
	})
	t.Run("ErrUnknownCommand", func(t *testing.T) {
		if _, err := runCmd(t, "", nil, "frobnicate"); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("MigrateAndUsers", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "d")
		out, err := runCmd(t, "", nil, "migrate", "--data", data)
		if err != nil || !strings.Contains(out, "applied 0001_init.sql") {
			t.Fatalf("%q %v", out, err)
		}
		if out, _ := runCmd(t, "", nil, "migrate", "--data", data); !strings.Contains(out, "up to date") {
			t.Fatalf("second migrate: %q", out)
		}
		// The data dir can come from the environment.
		env := map[string]string{"PRESENCE_DATA": data}
		out, err = runCmd(t, "s3cret-password\n", env, "user", "add", "alice")
		if err != nil || !strings.Contains(out, "created user alice") {
			t.Fatalf("user add: %q %v", out, err)
		}
		if _, err := runCmd(t, "short\n", env, "user", "add", "bob"); err == nil || !strings.Contains(err.Error(), "password") {
			t.Fatalf("short password: %v", err)
		}
		out, err = runCmd(t, "", env, "user", "token", "ALICE")
		if err != nil || !strings.HasPrefix(out, "prs_") {
			t.Fatalf("user token: %q %v", out, err)
		}
		if _, err := runCmd(t, "", env, "user", "token", "nobody"); err == nil {
			t.Fatal("token for unknown user")
		}
		embed, err := runCmd(t, "", env, "user", "embed-token", "alice")
		if err != nil || !strings.HasPrefix(embed, "prs_") {
			t.Fatalf("embed-token: %q %v", embed, err)
		}
		db := openDB(t, data)
		if _, err := db.UserByToken(context.Background(), store.TokenEmbed, strings.TrimSpace(embed)); err != nil {
			t.Fatalf("new embed token invalid: %v", err)
		}
		if out, err := runCmd(t, "", env, "user", "revoke-token", strings.TrimSpace(embed)); err != nil || !strings.Contains(out, "revoked") {
			t.Fatalf("revoke-token: %q %v", out, err)
		}
		if _, err := db.UserByToken(context.Background(), store.TokenEmbed, strings.TrimSpace(embed)); !errors.Is(err, store.ErrInvalidToken) {
			t.Fatalf("revoked embed token still valid: %v", err)
		}
	})
	t.Run("ErrBadConfig", func(t *testing.T) {
		data := t.TempDir()
		for _, args := range [][]string{
			{"serve", "--data", data, "--ping-interval", "40s", "--heartbeat-deadline", "30s"},
			{"serve", "--data", data, "--grace", "soon"},
			{"serve", "--data", data, "--allowed-origins", "not a url"},
		} {
			if _, err := runCmd(t, "", nil, args...); err == nil {
				t.Errorf("%v: no error", args)
			}
		}
		env := map[string]string{"PRESENCE_HEARTBEAT_DEADLINE": "nope"}
		if _, err := runCmd(t, "", env, "serve", "--data", data); err == nil || !strings.Contains(err.Error(), "PRESENCE_HEARTBEAT_DEADLINE") {
			t.Errorf("bad env value: %v", err)
		}
	})
}

func TestParseFlags(t *testing.T) {
	fs, cfg := serveFlags(&bytes.Buffer{})
	env := map[string]string{"PRESENCE_ADDR": "0.0.0.0:9", "PRESENCE_GRACE": "7s", "PRESENCE_COOKIE_SECURE": "true",
		"PRESENCE_TLS_CERT": "c.pem", "PRESENCE_TLS_KEY": "k.pem"}
	if err := parseFlags(fs, []string{"--grace", "2s"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "0.0.0.0:9" || cfg.grace.String() != "2s" || !cfg.cookieSecure {
		t.Fatalf("addr=%s grace=%s secure=%v: env fills, flags win", cfg.addr, cfg.grace, cfg.cookieSecure)
	}
	if cfg.tlsCert != "c.pem" || cfg.tlsKey != "k.pem" {
		t.Fatalf("tls cert %q key %q from the environment", cfg.tlsCert, cfg.tlsKey)
	}
}

// TestUserAdmin: the first account is the administrator, --admin makes
// another, promote and demote change the flag.
func TestUserAdmin(t *testing.T) {
	env := map[string]string{"PRESENCE_DATA": filepath.Join(t.TempDir(), "d")}
	out, err := runCmd(t, "s3cret-password\n", env, "user", "add", "first")
	if err != nil || !strings.Contains(out, "created user first (id 1, administrator)") {
		t.Fatalf("first user add: %q %v", out, err)
	}
	out, err = runCmd(t, "s3cret-password\n", env, "user", "add", "plain")
	if err != nil || strings.Contains(out, "administrator") {
		t.Fatalf("second user add: %q %v", out, err)
	}
	out, err = runCmd(t, "s3cret-password\n", env, "user", "add", "--admin", "ops")
	if err != nil || !strings.Contains(out, "administrator") {
		t.Fatalf("user add --admin: %q %v", out, err)
	}
	db := openDB(t, env["PRESENCE_DATA"])
	isAdmin := func(name string) bool {
		u, err := db.UserByName(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		return u.IsAdmin
	}
	if !isAdmin("first") || isAdmin("plain") || !isAdmin("ops") {
		t.Fatal("admin flags wrong after add")
	}
	if out, err := runCmd(t, "", env, "user", "promote", "PLAIN"); err != nil || !strings.Contains(out, "plain is an administrator") {
		t.Fatalf("promote: %q %v", out, err)
	}
	if !isAdmin("plain") {
		t.Fatal("promote did not stick")
	}
	if _, err := runCmd(t, "", env, "user", "demote", "first"); err != nil || isAdmin("first") {
		t.Fatalf("demote: %v", err)
	}
	if _, err := runCmd(t, "", env, "user", "promote", "nobody"); err == nil {
		t.Fatal("promote of an unknown user: no error")
	}
	// PRESENCE_ADMIN is not a thing: it would make every add an admin.
	env["PRESENCE_ADMIN"] = "true"
	if out, err := runCmd(t, "s3cret-password\n", env, "user", "add", "later"); err != nil || strings.Contains(out, "administrator") {
		t.Fatalf("PRESENCE_ADMIN took effect: %q %v", out, err)
	}
}
