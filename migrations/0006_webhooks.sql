-- Webhook deliveries (issue 11, part 3): one row per presence event per
-- receiver URL, written before the first attempt so that a delivery
-- survives a crash or a restart (at-least-once).
--   * event_id is the payload's "id", the same for every URL of one event:
--     receivers dedupe on it;
--   * user_key is the user's public id: deliveries of one user to one URL
--     go out in id order, the next only once the one before has succeeded
--     or been given up;
--   * status is 'pending', 'delivered' or 'failed' (given up after a day).
-- Times are Unix milliseconds.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    user_key        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    done_at         INTEGER,
    UNIQUE (event_id, url)
);
-- The queue: pending deliveries by due time, and each (url, user) line's
-- pending deliveries in order (is one first in its line?).
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (url, user_key, id) WHERE status = 'pending';
-- Each (url, user) line in order: its latest delivery (what the receiver
-- was last told, kept by pruning).
CREATE INDEX webhook_deliveries_line ON webhook_deliveries (url, user_key, id);
-- Pruning by age.
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
