-- Users keep the original app's presence fields (is_online, last_seen,
-- last_activity). Times are Unix milliseconds (UTC); NULL means never.
CREATE TABLE users (
    id                INTEGER PRIMARY KEY,
    username          TEXT    NOT NULL,
    username_key      TEXT    NOT NULL UNIQUE, -- lower-cased, for case-insensitive uniqueness
    password_hash     TEXT    NOT NULL,
    profile_image_url TEXT    NOT NULL DEFAULT '',
    is_online         INTEGER NOT NULL DEFAULT 0,
    last_seen         INTEGER,
    last_activity     INTEGER,
    created_at        INTEGER NOT NULL
);

CREATE INDEX users_online ON users (is_online) WHERE is_online = 1;

-- Tokens are API access tokens and browser sessions. Only a SHA-256 hash of
-- the random secret is stored.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('api', 'session')),
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE INDEX tokens_user ON tokens (user_id);
