package store

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Dialect is the SQL engine a DB talks to.
type Dialect int

// The engines the store runs on.
const (
	// SQLite is the embedded default: one file in the data directory.
	SQLite Dialect = iota
	// Postgres is PostgreSQL, reached through a database URL.
	Postgres
)

// String names the dialect as it appears in logs and migration overrides.
func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Rebind rewrites the ? placeholders of a query written for SQLite into
// PostgreSQL's $1, $2, …, leaving question marks inside string literals,
// quoted identifiers and comments alone.
func Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote inside
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(q) {
				j = len(q) - 1
			}
			b.WriteString(q[i : j+1])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// greatest is the SQL of the larger of two values: SQLite's two-argument
// MAX, PostgreSQL's GREATEST.
func (db *DB) greatest(a, b string) string {
	if db.dialect == Postgres {
		return "GREATEST(" + a + ", " + b + ")"
	}
	return "MAX(" + a + ", " + b + ")"
}

// hexOf is the SQL of a BLOB (BYTEA) column in lower-case hex.
func (db *DB) hexOf(col string) string {
	if db.dialect == Postgres {
		return "encode(" + col + ", 'hex')"
	}
	return "lower(hex(" + col + "))"
}

// Migrations are written once, in the subset of SQL both engines share,
// with SQLite's types; TranslateDDL turns them into PostgreSQL. What it
// cannot translate it refuses, naming the construct, so that the author
// writes a per-dialect override (NNNN_name.postgres.sql) instead of
// shipping a migration that only half works.
var (
	ddlComment   = regexp.MustCompile(`--[^\n]*`)
	ddlSerialPK  = regexp.MustCompile(`(?i)\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b`)
	ddlInteger   = regexp.MustCompile(`(?i)\bINTEGER\b`)
	ddlBlob      = regexp.MustCompile(`(?i)\bBLOB\b`)
	ddlNoRowid   = regexp.MustCompile(`(?i)\)\s*WITHOUT\s+ROWID`)
	ddlForbidden = []struct {
		re   *regexp.Regexp
		what string
	}{
		{regexp.MustCompile(`(?i)\bINSERT\s+OR\s+\w+`), "INSERT OR … (use INSERT … ON CONFLICT … DO NOTHING/UPDATE)"},
		{regexp.MustCompile(`(?i)\bREPLACE\s+INTO\b`), "REPLACE INTO (use INSERT … ON CONFLICT … DO UPDATE)"},
		{regexp.MustCompile(`(?i)\bPRAGMA\b`), "PRAGMA"},
		{regexp.MustCompile(`(?i)\b(strftime|datetime|julianday|unixepoch)\s*\(`), "SQLite date functions (store Unix milliseconds computed in Go)"},
		{regexp.MustCompile(`(?i)\b(ifnull|instr|hex|glob)\s*\(`), "SQLite-only functions"},
		{regexp.MustCompile(`(?i)\bAUTOINCREMENT\b`), "AUTOINCREMENT outside INTEGER PRIMARY KEY"},
		{regexp.MustCompile(`(?i)\browid\b`), "rowid"},
	}
)

// TranslateDDL translates a migration written for SQLite into PostgreSQL:
//   - INTEGER PRIMARY KEY [AUTOINCREMENT] becomes BIGSERIAL PRIMARY KEY (an
//     auto-numbered id), or BIGINT PRIMARY KEY when the column REFERENCES
//     another table (a key copied from elsewhere, never generated);
//   - INTEGER becomes BIGINT (times are Unix milliseconds, past 32 bits) and
//     BLOB becomes BYTEA; WITHOUT ROWID is dropped;
//   - comments are removed.
//
// It returns an error for SQLite-only constructs (INSERT OR IGNORE,
// REPLACE INTO, PRAGMA, strftime, …).
func TranslateDDL(sqlText string) (string, error) {
	s := ddlComment.ReplaceAllString(sqlText, "")
	s = ddlNoRowid.ReplaceAllString(s, ")")
	for _, f := range ddlForbidden {
		if f.re.MatchString(ddlSerialPK.ReplaceAllString(s, "")) {
			return "", fmt.Errorf("cannot translate %s to postgres: write a .postgres.sql override", f.what)
		}
	}
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if loc := ddlSerialPK.FindStringIndex(line); loc != nil {
			typ := "BIGSERIAL PRIMARY KEY"
			if strings.Contains(strings.ToUpper(line[loc[1]:]), "REFERENCES") {
				typ = "BIGINT PRIMARY KEY"
			}
			line = line[:loc[0]] + typ + line[loc[1]:]
		}
		line = ddlInteger.ReplaceAllString(line, "BIGINT")
		line = ddlBlob.ReplaceAllString(line, "BYTEA")
		lines[i] = line
	}
	return strings.Join(lines, "\n"), nil
}
