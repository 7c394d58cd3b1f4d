package schema_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/schema"
)

// BenchmarkApplyFresh applies every migration to an empty database: what a control database's
// first start pays.
func BenchmarkApplyFresh(b *testing.B) { benchApplyFresh(b, schema.Apply) }

// BenchmarkApplyLedgerFresh applies a database migration's ledger (no email tables) to an
// empty database: what a database migration's first activity pays on a fresh target.
func BenchmarkApplyLedgerFresh(b *testing.B) { benchApplyFresh(b, schema.ApplyLedger) }

func benchApplyFresh(b *testing.B, apply func(context.Context, *pgxpool.Pool) (schema.Result, error)) {
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
		if _, err := apply(ctx, pool); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		pool.Close()
		b.StartTimer()
	}
}
