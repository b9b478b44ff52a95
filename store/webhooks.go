package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// WebhookStatus is where a webhook delivery stands.
type WebhookStatus string

// The states of a webhook delivery.
const (
	// WebhookPending is waiting for its first or next attempt.
	WebhookPending WebhookStatus = "pending"
	// WebhookDelivered was answered with a 2xx.
	WebhookDelivered WebhookStatus = "delivered"
	// WebhookFailed was given up: not delivered within the retry window.
	WebhookFailed WebhookStatus = "failed"
)

// WebhookDelivery is one event to be sent, or sent, to one receiver URL.
type WebhookDelivery struct {
	ID int64
	// EventID is the payload's "id", the same for every URL of one event.
	EventID string
	URL     string
	// UserKey is the user's public id; deliveries of one user to one URL
	// are sent in ID order.
	UserKey string
	// Type is the event type (user.online, user.offline).
	Type string
	// Payload is the JSON body, signed anew at each attempt.
	Payload   []byte
	CreatedAt time.Time
	Status    WebhookStatus
	Attempts  int
	// NextAttemptAt is when a pending delivery is due.
	NextAttemptAt time.Time
	// LastAttemptAt, LastHTTPStatus (0: no answer) and LastError describe
	// the latest attempt; zero before the first.
	LastAttemptAt  time.Time
	LastHTTPStatus int
	LastError      string
	// DoneAt is when it was delivered or given up.
	DoneAt time.Time
}

// WebhookAttempt is the outcome of one attempt at a delivery.
type WebhookAttempt struct {
	At         time.Time
	HTTPStatus int    // 0 when no response came
	Err        string // why it failed; empty on success
	// Status is WebhookDelivered, WebhookFailed (given up) or
	// WebhookPending (to be retried at Next).
	Status WebhookStatus
	Next   time.Time
}

const webhookColumns = `id, event_id, url, user_key, event_type, payload, created_at, status, attempts,
	next_attempt_at, last_attempt_at, last_status, last_error, done_at`

// EnqueueWebhooks stores new pending deliveries in one transaction. A
// delivery whose (EventID, URL) is already stored is skipped.
func (db *DB) EnqueueWebhooks(ctx context.Context, ds []WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO webhook_deliveries
			(event_id, url, user_key, event_type, payload, created_at, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, url) DO NOTHING`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, d := range ds {
			if _, err := st.ExecContext(ctx, d.EventID, d.URL, d.UserKey, d.Type, d.Payload,
				d.CreatedAt.UnixMilli(), d.NextAttemptAt.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: enqueue webhooks: %w", err)
	}
	return nil
}

// isHead keeps the pending deliveries that are first in their (url,
// user) line: only those may be sent, which keeps each user's events in
// order. It probes the line's index once per row.
const isHead = `NOT EXISTS (SELECT 1 FROM webhook_deliveries p
	WHERE p.status = 'pending' AND p.url = d.url AND p.user_key = d.user_key AND p.id < d.id)`

// DueWebhooks returns up to limit deliveries to url that are first in
// their (url, user) line and due at now, the longest-waiting first.
func (db *DB) DueWebhooks(ctx context.Context, now time.Time, url string, limit int) ([]WebhookDelivery, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+prefixed("d.", webhookColumns)+` FROM webhook_deliveries d
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND d.url = ? AND `+isHead+`
		ORDER BY d.next_attempt_at, d.id LIMIT ?`, now.UnixMilli(), url, limit)
	if err != nil {
		return nil, fmt.Errorf("store: due webhooks: %w", classify(err))
	}
	return scanWebhooks(rows)
}

// ClaimWebhooks claims up to limit deliveries to url that are first in
// their (url, user) line and due at now, the longest-waiting first, for
// node, and returns them. A claimed delivery is not due again before
// until (its next_attempt_at is moved there) unless its attempt is
// recorded or the claim released first: so several nodes dispatching
// from one database never send the same delivery at once, and the one
// behind it in its line waits, keeping each user's events in order. The
// claim is one write transaction; on PostgreSQL it holds the write lock
// every node takes, so two nodes cannot claim the same row. A node that
// dies leaves its claims to run out at until; another node then sends
// them (delivery is at least once).
func (db *DB) ClaimWebhooks(ctx context.Context, now time.Time, url string, limit int, node string, until time.Time) ([]WebhookDelivery, error) {
	// Most calls find nothing due: look before taking the write lock.
	var any int
	err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries d
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND d.url = ? LIMIT 1) x`, now.UnixMilli(), url).Scan(&any)
	if err != nil {
		return nil, fmt.Errorf("store: claim webhooks: %w", classify(err))
	}
	if any == 0 {
		return nil, nil
	}
	var out []WebhookDelivery
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+prefixed("d.", webhookColumns)+` FROM webhook_deliveries d
			WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND d.url = ? AND `+isHead+`
			ORDER BY d.next_attempt_at, d.id LIMIT ?`, now.UnixMilli(), url, limit)
		if err != nil {
			return err
		}
		if out, err = scanWebhooks(rows); err != nil || len(out) == 0 {
			return err
		}
		st, err := tx.PrepareContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?, claimed_by = ? WHERE id = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, d := range out {
			if _, err := st.ExecContext(ctx, until.UnixMilli(), node, d.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim webhooks: %w", err)
	}
	return out, nil
}

// ReleaseWebhooks gives up node's claims on the deliveries it has not
// recorded an attempt at (it is stopping, or starting again after a
// crash), making them due at now, and returns how many.
func (db *DB) ReleaseWebhooks(ctx context.Context, node string, now time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET claimed_by = NULL, next_attempt_at = ?
			WHERE status = 'pending' AND claimed_by = ?`, now.UnixMilli(), node)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: release webhooks: %w", err)
	}
	return n, nil
}

// NextWebhookAfter returns the earliest due time after t among the
// deliveries first in their line; ok is false when none is waiting.
func (db *DB) NextWebhookAfter(ctx context.Context, t time.Time) (next time.Time, ok bool, err error) {
	var ms int64
	err = db.r.QueryRowContext(ctx, `SELECT d.next_attempt_at FROM webhook_deliveries d
		WHERE d.status = 'pending' AND d.next_attempt_at > ? AND `+isHead+`
		ORDER BY d.next_attempt_at LIMIT 1`, t.UnixMilli()).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next webhook: %w", classify(err))
	}
	return time.UnixMilli(ms).UTC(), true, nil
}

// RecordWebhookAttempt records the outcome of an attempt at a pending
// delivery and counts it. A delivery to be retried holds back the ones
// behind it in its line until its next attempt.
func (db *DB) RecordWebhookAttempt(ctx context.Context, id int64, a WebhookAttempt) error {
	var status, lastErr, next, done any
	if a.HTTPStatus != 0 {
		status = a.HTTPStatus
	}
	if a.Err != "" {
		lastErr = a.Err
	}
	if a.Status == WebhookPending {
		next = a.Next.UnixMilli()
	} else {
		done = a.At.UnixMilli()
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1,
			last_attempt_at = ?, last_status = ?, last_error = ?, status = ?, claimed_by = NULL,
			next_attempt_at = COALESCE(?, next_attempt_at), done_at = ?
			WHERE id = ? AND status = 'pending'`,
			a.At.UnixMilli(), status, lastErr, string(a.Status), next, done, id)
		if err != nil || a.Status != WebhookPending {
			return err
		}
		// The deliveries behind it in its line wait at least as long, so
		// that the search for due ones does not keep passing over them.
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = `+db.greatest("next_attempt_at", "?")+`
			WHERE status = 'pending' AND id > ?
			AND (url, user_key) = (SELECT url, user_key FROM webhook_deliveries WHERE id = ?)`, next, id, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record webhook attempt: %w", err)
	}
	return nil
}

// ExpediteWebhooks makes every pending delivery to url that waits past
// now due at now: the receiver has just answered, so there is no point
// waiting out the backoff of the others. Deliveries claimed by a node
// (being sent) keep their claim. It returns how many it moved.
func (db *DB) ExpediteWebhooks(ctx context.Context, url string, now time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?
			WHERE status = 'pending' AND url = ? AND next_attempt_at > ? AND claimed_by IS NULL`, now.UnixMilli(), url, now.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: expedite webhooks: %w", err)
	}
	return n, nil
}

// PendingWebhooks counts the deliveries not yet delivered or given up.
func (db *DB) PendingWebhooks(ctx context.Context) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count pending webhooks: %w", classify(err))
	}
	return n, nil
}

// WebhookLog returns up to limit deliveries, the newest first; with a
// status, only those in it.
func (db *DB) WebhookLog(ctx context.Context, status WebhookStatus, limit int) ([]WebhookDelivery, error) {
	q := `SELECT ` + webhookColumns + ` FROM webhook_deliveries`
	args := []any{}
	if status != "" {
		q += ` WHERE status = ?`
		args = append(args, string(status))
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := db.r.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: webhook log: %w", classify(err))
	}
	return scanWebhooks(rows)
}

// AbandonWebhooks gives up every pending delivery to a URL not in urls
// (removed from the configuration), recording why, and returns how many.
func (db *DB) AbandonWebhooks(ctx context.Context, urls []string, at time.Time) (int64, error) {
	q := `UPDATE webhook_deliveries SET status = 'failed', done_at = ?, last_error = 'URL no longer configured'
		WHERE status = 'pending'`
	args := []any{at.UnixMilli()}
	if len(urls) > 0 {
		q += ` AND url NOT IN (?` + strings.Repeat(", ?", len(urls)-1) + `)`
		for _, u := range urls {
			args = append(args, u)
		}
	}
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: abandon webhooks: %w", err)
	}
	return n, nil
}

// WebhooksLeftOnline returns, for each URL and user whose latest
// delivery is of eventType, that delivery: after a crash, the users a
// receiver was last told came online, and never heard went offline.
func (db *DB) WebhooksLeftOnline(ctx context.Context, eventType string) ([]WebhookDelivery, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+prefixed("d.", webhookColumns)+` FROM
		(SELECT MAX(id) AS id FROM webhook_deliveries GROUP BY url, user_key) l
		JOIN webhook_deliveries d ON d.id = l.id WHERE d.event_type = ? ORDER BY d.id`, eventType)
	if err != nil {
		return nil, fmt.Errorf("store: webhooks left online: %w", classify(err))
	}
	return scanWebhooks(rows)
}

// PruneWebhooks deletes delivered and given-up deliveries created before
// t, and returns how many. The latest delivery of each user to each URL
// is kept: it says what the receiver was last told (WebhooksLeftOnline).
func (db *DB) PruneWebhooks(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE created_at < ? AND status != 'pending'
			AND id NOT IN (SELECT MAX(id) FROM webhook_deliveries GROUP BY url, user_key)`, before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune webhooks: %w", err)
	}
	return n, nil
}

func scanWebhooks(rows *sql.Rows) ([]WebhookDelivery, error) {
	defer rows.Close()
	var out []WebhookDelivery
	for rows.Next() {
		var (
			d                WebhookDelivery
			status           string
			created, next    int64
			last, code, done sql.NullInt64
			lastErr          sql.NullString
		)
		if err := rows.Scan(&d.ID, &d.EventID, &d.URL, &d.UserKey, &d.Type, &d.Payload, &created, &status,
			&d.Attempts, &next, &last, &code, &lastErr, &done); err != nil {
			return nil, fmt.Errorf("store: scan webhook: %w", err)
		}
		d.Status = WebhookStatus(status)
		d.CreatedAt, d.NextAttemptAt = time.UnixMilli(created).UTC(), time.UnixMilli(next).UTC()
		d.LastAttemptAt, d.DoneAt = fromMS(last), fromMS(done)
		d.LastHTTPStatus, d.LastError = int(code.Int64), lastErr.String
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: scan webhooks: %w", classify(err))
	}
	return out, nil
}

// prefixed puts p before every name of a comma-separated column list.
func prefixed(p, cols string) string {
	names := strings.Split(cols, ",")
	for i, c := range names {
		names[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(names, ", ")
}
