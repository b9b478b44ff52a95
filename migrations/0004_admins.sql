-- Administrators. The first account created on an empty database is one
-- (decided inside its INSERT, so two first registrations at once make
-- exactly one); `presence user add --admin` and `presence user promote`
-- make others. Existing accounts are not promoted by this migration: on an
-- upgraded database the operator names the administrator with
-- `presence user promote NAME`.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
