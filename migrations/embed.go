// Package migrations holds the numbered SQL migrations of the database
// schema. They are applied in file-name order, each in its own transaction,
// and recorded by name so each runs once.
package migrations

import "embed"

// FS holds every *.sql migration.
//
//go:embed *.sql
var FS embed.FS
