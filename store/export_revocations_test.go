package store

import (
	"context"
	"strings"
)

// RevokedTokensPlan returns SQLite's query plan for the RevokedTokens poll.
func RevokedTokensPlan(db *DB) (string, error) {
	rows, err := db.r.QueryContext(context.Background(),
		"EXPLAIN QUERY PLAN SELECT id, revoked_at FROM tokens WHERE revoked_at >= ? ORDER BY revoked_at", 0)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; "), rows.Err()
}
