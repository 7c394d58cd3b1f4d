package schema_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/schema"
)

// BenchmarkApplyFresh applies every migration to an empty database: what a migration's first
// activity pays on a fresh target before it loads a row (the ledger lives in the target).
func BenchmarkApplyFresh(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		pool, err := pgxpool.New(ctx, testenv.NewDatabase(b))
		if err != nil {
			b.Fatal(err)
		}
		if err := pool.Ping(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := schema.Apply(ctx, pool); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		pool.Close()
		b.StartTimer()
	}
}
