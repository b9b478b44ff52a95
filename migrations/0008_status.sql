-- Presence modes, custom status and who may see a user's presence
-- (issue 12). Defaults are what a user who never chose anything has:
--   * status_mode: 'online' (automatic away), 'away' (chosen), 'dnd' or
--     'invisible';
--   * status_text (at most 100 characters) and status_emoji (one emoji),
--     cleared at status_expires (Unix ms; NULL: never) by the engine;
--   * visibility: who may see the online state and last seen: 'everyone',
--     'friends' or 'nobody'.
-- Only rows that differ from the defaults are loaded at start-up.
ALTER TABLE users ADD COLUMN status_mode TEXT NOT NULL DEFAULT 'online'
    CHECK (status_mode IN ('online', 'away', 'dnd', 'invisible'));
ALTER TABLE users ADD COLUMN status_text TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN status_emoji TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN status_expires INTEGER;
ALTER TABLE users ADD COLUMN visibility TEXT NOT NULL DEFAULT 'everyone'
    CHECK (visibility IN ('everyone', 'friends', 'nobody'));
CREATE INDEX users_presence_settings ON users (id)
    WHERE status_mode <> 'online' OR status_text <> '' OR status_emoji <> '' OR visibility <> 'everyone';
