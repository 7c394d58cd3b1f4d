package dbcopy

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openClinic generates the clinic in a fresh SQLite file (or PostgreSQL database) and opens an
// engine on a fresh target database.
func openClinic(t *testing.T, driver string, scale, batch int) (*Engine, *dbcopytest.Clinic, string) {
	t.Helper()
	ctx := ctxT(t)
	clinic := dbcopytest.NewClinic(scale, driver == "postgres")
	loc := filepath.Join(t.TempDir(), "legacy.db")
	if driver == "postgres" {
		loc = testenv.NewDatabase(t)
		if err := dbcopytest.WritePostgres(ctx, loc, clinic.Tables); err != nil {
			t.Fatal(err)
		}
	} else if err := dbcopytest.WriteSQLite(ctx, loc, clinic.Tables); err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec(driver, loc, batch)))
	if err != nil {
		t.Fatal(err)
	}
	target := newTarget(t)
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return e, clinic, target
}

func newTarget(t *testing.T) string { return testenv.NewDatabase(t) }

func newID() uuid.UUID { return uuid.New() }

func copyAll(t *testing.T, e *Engine) {
	t.Helper()
	ctx := ctxT(t)
	order, _ := e.Spec().Order()
	for _, name := range order {
		res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil)
		if err != nil {
			t.Fatalf("copy %s: %v", name, err)
		}
		if !res.Done {
			t.Fatalf("copy %s: not done after %d batches", name, res.Batches)
		}
		if err := e.Finalize(ctx, name); err != nil {
			t.Fatalf("finalize %s: %v", name, err)
		}
	}
}

func count(t *testing.T, e *Engine, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.Pool().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func errorCodes(t *testing.T, e *Engine, entity string) map[string]int {
	t.Helper()
	rows, err := e.Pool().Query(context.Background(), `SELECT error_code, `+dbcopytest.QuarantinedRowsSQL+` FROM migration_errors
		WHERE entity_status_id = $1 AND NOT is_resolved GROUP BY error_code`, e.EntityStatusID(entity))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var c string
		var n int
		if err := rows.Scan(&c, &n); err != nil {
			t.Fatal(err)
		}
		out[c] = n
	}
	return out
}

func fmtCodes(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// assertClinic checks every entity against what the generator planted.
func assertClinic(t *testing.T, e *Engine, clinic *dbcopytest.Clinic) {
	t.Helper()
	for _, name := range dbcopytest.Entities {
		x := clinic.Expects[name]
		ent, _ := e.Spec().Entity(name)
		got := count(t, e, "SELECT count(*) FROM public."+spec.QuoteIdent(ent.TargetTable))
		if got != x.Loaded {
			t.Errorf("%s: %d rows in target, want %d", name, got, x.Loaded)
		}
		if codes := errorCodes(t, e, name); fmtCodes(codes) != fmtCodes(x.Codes) {
			t.Errorf("%s: errors %s, want %s", name, fmtCodes(codes), fmtCodes(x.Codes))
		}
		var processed, failed, total int
		if err := e.Pool().QueryRow(context.Background(), `SELECT records_processed, records_failed, records_total
			FROM entity_migration_status WHERE id = $1`, e.EntityStatusID(name)).Scan(&processed, &failed, &total); err != nil {
			t.Fatal(err)
		}
		if processed != x.Loaded {
			t.Errorf("processed: want x.Loaded; %s: status processed=%d failed=%d total=%d, want %d/%d/%d",
				name, processed, failed, total, x.Loaded, x.Failed(), x.Source)
		} else if failed != x.Failed() {
			t.Errorf("failed: want x.Failed(); %s: status processed=%d failed=%d total=%d, want %d/%d/%d",
				name, processed, failed, total, x.Loaded, x.Failed(), x.Source)
		} else if total != x.Source {
			t.Errorf("total: want x.Source; %s: status processed=%d failed=%d total=%d, want %d/%d/%d",
				name, processed, failed, total, x.Loaded, x.Failed(), x.Source)
		}
		if m := count(t, e, `SELECT count(*) FROM migration_mappings WHERE source_table = $1`, ent.SourceTable); m != x.Loaded {
			t.Errorf("%s: %d mappings, want %d", name, m, x.Loaded)
		}
	}
	// Foreign keys are remapped: every reference resolves to the parent's UUID, which is the
	// UUIDv5 of the legacy id.
	if n := count(t, e, `SELECT count(*) FROM public.doctors d JOIN public.offices o ON o.id = d.office_id`); n != clinic.Expects["doctors"].Loaded {
		t.Errorf("doctors joined to offices: %d, want %d", n, clinic.Expects["doctors"].Loaded)
	}
	ns := e.Spec().NamespaceUUID()
	var officeID uuid.UUID
	if err := e.Pool().QueryRow(context.Background(), `SELECT id FROM public.offices WHERE legacy_id = 1`).Scan(&officeID); err != nil {
		t.Fatal(err)
	}
	if want := spec.RowUUID(ns, "office", "1"); officeID != want {
		t.Errorf("office 1 id %s, want UUIDv5 %s", officeID, want)
	}
}

func TestClinicFromSQLite(t *testing.T) {
	e, clinic, _ := openClinic(t, "sqlite", 1, 97)
	copyAll(t, e)
	assertClinic(t, e, clinic)

	// The quarantined rows carry their source data, escaped where jsonb could not hold it.
	var data string
	if err := e.Pool().QueryRow(context.Background(), `SELECT source_data::text FROM migration_errors
		WHERE error_code = 'invalid_utf8'`).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(data, `Jos\\xe9`) {
		t.Errorf("invalid UTF-8 snapshot = %s", data)
	}
}

func TestClinicFromPostgres(t *testing.T) {
	e, clinic, _ := openClinic(t, "postgres", 1, 250)
	copyAll(t, e)
	assertClinic(t, e, clinic)
}

// TestBatchCrashBetweenCopyAndCommit kills the batch's connection after the COPY and before
// the commit, then re-runs the batch: one copy of every row, and a third run is a no-op.
func TestBatchCrashBetweenCopyAndCommit(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 500)
	ctx := ctxT(t)
	if _, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "offices"}, 0, nil); err != nil {
		t.Fatal(err)
	}
	testHookBeforeCommit = func(ctx context.Context, tx pgx.Tx) error {
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		// Another connection terminates this backend: the server dies mid-transaction.
		_, err := e.Pool().Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid)
		return err
	}
	_, err := e.CopyBatch(ctx, dbmigrateapi.BatchRequest{Entity: "profiles", BatchNumber: 0})
	testHookBeforeCommit = nil
	if err == nil {
		t.Fatal("batch committed although its connection was killed")
	}
	if n := count(t, e, `SELECT count(*) FROM public.profiles`); n != 0 {
		t.Fatalf("%d profile rows visible after the crash", n)
	}
	first, err := e.CopyBatch(ctx, dbmigrateapi.BatchRequest{Entity: "profiles", BatchNumber: 0})
	if err != nil || first.Replayed {
		t.Fatalf("re-run: %+v, %v", first, err)
	}
	again, err := e.CopyBatch(ctx, dbmigrateapi.BatchRequest{Entity: "profiles", BatchNumber: 0})
	if err != nil {
		t.Fatalf("err: want nil; second re-run = %+v (first %+v), %v", again, first, err)
	}
	if !again.Replayed {
		t.Fatalf("again.Replayed is false; second re-run = %+v (first %+v), %v", again, first, err)
	}
	if again.LastKey != first.LastKey {
		t.Fatalf("again.LastKey = %v, want %v (first.LastKey); second re-run = %+v (first %+v), %v",
			again.LastKey, first.LastKey, again, first, err)
	}
	if again.Loaded != first.Loaded {
		t.Fatalf("again.Loaded = %v, want %v (first.Loaded); second re-run = %+v (first %+v), %v",
			again.Loaded, first.Loaded, again, first, err)
	}
	if n := count(t, e, `SELECT count(*) FROM public.profiles`); n != first.Loaded {
		t.Fatalf("%d profile rows, want %d (one copy)", n, first.Loaded)
	}
	if n := count(t, e, `SELECT count(*) FROM migration_mappings WHERE source_table = 'dispatch_user'`); n != first.Loaded {
		t.Fatalf("%d mappings, want %d", n, first.Loaded)
	}
	if n := count(t, e, `SELECT records_processed FROM entity_migration_status WHERE entity_name = 'profiles'`); n != first.Loaded {
		t.Fatalf("records_processed %d, want %d", n, first.Loaded)
	}
}

// TestDuplicateKeyStraddlingBatchBoundary pages products (legacy id 7 appears twice) seven
// rows at a time, so the duplicate falls on the first page's last key: the page grows to keep
// both copies, both are quarantined (duplicate_key), nothing is skipped or read twice.
func TestDuplicateKeyStraddlingBatchBoundary(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			e, clinic, _ := openClinic(t, driver, 1, 7)
			var sizes []int
			res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "products"}, 0, func(b BatchResult) error {
				sizes = append(sizes, b.Rows)
				return nil
			})
			if err != nil || !res.Done {
				t.Fatalf("copy: %+v %v", res, err)
			}
			x := clinic.Expects["products"]
			if sizes[0] != 8 {
				t.Fatalf("sizes[0] = %v, want 8; batch sizes %v, rows %d loaded %d; want first batch 8, %d rows, %d loaded",
					sizes[0], sizes, res.Rows, res.Loaded, x.Source, x.Loaded)
			}
			if res.Rows != int64(x.Source) {
				t.Fatalf("res.Rows: want int64(x.Source); batch sizes %v, rows %d loaded %d; want first batch 8, %d rows, %d loaded",
					sizes, res.Rows, res.Loaded, x.Source, x.Loaded)
			}
			if res.Loaded != int64(x.Loaded) {
				t.Fatalf("res.Loaded: want int64(x.Loaded); batch sizes %v, rows %d loaded %d; want first batch 8, %d rows, %d loaded",
					sizes, res.Rows, res.Loaded, x.Source, x.Loaded)
			}
			if codes := errorCodes(t, e, "products"); fmtCodes(codes) != fmtCodes(x.Codes) {
				t.Fatalf("errors %s, want %s", fmtCodes(codes), fmtCodes(x.Codes))
			}
		})
	}
}
