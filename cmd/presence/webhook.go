package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/webhook"
)

// minWebhookSecret is the shortest --webhook-secret accepted: a short one
// could be guessed from signed requests.
const minWebhookSecret = 16

// webhookFlags are the serve flags for webhooks to the host's backend
// (issue 11, part 3; docs/INTEGRATION.md, "Webhooks").
type webhookFlags struct {
	urls   listFlag
	secret string
}

// register adds the flags to fs.
func (w *webhookFlags) register(fs *flag.FlagSet) {
	fs.Var(&w.urls, "webhook-url", "POST a signed JSON event to this `URL` whenever a user comes online or goes offline (at least once, in order per user, retried for a day); repeat it, or comma-separate (as in PRESENCE_WEBHOOK_URLS), for several receivers; needs --webhook-secret")
	fs.StringVar(&w.secret, "webhook-secret", "", "key of the webhooks' X-Presence-Signature, HMAC-SHA256 over timestamp.body (at least 16 bytes; prefer PRESENCE_WEBHOOK_SECRET to keep it out of ps)")
}

// validate checks the flags without starting anything.
func (w *webhookFlags) validate() error {
	if len(w.urls) == 0 {
		return nil
	}
	if w.secret == "" {
		return errors.New("--webhook-url needs --webhook-secret (PRESENCE_WEBHOOK_SECRET): receivers must be able to tell Presence's requests from forgeries")
	}
	if len(w.secret) < minWebhookSecret {
		return fmt.Errorf("--webhook-secret must be at least %d bytes", minWebhookSecret)
	}
	for _, u := range w.urls {
		if err := webhook.CheckURL(u); err != nil {
			return fmt.Errorf("--webhook-url: %w", err)
		}
	}
	return nil
}

// webhookPoll is how often a node on PostgreSQL looks for deliveries
// other nodes stored, or left claimed when they died.
const webhookPoll = 5 * time.Second

// webhookNode names this node in its claims on deliveries: the same name
// across restarts of one installation (host and data directory), so that
// after a crash it takes back its claims at once.
func webhookNode(data string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(data); err == nil {
		data = abs
	}
	sum := sha256.Sum256([]byte(host + "\x00" + data))
	return host + "/" + hex.EncodeToString(sum[:6])
}

// start runs the dispatcher on the engine's bus, resuming what a previous
// run left pending; nil without --webhook-url. On PostgreSQL several
// nodes may dispatch: each polls for what the others stored.
// othersServing: other nodes of a cluster may be serving users (see
// webhook.Config.OthersServing).
func (w *webhookFlags) start(ctx context.Context, db *store.DB, data string, engine *presence.Engine, othersServing bool, log *slog.Logger) (*webhook.Dispatcher, error) {
	if len(w.urls) == 0 {
		return nil, nil
	}
	var poll time.Duration
	if db.Dialect() == store.Postgres {
		poll = webhookPoll
	}
	d, err := webhook.New(webhook.Config{
		Node:          webhookNode(data),
		OthersServing: othersServing,
		Poll:          poll,
		URLs:          w.urls,
		Secret:        w.secret,
		Store:         db,
		Bus:           engine.Bus(),
		Clock:         engine.Clock(),
		Log:           log,
		UserAgent:     "Presence-Webhooks/" + version(),
	})
	if err != nil {
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// webhookUsage lists the webhook subcommands.
const webhookUsage = "usage: presence webhook log [--limit N] [--status pending|delivered|failed]"

// runWebhook shows the webhook deliveries stored in the database.
func runWebhook(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "log" {
		return errors.New(webhookUsage)
	}
	fs := newFlagSet("webhook log", stderr)
	var data storeFlags
	var status string
	var limit int
	addStoreFlags(fs, &data)
	fs.IntVar(&limit, "limit", 50, "how many deliveries to show, newest first")
	fs.StringVar(&status, "status", "", "only deliveries in this state: pending, delivered or failed (given up)")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New(webhookUsage)
	}
	switch store.WebhookStatus(status) {
	case "", store.WebhookPending, store.WebhookDelivered, store.WebhookFailed:
	default:
		return fmt.Errorf("--status must be pending, delivered or failed, not %q", status)
	}
	if limit <= 0 {
		return errors.New("--limit must be positive")
	}
	db, _, err := openStore(ctx, data)
	if err != nil {
		return err
	}
	defer db.Close()
	ds, err := db.WebhookLog(ctx, store.WebhookStatus(status), limit)
	if err != nil {
		return err
	}
	pending, err := db.PendingWebhooks(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d pending; showing the %d newest deliveries%s\n", pending, len(ds), map[bool]string{true: " (" + status + ")", false: ""}[status != ""])
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tTYPE\tUSER\tURL\tSTATUS\tATTEMPTS\tCREATED\tLAST ATTEMPT\tLAST RESULT\tNEXT ATTEMPT")
	for _, d := range ds {
		result := "-"
		switch {
		case d.LastError != "":
			result = d.LastError
		case d.LastHTTPStatus != 0:
			result = "HTTP " + strconv.Itoa(d.LastHTTPStatus)
		}
		next := "-"
		if d.Status == store.WebhookPending {
			next = when(d.NextAttemptAt, "-")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.ID, d.EventID, d.Type, d.UserKey,
			redactURLPassword(d.URL), d.Status, d.Attempts, when(d.CreatedAt, "-"), when(d.LastAttemptAt, "never"),
			strings.ReplaceAll(result, "\t", " "), next)
	}
	return tw.Flush()
}
