-- Online history (issue 13 part 3): one row per online session of a user,
-- kept for --history-days and pruned daily.
--   * A session runs from the user coming online (as their friends see it:
--     not while invisible) to going offline after the grace period;
--     a reload within the grace period is one session.
--   * started_at and ended_at are Unix milliseconds; ended_at is NULL while
--     the session is open. At most one session of a user is open.
--   * device is the kind of the session's first connection: 'desktop',
--     'mobile', 'tablet' or 'unknown'.
-- Rows are written by the presence write-behind batcher, in the same
-- transaction as the users' presence columns.
CREATE TABLE user_sessions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    device     TEXT    NOT NULL DEFAULT 'unknown'
);
-- A user's sessions by time (the timeline and the API); closing the open
-- session of a user.
CREATE INDEX user_sessions_user ON user_sessions (user_id, started_at);
-- Sessions left open (closed at start-up after a crash).
CREATE INDEX user_sessions_open ON user_sessions (user_id) WHERE ended_at IS NULL;
-- Pruning by age.
CREATE INDEX user_sessions_ended ON user_sessions (ended_at);
