package dbmigrate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/datasets"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestRealSchemasMigrateAsShipped runs DBMigrationWorkflow on Chinook and Northwind as shipped
// (examples/chinook and examples/northwind: every table, "Order Details", composite keys,
// Employee.ReportsTo) through a worker and the dev server: both complete with every validation
// passed and nothing quarantined, and the test, reading both sides itself, finds every target
// table equal to its source table row for row.
func TestRealSchemasMigrateAsShipped(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := inProcessWorker(t, srv, dbURL)
	ctx := context.Background()
	c := srv.Client(t)
	for _, rs := range []struct {
		name, spec string
		file       func(testing.TB) string
	}{
		{"chinook", "../../examples/chinook/spec.yaml", datasets.Chinook},
		{"northwind", "../../examples/northwind/spec.yaml", datasets.Northwind},
	} {
		t.Run(rs.name, func(t *testing.T) {
			path := rs.file(t)
			sp, err := spec.Load(rs.spec)
			if err != nil {
				t.Fatal(err)
			}
			target := testenv.NewDatabase(t)
			for name, src := range sp.Sources {
				src.Path = path
				sp.Sources[name] = src
			}
			sp.Target.DSN = target
			for i := range sp.Entities {
				sp.Entities[i].BatchSize = 1000
			}
			in := dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationFull, CreatedBy: "test", Spec: sp,
				Config: dbmigrateapi.Config{Parallelism: 3}}
			var res dbmigrateapi.State
			if err := startMigration(t, c, queue, in).Get(ctx, &res); err != nil {
				t.Fatalf("migration: %v", err)
			}
			if res.Status != model.OrchCompleted {
				t.Fatalf("res.Status: want model.OrchCompleted; ended %s with %d errors, %d of %d entities (%s)",
					res.Status, res.ErrorCount, res.CompletedEntities, len(sp.Entities), res.Error)
			}
			if res.ErrorCount != 0 {
				t.Fatalf("res.ErrorCount: want 0; ended %s with %d errors, %d of %d entities (%s)",
					res.Status, res.ErrorCount, res.CompletedEntities, len(sp.Entities), res.Error)
			}
			if int(res.CompletedEntities) != len(sp.Entities) {
				t.Fatalf("int(res.CompletedEntities) = %v, want %v (len(sp.Entities)); ended %s with %d errors, %d of %d entities (%s)",
					int(res.CompletedEntities), len(sp.Entities), res.Status, res.ErrorCount, res.CompletedEntities, len(sp.Entities), res.Error)
			}
			for _, v := range res.Validation {
				if !v.Passed {
					t.Errorf("validation of %s: %+v", v.Entity, v.Checks)
				}
			}
			pool, err := pgxpool.New(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			for _, ent := range sp.Entities {
				var skip []string
				if ent.Key.Composite() {
					skip = []string{ent.Key.Target}
				}
				keyCols := ent.Key.SourceColumns()
				got, types := datasets.TargetTable(t, pool, "public", ent.TargetTable, keyCols, skip...)
				want := datasets.SourceTable(t, path, ent.SourceTable, keyCols, types)
				if len(want) != len(got) {
					t.Errorf("%s: %d source rows, %d target rows", ent.Name, len(want), len(got))
				}
				if diff := datasets.Diff(want, got, 10); len(diff) > 0 {
					t.Errorf("%s: the target differs from the source:\n  %s", ent.Name, strings.Join(diff, "\n  "))
				}
			}
		})
	}
}
