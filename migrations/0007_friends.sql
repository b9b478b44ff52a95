-- Friends (issue 13 part 1, issue 11's PUT /api/server/users/{id}/friends/).
--
-- A friendship is stored in both directions, (a, b) and (b, a), so that
-- "are a and b friends?" is one primary-key probe and "a's friends" one
-- range scan of the key, with no OR and no second index: AreFriends is
-- cheap enough to run per viewer (the "who may see me: friends" setting).
-- Both rows are written and deleted in one transaction.
CREATE TABLE friendships (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
) WITHOUT ROWID;

-- A pending request from one user to another. Accepting turns it into a
-- friendship; declining (or withdrawing) deletes it, so the sender may ask
-- again later. At most one per ordered pair.
CREATE TABLE friend_requests (
    id         INTEGER PRIMARY KEY,
    from_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    UNIQUE (from_id, to_id),
    CHECK (from_id <> to_id)
);
CREATE INDEX friend_requests_to ON friend_requests (to_id);

-- Users who asked for a notice when a friend comes online (opt-in).
CREATE TABLE friend_notify (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE
);
