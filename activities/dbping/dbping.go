// Package dbping holds the activity behind the stack health check: it proves a worker can reach
// PostgreSQL with the current schema.
package dbping

import (
	"context"
	"fmt"
	"os"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/schema"
)

// Activities needs only the control database.
type Activities struct {
	DB *store.DB
}

// PingResult is what a healthy worker reports.
type PingResult struct {
	Worker        string
	SchemaVersion int
}

// PingDatabase checks the database answers and carries the schema this binary expects.
func (a *Activities) PingDatabase(ctx context.Context) (PingResult, error) {
	var v int
	if err := a.DB.Pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return PingResult{}, fmt.Errorf("health ping: read schema version: %w", err)
	}
	if v != schema.Latest() {
		return PingResult{}, fmt.Errorf("health ping: database schema %d, worker expects %d", v, schema.Latest())
	}
	host, _ := os.Hostname()
	return PingResult{Worker: fmt.Sprintf("%s/%d", host, os.Getpid()), SchemaVersion: v}, nil
}
