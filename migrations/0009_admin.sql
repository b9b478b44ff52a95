-- Every action an administrator takes on /admin (kick a connection or a
-- user, revoke a token, promote or demote an administrator) is recorded
-- here, as well as logged. admin_name is kept beside admin_id so the record
-- still says who acted after the account is gone.
CREATE TABLE admin_audit (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,            -- unix milliseconds
    admin_id   INTEGER NOT NULL,
    admin_name TEXT    NOT NULL,
    action     TEXT    NOT NULL,            -- kick-connection, kick-user, revoke-token, promote, demote
    target     TEXT    NOT NULL DEFAULT '', -- whom or what it acted on
    detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX admin_audit_at ON admin_audit (at);
