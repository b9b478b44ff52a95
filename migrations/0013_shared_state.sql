-- State that every node sharing the database must see (issue 14 part 1).
--
-- Uploaded avatars: the processed PNG (Size × Size, re-encoded by this
-- server), named by the SHA-256 of its bytes ("<hex>.png") as in users'
-- profile_image_url ("/avatars/<name>"). A row is deleted, in the
-- transaction that points its last user elsewhere, once no user uses it.
-- Before this migration they were files in <data>/avatars; the server
-- imports those on start.
CREATE TABLE avatars (
    name       TEXT    PRIMARY KEY,
    png        BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Token buckets of the limits that must hold across nodes (the login brake
-- per account, avatar uploads per user): key is "<limit>:<subject>",
-- tokens what the bucket held at updated_at (Unix milliseconds). A missing
-- row is a full bucket; rows that have refilled are pruned.
CREATE TABLE rate_limits (
    key        TEXT             PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at INTEGER          NOT NULL
);
CREATE INDEX rate_limits_updated ON rate_limits (updated_at);

-- Webhook deliveries being sent: a node claims a due delivery by moving
-- its next_attempt_at to the end of a lease and naming itself here, in one
-- write transaction, so no other node sends it meanwhile; the attempt's
-- record clears it. A node that dies leaves the lease to run out, then
-- another node sends the delivery again (at least once).
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
