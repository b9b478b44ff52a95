// Package migrations holds the numbered SQL migrations of the database
// schema. They are applied in file-name order, each in its own transaction,
// and recorded by name so each runs once.
//
// One file serves SQLite and PostgreSQL. Write it for SQLite in the subset
// both share: INTEGER (becomes BIGINT) for numbers, times (Unix ms) and
// flags (0/1), INTEGER PRIMARY KEY for an id (becomes BIGSERIAL; BIGINT if
// the column REFERENCES another table), TEXT, BLOB (becomes BYTEA), CHECK,
// UNIQUE, partial indexes, ALTER TABLE … ADD COLUMN, INSERT … ON CONFLICT
// … DO NOTHING; no INSERT OR IGNORE, REPLACE, PRAGMA, strftime or rowid
// (store.TranslateDDL refuses them). What cannot be written portably goes
// in an override for one dialect beside it, NNNN_name.postgres.sql (see
// 0002), recorded under the shared name. store's TestMigrationSQL checks
// every migration translates, and the store tests apply them all on both.
package migrations

import "embed"

// FS holds every *.sql migration, per-dialect overrides included.
//
//go:embed *.sql
var FS embed.FS
