package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
)

// secretWords mark a flag as secret: a flag whose name contains one of them
// is printed redacted by `presence config`, unless notSecret lists it. New
// flags are therefore redacted by default when their name looks secret.
var secretWords = []string{"secret", "password", "passwd", "token", "key", "credential", "private"}

// notSecret lists flags whose names contain a secret word but whose values
// are not secrets: a lifetime, not a token; the path of a key file, not the
// key (--tls-key); a public key file (--jwt-public-key). --jwt-secret is
// redacted.
var notSecret = map[string]bool{"token-ttl": true, "tls-key": true, "jwt-public-key": true, "session-keys": true}

// isSecretFlag reports whether `presence config` redacts the flag's value.
func isSecretFlag(name string) bool {
	if notSecret[name] {
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// redacted replaces a secret's value in `presence config`.
const redacted = "[redacted]"

// redactURLPassword hides the password of a URL with user info
// (postgres://u:secret@db/x), in any flag: URLs carry credentials whatever
// the flag is called.
func redactURLPassword(v string) string {
	if strings.Contains(v, ",") { // a list (--webhook-url)
		items := strings.Split(v, ",")
		for i, item := range items {
			items[i] = redactURLPassword(item)
		}
		return strings.Join(items, ",")
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	if _, ok := u.User.Password(); !ok {
		return v
	}
	u.User = url.UserPassword(u.User.Username(), "xxxxx")
	return strings.Replace(u.String(), "xxxxx", redacted, 1)
}

// runConfig prints the configuration serve would run with, given the same
// flags and environment: every flag's value and where it came from.
func runConfig(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, cfg := serveFlags(stderr)
	fs.Init("presence config", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: presence config [serve flags]\n\nPrints the effective configuration of presence serve with these flags and\nthe environment, secrets redacted.\n\n")
		printFlags(fs.Output(), fs)
	}
	// Which flags the command line sets, told apart from the environment
	// on a fresh set (parsing fs twice would repeat repeatable flags).
	cmdline, _ := serveFlags(io.Discard)
	if err := cmdline.Parse(args); err != nil {
		return fs.Parse(args) // the same error, with fs's usage
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("presence config takes flags only, not %q", fs.Arg(0))
	}
	given := map[string]bool{}
	cmdline.Visit(func(f *flag.Flag) { given[f.Name] = true })
	writeConfig(stdout, fs, given, getenv)
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("this configuration would not start: %w", err)
	}
	return nil
}

// writeConfig prints one line per flag of fs: name, value (redacted if
// secret and set), and its source: the command line (given), its
// environment variable, or the default.
func writeConfig(w io.Writer, fs *flag.FlagSet, given map[string]bool, getenv func(string) string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tVALUE\tFROM")
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		switch {
		case isSecretFlag(f.Name) && v != "":
			v = redacted
		case v == "":
			v = `""`
		default:
			v = redactURLPassword(v)
		}
		from := "default"
		switch env := envName(f.Name); {
		case given[f.Name]:
			from = "flag"
		case !noEnv[f.Name] && getenv(env) != "":
			from = env
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\n", f.Name, v, from)
	})
	tw.Flush()
}
