package main

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// newFlagSet returns a flag set for a subcommand that writes its help to
// stderr. Its -h/--help lists every flag with its environment variable and
// default (see printFlags), so flags added later show up by themselves.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("presence "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n", fs.Name())
		printFlags(fs.Output(), fs)
	}
	return fs
}

// printFlags writes every flag of fs: its name and type, its environment
// variable, its default, then its description.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "Flags (each can also be set by its environment variable; the command line wins):")
	fs.VisitAll(func(f *flag.Flag) {
		typ, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		var notes []string
		if !noEnv[f.Name] {
			notes = append(notes, envName(f.Name))
		}
		notes = append(notes, "default "+describeDefault(f))
		fmt.Fprintf(w, "%s\n      %s\n      (%s)\n", line, help, strings.Join(notes, ", "))
	})
}

// describeDefault shows a flag's default as it would be typed; "none" for
// an empty one.
func describeDefault(f *flag.Flag) string {
	if f.DefValue == "" {
		return "none"
	}
	if _, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
		return f.DefValue
	}
	if _, err := strconv.ParseFloat(f.DefValue, 64); err == nil {
		return f.DefValue
	}
	if _, err := time.ParseDuration(f.DefValue); err == nil {
		return f.DefValue
	}
	return strconv.Quote(f.DefValue)
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

// envNames lists the flags whose environment variable is not their name
// in capitals: a repeatable flag's variable takes a comma-separated list.
var envNames = map[string]string{"webhook-url": "PRESENCE_WEBHOOK_URLS", "redis": "PRESENCE_REDIS_URL"}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	if name, ok := envNames[flagName]; ok {
		return name
	}
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
