package webhook

// This file sends: the dispatch loop that picks each line's due head,
// the attempts, and what they record.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/presencehq/presence/store"
)

// poke asks the dispatch loop to look for due deliveries.
func (d *Dispatcher) poke() {
	d.pokes.Add(1)
	select {
	case d.wake <- struct{}{}:
	default:
		d.pokes.Add(-1)
	}
}

// loop dispatches whenever poked, until Close.
func (d *Dispatcher) loop() {
	defer close(d.loopDone)
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.wake:
		}
		d.dispatch()
		d.handled.Add(1)
	}
}

// dispatch starts an attempt at each due delivery that is first in its
// (url, user) line, as many as the concurrency allows, then arms the
// timer for the next one to fall due.
func (d *Dispatcher) dispatch() {
	now := d.clock.Now()
	d.mu.Lock()
	free := d.conc - len(d.inflight)
	perURL := map[string]int{}
	for _, u := range d.inflight {
		perURL[u]++
	}
	// What finished before now is in the database: forget it.
	clear(d.finished)
	d.mu.Unlock()
	for _, u := range d.urls {
		room := min(free, d.urlCap-perURL[u])
		if room <= 0 {
			continue
		}
		heads, err := d.store.ClaimWebhooks(d.ctx, now, u, room, d.node, now.Add(d.lease))
		if err != nil {
			if d.ctx.Err() == nil {
				d.log.Warn("webhook: reading due deliveries failed", "err", err)
				d.arm(now.Add(storeRetry), now)
			}
			return
		}
		for _, h := range heads {
			if room == 0 {
				break
			}
			d.mu.Lock()
			if _, busy := d.inflight[h.ID]; busy || d.finished[h.ID] || d.ctx.Err() != nil {
				d.mu.Unlock()
				continue
			}
			d.inflight[h.ID] = u
			d.workers.Add(1)
			d.mu.Unlock()
			room--
			free--
			go d.attempt(h)
		}
	}
	next, ok, err := d.store.NextWebhookAfter(d.ctx, now)
	switch {
	case err != nil:
		if d.ctx.Err() == nil {
			d.log.Warn("webhook: reading the next due delivery failed", "err", err)
			d.arm(now.Add(storeRetry), now)
		}
	case d.poll > 0 && (!ok || next.Sub(now) > d.poll):
		d.arm(now.Add(d.poll), now)
	case ok:
		d.arm(next, now)
	}
}

// arm sets the dispatch timer to at, replacing the one set before.
func (d *Dispatcher) arm(at, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timer = d.clock.AfterFunc(max(at.Sub(now), 0), d.poke)
}

// idle reports whether nothing is queued, being stored, being sent or
// waiting to be dispatched (for tests driving a FakeClock).
func (d *Dispatcher) idle() bool {
	d.bufMu.Lock()
	queued := len(d.buf) > 0 || d.flushing.Load()
	d.bufMu.Unlock()
	d.mu.Lock()
	busy := len(d.inflight) > 0
	d.mu.Unlock()
	return !queued && !busy && d.pokes.Load() == d.handled.Load()
}

// attempt sends one delivery and records the outcome.
func (d *Dispatcher) attempt(del store.WebhookDelivery) {
	defer d.workers.Done()
	res := d.send(del)
	if d.ctx.Err() != nil && res.Status != store.WebhookDelivered {
		d.finish(del.ID) // shutting down: it stays pending for the next start
		return
	}
	if res.Status != store.WebhookDelivered {
		next := res.At.Add(d.backoff.Delay(del.Attempts+1, d.rand()))
		if next.Sub(del.CreatedAt) > d.maxAge {
			res.Status = store.WebhookFailed
		} else {
			res.Status, res.Next = store.WebhookPending, next
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := d.store.RecordWebhookAttempt(ctx, del.ID, res); err != nil {
		// It is still pending and claimed in the database: sent again
		// when the claim runs out.
		d.log.Warn("webhook: recording an attempt failed", "id", del.ID, "err", err)
		d.clock.AfterFunc(storeRetry, func() { d.finish(del.ID) })
		return
	}
	switch res.Status {
	case store.WebhookDelivered:
		d.succeeded.Add(1)
		d.pending.Add(-1)
		if d.countFailure(del.URL, false) >= expediteAfter {
			// The receiver is back: its other deliveries need not wait
			// out their backoff.
			if _, err := d.store.ExpediteWebhooks(ctx, del.URL, res.At); err != nil {
				d.log.Warn("webhook: expediting deliveries failed", "err", err)
			}
		}
	case store.WebhookFailed:
		d.countFailure(del.URL, true)
		d.failedAttempts.Add(1)
		d.givenUp.Add(1)
		d.pending.Add(-1)
		d.log.Error("webhook: delivery given up", "id", del.ID, "event", del.EventID, "url", redactURL(del.URL),
			"attempts", del.Attempts+1, "err", res.Err)
	default:
		d.countFailure(del.URL, true)
		d.failedAttempts.Add(1)
		d.log.Debug("webhook: attempt failed", "id", del.ID, "url", redactURL(del.URL), "attempt", del.Attempts+1,
			"next", res.Next, "err", res.Err)
	}
	d.finish(del.ID)
}

// countFailure counts a failed attempt at url, or resets the count after
// a success, and returns the count before.
func (d *Dispatcher) countFailure(url string, failed bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	was := d.failures[url]
	if failed {
		d.failures[url]++
	} else {
		d.failures[url] = 0
	}
	return was
}

// finish marks del no longer in flight and lets the loop move on.
func (d *Dispatcher) finish(id int64) {
	d.mu.Lock()
	delete(d.inflight, id)
	d.finished[id] = true
	d.mu.Unlock()
	d.poke()
}

// send makes one attempt. The outcome's Status is WebhookDelivered on a
// 2xx and empty otherwise.
func (d *Dispatcher) send(del store.WebhookDelivery) store.WebhookAttempt {
	ts := d.clock.Now().Unix()
	ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, del.URL, bytes.NewReader(del.Payload))
	if err != nil {
		return store.WebhookAttempt{At: d.clock.Now(), Err: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.ua)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(d.secret, ts, del.Payload))
	req.Header.Set(HeaderEventID, del.EventID)
	resp, err := d.client.Do(req)
	at := d.clock.Now()
	if err != nil {
		return store.WebhookAttempt{At: at, Err: attemptError(err, d.timeout)}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return store.WebhookAttempt{At: at, HTTPStatus: resp.StatusCode, Status: store.WebhookDelivered}
	}
	return store.WebhookAttempt{At: at, HTTPStatus: resp.StatusCode, Err: "HTTP " + resp.Status}
}

// attemptError says briefly why a request got no response, without the
// URL (which may hold credentials).
func attemptError(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no response within %v", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// pruneOld deletes finished deliveries older than Keep, now and every
// pruneEvery.
func (d *Dispatcher) pruneOld() {
	if d.ctx.Err() != nil {
		return
	}
	if n, err := d.store.PruneWebhooks(d.ctx, d.clock.Now().Add(-d.keep)); err != nil {
		d.log.Warn("webhook: pruning old deliveries failed", "err", err)
	} else if n > 0 {
		d.log.Info("webhook: pruned old deliveries", "count", n)
	}
	d.mu.Lock()
	d.prune = d.clock.AfterFunc(pruneEvery, func() { go d.pruneOld() })
	d.mu.Unlock()
}

// redactURL hides the password of a URL with user info.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	if _, ok := p.User.Password(); !ok {
		return u
	}
	return p.Redacted()
}
