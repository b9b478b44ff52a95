// Command presence is the presence server: it tracks which users of a site
// are online and serves the live widget, the JSON API and the WebSocket
// keep-alive. See `presence help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(runProcess(os.Args[1:])) }

// runProcess wires run to the process: SIGINT and SIGTERM start a graceful
// shutdown, and the result becomes the exit code (0 or 1).
func runProcess(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "presence: %v\n", err)
		return 1
	}
	return 0
}

const usage = `Usage: presence <command> [flags]

Commands:
  serve              run the server (see presence serve -h)
  config [flags]     print the configuration serve would run with (the same flags and
                     environment), secrets redacted
  healthcheck        GET /healthz of the server at --addr; exit 0 if healthy, 1 if not
                     (for Docker's HEALTHCHECK, where there is no curl)
  migrate            apply database migrations and exit
  user add [--admin] NAME
                     create a user; the password is read from standard input. The
                     first account on an empty database is the administrator;
                     --admin makes this one an administrator too
  user promote NAME  make a user an administrator
  user demote NAME   make an administrator a normal user
  user token NAME    issue an API access token for a user and print it
  user embed-token NAME
                     issue a read-only widget token (for embedding on other sites);
                     it never expires unless --embed-token-ttl or --ttl says so
  user tokens NAME   list a user's tokens: id, kind, created, expires, last used, revoked
  user revoke-token TOKEN|ID
                     revoke an API, embed or session token, by its secret or its id
  apikey create NAME print a new server key for the host site's backend (/api/server/); shown once
  apikey list        list server keys: id, name, created, last used, revoked
  apikey revoke NAME|ID|KEY
                     revoke a server key
  webhook log [--limit N] [--status pending|delivered|failed]
                     show recent webhook deliveries: status, attempts, last result,
                     next attempt
  backup FILE        write a consistent copy of the database to FILE (safe while serving)
  restore FILE       replace the database with a backup (the server must be stopped)
  version            print the version

Every flag has an environment variable: --flush-interval is PRESENCE_FLUSH_INTERVAL.
`

// run is the whole program; main only wires it to the process. It returns
// when the command is done or, for serve, when ctx is cancelled and the
// server has shut down.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := runCommand(ctx, args, getenv, stdin, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h or --help: the flags were listed
	}
	return err
}

func runCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stdout, stderr)
	case "config":
		return runConfig(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "user":
		return runUser(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "apikey":
		return runAPIKey(ctx, args[1:], getenv, stdout, stderr)
	case "webhook":
		return runWebhook(ctx, args[1:], getenv, stdout, stderr)
	case "backup":
		return runBackup(ctx, args[1:], getenv, stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "presence", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
