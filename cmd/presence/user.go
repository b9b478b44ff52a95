package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/presencehq/presence/store"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var data string
	addDataFlag(fs, &data)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	db, applied, err := openStore(ctx, data)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
	}
	for _, name := range applied {
		fmt.Fprintln(stdout, "applied", name)
	}
	return nil
}

func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "token" && args[0] != "embed-token" && args[0] != "revoke-token") {
		return fmt.Errorf("usage: presence user add|token|embed-token NAME, presence user revoke-token TOKEN")
	}
	sub := args[0]
	fs := newFlagSet("user "+sub, stderr)
	var data string
	addDataFlag(fs, &data)
	ttl := fs.Duration("token-ttl", 30*24*time.Hour, "token lifetime for user token (0 = never expires)")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: presence user %s [flags] NAME", sub)
	}
	name := fs.Arg(0)
	db, _, err := openStore(ctx, data)
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "revoke-token" {
		if err := db.RevokeToken(ctx, name); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked")
		return nil
	}

	switch sub {
	case "add":
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		u, err := db.CreateUser(ctx, name, strings.TrimRight(line, "\r\n"))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created user %s (id %d)\n", u.Username, u.ID)
	case "token", "embed-token":
		kind := store.TokenAPI
		if sub == "embed-token" {
			kind = store.TokenEmbed
		}
		u, err := db.UserByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user named %q", name)
		}
		if err != nil {
			return err
		}
		tok, err := db.CreateToken(ctx, u.ID, kind, *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
	}
	return nil
}
