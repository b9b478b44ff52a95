-- Host users: people who sign in on the host site, which vouches for them
-- with a signed JWT (or creates them through the server API). They live in
-- the same users table as local accounts, so presence, the widget and the
-- JSON API treat everyone alike, but their identity is the host's id, kept
-- in its own columns and never confused with a local account's row id:
--   * issuer is NULL for a local account, 'host' for a host user;
--   * external_id is the host's id as text ('42', or a UUID), NULL for a
--     local account; (issuer, external_id) is unique;
--   * username_key, unique for local sign-in, is '@host:' || external_id for
--     a host user: '@' and ':' are never in a local username, so a host
--     user can neither take nor shadow a local name, and has no password.
-- The row id stays the internal key (engine, tokens); only the public id
-- shown to clients differs (see docs/INTEGRATION.md, "Two id spaces").
ALTER TABLE users ADD COLUMN issuer TEXT;
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_external ON users (issuer, external_id) WHERE issuer IS NOT NULL;

-- Server keys let the host's backend call /api/server/. Only a SHA-256
-- hash of the random secret is stored; the secret is printed once.
CREATE TABLE server_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
