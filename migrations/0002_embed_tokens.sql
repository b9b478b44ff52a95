-- Adds the 'embed' token kind: a read-only token that lets a host page on
-- another site show the widget to its visitors. SQLite cannot alter a CHECK
-- constraint, so the table is rebuilt.
CREATE TABLE tokens_new (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('api', 'session', 'embed')),
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
INSERT INTO tokens_new SELECT id, user_id, kind, hash, created_at, expires_at, last_used_at, revoked_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_user ON tokens (user_id);
