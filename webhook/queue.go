package webhook

// This file takes events in: the bus subscriber, the in-memory queue and
// the writer that stores it, and the offline events a crash left owed.

import (
	"context"
	"encoding/json"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// offlineLeftOnline stores a user.offline, at now, for every user whose
// latest event to a configured URL is user.online: the previous run ended
// without telling (a crash), and nobody is online after a start.
func (d *Dispatcher) offlineLeftOnline(ctx context.Context, now time.Time) error {
	left, err := d.store.WebhooksLeftOnline(ctx, TypeOnline)
	if err != nil {
		return err
	}
	configured := map[string]bool{}
	for _, u := range d.urls {
		configured[u] = true
	}
	ids := map[string]string{} // user key → the new event's id, shared by every URL
	var batch []store.WebhookDelivery
	for _, l := range left {
		if !configured[l.URL] {
			continue
		}
		var was Payload
		if err := json.Unmarshal(l.Payload, &was); err != nil || len(was.UserID) == 0 {
			d.log.Warn("webhook: unreadable stored payload", "id", l.ID, "err", err)
			continue
		}
		p := Payload{ID: ids[l.UserKey], Type: TypeOffline, UserID: was.UserID, Username: was.Username, At: now.UTC().Format(timeFormat)}
		if p.ID == "" {
			p.ID = newEventID()
			ids[l.UserKey] = p.ID
		}
		p.LastSeen = &p.At
		body, _ := json.Marshal(p)
		batch = append(batch, store.WebhookDelivery{EventID: p.ID, URL: l.URL, UserKey: l.UserKey, Type: p.Type,
			Payload: body, CreatedAt: now, NextAttemptAt: now})
	}
	if len(batch) == 0 {
		return nil
	}
	d.log.Info("webhook: the last run ended without telling receivers that users went offline; telling them now", "users", len(ids))
	return d.store.EnqueueWebhooks(ctx, batch)
}

// changed reports whether ev is a real online/offline change as the host
// sees it, and remembers it. The engine also publishes changes of mode and
// custom status (which change nothing here) and, for a hidden user, their
// own view (ScopeSelf): the host, like every other user, sees an invisible
// user, or one who shows their presence only to some, as offline. A change
// another node decided (Remote) is that node's to send; it is remembered
// here all the same.
func (d *Dispatcher) changed(ev presence.Event) bool {
	if ev.Scope == presence.ScopeSelf {
		return false
	}
	key := userKey(ev)
	if !ev.Online {
		delete(d.shown, key) // the engine announces offline only after online
		return !ev.Remote
	}
	if d.shown[key] {
		return false // still online: a change of mode or custom status
	}
	d.shown[key] = true
	return !ev.Remote
}

// subscriber turns bus events into queued deliveries. It never blocks on
// the database or the network. If the bus drops it (it fell behind), it
// resubscribes and counts a gap: the events in between are lost.
func (d *Dispatcher) subscriber() {
	defer close(d.subDone)
	sub := d.sub
	for {
		for ev := range sub.C {
			if d.changed(ev) {
				d.add(ev, d.clock.Now())
			}
		}
		if !sub.Dropped() {
			return
		}
		d.gaps.Add(1)
		d.log.Warn("webhook: fell behind the presence events and missed some; resubscribed (receivers may have missed changes)")
		d.subMu.Lock()
		if d.closing {
			d.subMu.Unlock()
			return
		}
		sub = d.bus.Subscribe(d.subBuffer)
		d.sub = sub
		d.subMu.Unlock()
	}
}

// add queues one delivery of ev per URL for the writer.
func (d *Dispatcher) add(ev presence.Event, at time.Time) {
	p := newPayload(ev, at)
	body, _ := json.Marshal(p)
	key := userKey(ev)
	d.bufMu.Lock()
	if len(d.buf)+len(d.urls) > maxBuffered {
		d.bufMu.Unlock()
		n := d.dropped.Add(int64(len(d.urls)))
		if n == int64(len(d.urls)) || n%1000 < int64(len(d.urls)) {
			d.log.Error("webhook: the database is not taking deliveries; dropping events", "dropped", n)
		}
		return
	}
	for _, u := range d.urls {
		d.buf = append(d.buf, store.WebhookDelivery{
			EventID: p.ID, URL: u, UserKey: key, Type: p.Type, Payload: body,
			CreatedAt: at, NextAttemptAt: at,
		})
	}
	d.bufMu.Unlock()
	select {
	case d.bufSignal <- struct{}{}:
	default:
	}
}

// writer stores queued deliveries: everything queued while one write runs
// goes into the next, in one transaction.
func (d *Dispatcher) writer() {
	defer close(d.writerDone)
	for {
		select {
		case <-d.bufSignal:
			d.flush()
		case <-d.stopWriter:
			for d.flush() == nil {
				d.bufMu.Lock()
				empty := len(d.buf) == 0
				d.bufMu.Unlock()
				if empty {
					return
				}
			}
			return
		}
	}
}

// flush stores what is queued. On failure the deliveries stay queued and
// another try is scheduled.
func (d *Dispatcher) flush() error {
	d.bufMu.Lock()
	batch := d.buf
	d.buf = nil
	d.flushing.Store(len(batch) > 0)
	d.bufMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	defer d.flushing.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := d.store.EnqueueWebhooks(ctx, batch)
	cancel()
	if err != nil {
		d.log.Warn("webhook: storing deliveries failed; retrying", "count", len(batch), "err", err)
		d.bufMu.Lock()
		d.buf = append(batch, d.buf...)
		d.bufMu.Unlock()
		d.clock.AfterFunc(storeRetry, func() {
			select {
			case d.bufSignal <- struct{}{}:
			default:
			}
		})
		return err
	}
	d.pending.Add(int64(len(batch)))
	d.poke()
	return nil
}
