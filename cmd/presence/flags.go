package main

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// newFlagSet returns a flag set for a subcommand that writes its help to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("presence "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// noEnv lists flags that have no environment variable: --ttl applies to
// one token, and a PRESENCE_TTL set for it would silently apply to all;
// a PRESENCE_ADMIN would make every `user add` an administrator.
var noEnv = map[string]bool{"ttl": true, "admin": true}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable: --flush-interval from
// PRESENCE_FLUSH_INTERVAL. Command-line flags win over the environment.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || noEnv[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "PRESENCE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// buildVersion is set with -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
