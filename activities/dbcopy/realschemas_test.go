package dbcopy

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/internal/testing/datasets"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// realSchemas are Chinook and Northwind as shipped, with the example specs that migrate every
// table of them.
var realSchemas = []struct {
	name, spec string
	file       func(testing.TB) string
}{
	{"chinook", "../../examples/chinook/spec.yaml", datasets.Chinook},
	{"northwind", "../../examples/northwind/spec.yaml", datasets.Northwind},
}

// loadRealSpec loads an example spec onto a fresh copy of its database, batch rows per batch.
func loadRealSpec(t *testing.T, specPath, dbPath string, batch int) *spec.Spec {
	t.Helper()
	sp, err := spec.Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range sp.Sources {
		src.Path = dbPath
		sp.Sources[name] = src
	}
	for i := range sp.Entities {
		sp.Entities[i].BatchSize = batch
	}
	return sp
}

// TestRealSchemasAsShipped migrates every table of Chinook and Northwind, as shipped (no view,
// no rename: "Order Details", composite keys, Employee.ReportsTo, numeric money, blobs), 300
// rows per batch, and checks by reading both sides itself that the target equals the source
// row for row and value for value: every source column is in the target, no row is
// quarantined, every validation passes.
func TestRealSchemasAsShipped(t *testing.T) {
	for _, rs := range realSchemas {
		t.Run(rs.name, func(t *testing.T) {
			ctx := ctxT(t)
			path := rs.file(t)
			sp := loadRealSpec(t, rs.spec, path, 300)
			target := newTarget(t)
			e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: target})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Close)
			if err := e.Prepare(ctx); err != nil {
				t.Fatal(err)
			}
			copyAll(t, e)
			pool, err := pgxpool.New(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			src, err := source.OpenSQLite(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			tables := 0
			for _, ent := range sp.Entities {
				assertValidated(t, e, ent.Name)
				if codes := errorCodes(t, e, ent.Name); len(codes) > 0 {
					t.Errorf("%s: rows quarantined: %s", ent.Name, fmtCodes(codes))
				}
				var skip []string
				if ent.Key.Composite() {
					skip = []string{ent.Key.Target} // the row id: the UUID of the key's values
				}
				keyCols := ent.Key.SourceColumns()
				tgt, types := datasets.TargetTable(t, pool, "public", ent.TargetTable, keyCols, skip...)
				cols, err := src.Columns(ctx, ent.SourceTable)
				if err != nil {
					t.Fatal(err)
				}
				var srcCols, tgtCols []string
				for _, c := range cols {
					srcCols = append(srcCols, c.Name)
				}
				for c := range types {
					tgtCols = append(tgtCols, c)
				}
				if diff := cmp.Diff(slices.Sorted(slices.Values(srcCols)), slices.Sorted(slices.Values(tgtCols))); diff != "" {
					t.Errorf("%s: columns (-source +target):\n%s", ent.Name, diff)
				}
				want := datasets.SourceTable(t, path, ent.SourceTable, keyCols, types)
				if diff := datasets.Diff(want, tgt, 20); len(diff) > 0 {
					t.Errorf("%s: the target differs from the source:\n  %s", ent.Name, join(diff))
				}
				tables++
			}
			if tables != len(sp.Entities) {
				t.Fatalf("compared %d tables of %d", tables, len(sp.Entities))
			}
			// The comparison sees a change: one price 0.01 off is one difference.
			ent := sp.Entities[len(sp.Entities)-1]
			keyCols := ent.Key.SourceColumns()
			if _, err := pool.Exec(ctx, `UPDATE public.`+spec.QuoteIdent(ent.TargetTable)+` SET "UnitPrice" = "UnitPrice" + 0.01
				WHERE ctid = (SELECT min(ctid) FROM public.`+spec.QuoteIdent(ent.TargetTable)+`)`); err != nil {
				t.Fatal(err)
			}
			var skip []string
			if ent.Key.Composite() {
				skip = []string{ent.Key.Target}
			}
			tgt, types := datasets.TargetTable(t, pool, "public", ent.TargetTable, keyCols, skip...)
			if diff := datasets.Diff(datasets.SourceTable(t, path, ent.SourceTable, keyCols, types), tgt, 20); len(diff) != 1 {
				t.Errorf("%s: a changed price showed as %d differences: %v", ent.Name, len(diff), diff)
			}
			if rs.name == "northwind" {
				assertNorthwindTargetShape(t, pool)
			}
		})
	}
}

// assertNorthwindTargetShape: the application's own insert into "Order Details" gets the
// source schema's defaults, and its CHECK constraints refuse what the source refused.
func assertNorthwindTargetShape(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var price, discount float64
		var qty int64
		if err := tx.QueryRow(ctx, `INSERT INTO public."Order Details" (id, "OrderID", "ProductID")
			SELECT gen_random_uuid(), 10248, min(p."ProductID") FROM public."Products" p
			WHERE p."ProductID" NOT IN (SELECT "ProductID" FROM public."Order Details" WHERE "OrderID" = 10248)
			RETURNING "UnitPrice"::float8, "Quantity", "Discount"`).Scan(&price, &qty, &discount); err != nil {
			return err
		}
		if price != 0 {
			t.Errorf("price: want 0; defaults of an inserted order line: price %v, quantity %d, discount %v; want 0, 1, 0",
				price, qty, discount)
		} else if qty != 1 {
			t.Errorf("qty: want 1; defaults of an inserted order line: price %v, quantity %d, discount %v; want 0, 1, 0",
				price, qty, discount)
		} else if discount != 0 {
			t.Errorf("discount: want 0; defaults of an inserted order line: price %v, quantity %d, discount %v; want 0, 1, 0",
				price, qty, discount)
		}
		_, err := tx.Exec(ctx, `UPDATE public."Order Details" SET "Discount" = 2 WHERE "OrderID" = 10248`)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("a discount of 2 was not refused by a CHECK constraint: %v", err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
}

var errRollback = errors.New("rolled back on purpose")

func join(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}
