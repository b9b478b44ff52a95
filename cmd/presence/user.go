package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presencehq/presence/store"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var data storeFlags
	var copyFrom string
	addStoreFlags(fs, &data)
	fs.StringVar(&copyFrom, "copy-from", "", "with --database-url: copy this SQLite database (a stopped server's <data>/presence.db, or a backup) into the empty PostgreSQL database")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if copyFrom != "" {
		return runCopy(ctx, data, copyFrom, stdout)
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

// runCopy copies the SQLite database at path into the PostgreSQL database
// of --database-url, which must be empty.
func runCopy(ctx context.Context, data storeFlags, path string, stdout io.Writer) error {
	if data.url == "" {
		return errors.New("--copy-from needs --database-url (PRESENCE_DATABASE_URL): the PostgreSQL database to copy into")
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("--copy-from: %w", err)
	}
	src, err := store.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	db, _, err := openStore(ctx, data)
	if err != nil {
		return err
	}
	defer db.Close()
	counts, err := db.CopyFrom(ctx, src)
	if err != nil {
		return err
	}
	tables := make([]string, 0, len(counts))
	for t := range counts {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		fmt.Fprintf(stdout, "copied %d rows of %s\n", counts[t], t)
	}
	fmt.Fprintf(stdout, "copied %s into PostgreSQL; copy %s to every node's --data too (and %s, if there is one, to one node's: it moves those avatar files into the database at start)\n",
		path, filepath.Join(filepath.Dir(path), "session.keys"), filepath.Join(filepath.Dir(path), "avatars"))
	return nil
}

// userUsage lists the user subcommands.
const userUsage = "usage: presence user add [--admin]|promote|demote|token|embed-token|tokens NAME, presence user revoke-token TOKEN|ID"

func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(userUsage)
	}
	sub := args[0]
	switch sub {
	case "add", "promote", "demote", "token", "embed-token", "tokens", "revoke-token":
	default:
		return errors.New(userUsage)
	}
	fs := newFlagSet("user "+sub, stderr)
	var data storeFlags
	addStoreFlags(fs, &data)
	var ttl, defaultTTL *time.Duration
	var admin bool
	switch sub {
	case "add":
		fs.BoolVar(&admin, "admin", false, "make the new user an administrator (the first account on an empty database always is)")
	case "token":
		defaultTTL = fs.Duration("token-ttl", 30*24*time.Hour, "lifetime of the API token (0 = never expires)")
	case "embed-token":
		defaultTTL = fs.Duration("embed-token-ttl", 0, "lifetime of the embed token (0 = never expires; revoke it to end it)")
	}
	if defaultTTL != nil {
		ttl = fs.Duration("ttl", 0, "lifetime of this token, overriding the default above (0 = never expires)")
	}
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		what := "NAME"
		if sub == "revoke-token" {
			what = "TOKEN|ID"
		}
		return fmt.Errorf("usage: presence user %s [flags] %s", sub, what)
	}
	if ttl != nil && !flagGiven(fs, "ttl") {
		ttl = defaultTTL
	}
	name := fs.Arg(0)
	db, _, err := openStore(ctx, data)
	if err != nil {
		return err
	}
	defer db.Close()

	switch sub {
	case "revoke-token":
		return revokeToken(ctx, db, name, stdout)
	case "add":
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		create := db.CreateUser
		if admin {
			create = db.CreateAdmin
		}
		u, err := create(ctx, name, strings.TrimRight(line, "\r\n"))
		if err != nil {
			return err
		}
		role := ""
		if u.IsAdmin {
			role = ", administrator"
		}
		fmt.Fprintf(stdout, "created user %s (id %d%s)\n", u.Username, u.ID, role)
		return nil
	}
	u, err := db.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user named %q", name)
	}
	if err != nil {
		return err
	}
	switch sub {
	case "promote", "demote":
		if err := db.SetAdmin(ctx, u.ID, sub == "promote"); err != nil {
			return err
		}
		if sub == "promote" {
			fmt.Fprintf(stdout, "%s is an administrator\n", u.Username)
		} else {
			fmt.Fprintf(stdout, "%s is no longer an administrator\n", u.Username)
		}
	case "tokens":
		list, err := db.TokensOf(ctx, u.ID)
		if err != nil {
			return err
		}
		printTokens(stdout, list, time.Now())
	case "token", "embed-token":
		kind := store.TokenAPI
		if sub == "embed-token" {
			kind = store.TokenEmbed
		}
		tok, err := db.CreateToken(ctx, u.ID, kind, *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
	}
	return nil
}

// flagGiven reports whether the flag was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// revokeToken revokes a token by its secret (prs_…) or by the short id
// `presence user tokens` shows.
func revokeToken(ctx context.Context, db *store.DB, arg string, stdout io.Writer) error {
	if strings.HasPrefix(arg, "prs_") {
		if err := db.RevokeToken(ctx, arg); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked")
		return nil
	}
	t, err := db.RevokeTokenByShortID(ctx, arg)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no token with id %q (give the token itself, prs_…, or an id from presence user tokens NAME)", arg)
	case errors.Is(err, store.ErrAmbiguousToken):
		return fmt.Errorf("id %q matches more than one token: give more of its digits", arg)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "revoked %s token %s\n", t.Kind, arg)
	return nil
}

// printTokens writes a table of tokens: short id, kind, created, expires,
// last used, revoked, and whether it still works.
func printTokens(w io.Writer, list []store.TokenInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tCREATED\tEXPIRES\tLAST USED\tREVOKED\tSTATUS")
	for _, t := range list {
		status := "live"
		switch {
		case !t.RevokedAt.IsZero():
			status = "revoked"
		case !t.Live(now):
			status = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ShortID, t.Kind, when(t.CreatedAt, "-"),
			when(t.ExpiresAt, "never"), when(t.LastUsedAt, "never"), when(t.RevokedAt, "-"), status)
	}
	tw.Flush()
}

// when formats t in UTC to the second, or none for the zero time.
func when(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}
