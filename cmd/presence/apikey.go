package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/presencehq/presence/store"
)

// apikeyUsage lists the apikey subcommands.
const apikeyUsage = "usage: presence apikey create NAME | list | revoke NAME|ID|KEY"

// runAPIKey manages server keys, with which the host site's backend calls
// /api/server/. A new key is printed once; only its hash is stored.
func runAPIKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(apikeyUsage)
	}
	sub := args[0]
	want := 1
	switch sub {
	case "create", "revoke":
	case "list":
		want = 0
	default:
		return errors.New(apikeyUsage)
	}
	fs := newFlagSet("apikey "+sub, stderr)
	var data storeFlags
	addStoreFlags(fs, &data)
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if fs.NArg() != want {
		return errors.New(apikeyUsage)
	}
	db, _, err := openStore(ctx, data)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "create":
		secret, k, err := db.CreateServerKey(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "created server key %q (id %s); it is shown only this once: store it in the host's backend\n", k.Name, k.ShortID)
	case "list":
		keys, err := db.ServerKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED\tREVOKED\tSTATUS")
		for _, k := range keys {
			status := "live"
			if !k.RevokedAt.IsZero() {
				status = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ShortID, k.Name, when(k.CreatedAt, "-"),
				when(k.LastUsedAt, "never"), when(k.RevokedAt, "-"), status)
		}
		tw.Flush()
	case "revoke":
		k, err := db.RevokeServerKey(ctx, fs.Arg(0))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("no server key named %q (give its name, its id from presence apikey list, or the key)", fs.Arg(0))
		case errors.Is(err, store.ErrAmbiguousToken):
			return fmt.Errorf("%q matches more than one server key: give its id from presence apikey list", fs.Arg(0))
		case err != nil:
			return err
		}
		fmt.Fprintf(stdout, "revoked server key %s (%s)\n", k.Name, k.ShortID)
	}
	return nil
}
