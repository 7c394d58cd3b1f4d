package dbcopy

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestFinalizeValidatesForeignKeys: Finalize adds each reference's foreign key NOT VALID and
// then validates it, so every key ends validated; a key left NOT VALID (a VALIDATE that failed
// or was cut off) is validated by the next Finalize.
func TestFinalizeValidatesForeignKeys(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 50)
	copyAll(t, e)
	ctx := ctxT(t)
	fkeys := func() map[string]bool {
		rows, err := e.pool.Query(ctx, `SELECT conname::text, convalidated FROM pg_constraint
			WHERE contype = 'f' AND connamespace = 'public'::regnamespace`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			Name  string
			Valid bool
		}]))(t) {
			out[r.Name] = r.Valid
		}
		return out
	}
	want := map[string]bool{
		"comments_author_id_fkey":         true,
		"doctors_office_id_fkey":          true,
		"doctors_profile_id_fkey":         true,
		"jaws_order_id_fkey":              true,
		"jaws_patient_id_fkey":            true,
		"orders_patient_id_fkey":          true,
		"patients_doctor_id_fkey":         true,
		"patients_profile_id_fkey":        true,
		"treatment_plans_patient_id_fkey": true,
	}
	if diff := cmp.Diff(want, fkeys()); diff != "" {
		t.Fatalf("foreign keys after the load (-want +got):\n%s", diff)
	}
	if _, err := e.pool.Exec(ctx, `ALTER TABLE public.orders DROP CONSTRAINT orders_patient_id_fkey;
		ALTER TABLE public.orders ADD CONSTRAINT orders_patient_id_fkey FOREIGN KEY (patient_id)
		REFERENCES public.patients (id) DEFERRABLE NOT VALID`); err != nil {
		t.Fatal(err)
	}
	if err := e.Finalize(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, fkeys()); diff != "" {
		t.Fatalf("foreign keys after finalizing again (-want +got):\n%s", diff)
	}
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestPartitionedIndexesBuiltPartitionByPartition: Finalize builds a partitioned table's
// indexes on its partitions side by side, then on the table, which adopts them: every index
// is valid with one index per partition under it, and the index a killed Finalize had built on
// one partition (found by its name) is adopted, not built twice.
func TestPartitionedIndexesBuiltPartitionByPartition(t *testing.T) {
	ctx := ctxT(t)
	events := &dbcopytest.Table{Name: "event", PK: true, Columns: []string{"id", "body", "created_at"},
		Types: []string{"INTEGER", "TEXT", "TEXT"}}
	for i := 1; i <= 30; i++ {
		events.Rows = append(events.Rows, []any{int64(i), fmt.Sprintf("event %d", i), fmt.Sprintf("2024-%02d-10T08:00:00Z", 1+i%3)})
	}
	e := openEngine(t, []*dbcopytest.Table{events}, `name: events
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
batch_size: 10
entities:
  - {name: events, source_table: event, target_table: events, key: {source: id},
     partition: {column: created_at, interval: month},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: body, type: text},
               {source: created_at, type: timestamptz}],
     indexes: [{columns: [legacy_id]}, {name: events_search, full_text: {config: english, columns: [body]}}]}
`)
	if _, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "events"}, 0, nil); err != nil {
		t.Fatal(err)
	}
	parts := strings0(t, e, `SELECT c.relname::text FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
		WHERE h.inhparent = 'public.events'::regclass`)
	if len(parts) != 3 {
		t.Fatalf("partitions %v, want 3", parts)
	}
	left := ident63(parts[0], "events_search")
	if _, err := e.Pool().Exec(ctx, fmt.Sprintf(`CREATE INDEX %s ON public.%s USING gin (to_tsvector('english'::regconfig, coalesce(body::text, '')))`,
		spec.QuoteIdent(left), spec.QuoteIdent(parts[0]))); err != nil {
		t.Fatal(err)
	}
	if err := e.Finalize(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	got := strings0(t, e, `SELECT p.relname || ' ' || i.indisvalid || ' ' || (SELECT count(*) FROM pg_inherits h
			JOIN pg_index ci ON ci.indexrelid = h.inhrelid WHERE h.inhparent = p.oid AND ci.indisvalid)
		FROM pg_index i JOIN pg_class p ON p.oid = i.indexrelid WHERE i.indrelid = 'public.events'::regclass`)
	want := []string{"events_legacy_id_idx true 3", "events_pkey true 3", "events_search true 3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("indexes of events: name, valid, valid partition indexes (-want +got):\n%s", diff)
	}
	n := count(t, e, `SELECT count(*) FROM pg_index WHERE indrelid = $1::regclass`, "public."+spec.QuoteIdent(parts[0]))
	if n != 3 {
		t.Errorf("%d indexes on partition %s, want 3 (key, legacy_id, search)", n, parts[0])
	}
	var attached bool
	if err := e.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1)
		AND inhparent = 'public.events_search'::regclass)`, "public."+spec.QuoteIdent(left)).Scan(&attached); err != nil {
		t.Fatal(err)
	}
	if !attached {
		t.Errorf("%s is not attached to events_search", left)
	}
	assertValidated(t, e, "events")
}

// TestFinalizeAnalyzesTheColumnsJoinsUse: after Finalize, the table's statistics cover its key,
// its reference columns and its indexes' columns, not its free text or numbers, and the table's
// count of changed rows is left for autovacuum's whole-table ANALYZE.
func TestFinalizeAnalyzesTheColumnsJoinsUse(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 50)
	copyAll(t, e)
	ctx := ctxT(t)
	analyzed := func(table string) []string {
		rows, err := e.pool.Query(ctx, `SELECT attname::text FROM pg_stats WHERE schemaname = 'public' AND tablename = $1
			ORDER BY attname`, table)
		if err != nil {
			t.Fatal(err)
		}
		return must(pgx.CollectRows(rows, pgx.RowTo[string]))(t)
	}
	for table, want := range map[string][]string{
		"doctors": {"id", "office_id", "profile_id"}, // not specialty, rating
		"offices": {"city", "id"},                    // its index's column; not name, active, created_at
	} {
		if diff := cmp.Diff(want, analyzed(table)); diff != "" {
			t.Errorf("columns with statistics in %s (-want +got):\n%s", table, diff)
		}
	}
	changed := func() (n int64) {
		t.Helper()
		if err := e.pool.QueryRow(ctx, `SELECT n_mod_since_analyze FROM pg_stat_user_tables
			WHERE schemaname = 'public' AND relname = 'doctors'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The loading sessions report their inserts when they end (an idle one may wait ten
	// seconds): end them, and wait for the count.
	e.pool.Reset()
	for deadline := time.Now().Add(10 * time.Second); changed() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("doctors' inserted rows never counted")
		}
	}
	if err := e.Finalize(ctx, "doctors"); err != nil {
		t.Fatal(err)
	}
	if changed() == 0 {
		t.Error("doctors' changed rows counted as analyzed by Finalize: autovacuum would not analyze its other columns")
	}
}

// TestFinalizeVacuumsTheLoadedTable: Finalize vacuums the loaded table, so its rows are
// marked committed and its pages all-visible before anything reads them (the dependents'
// parent checks then read its key index alone).
func TestFinalizeVacuumsTheLoadedTable(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 50)
	copyAll(t, e)
	ctx := ctxT(t)
	rows, err := e.pool.Query(ctx, `SELECT relname::text FROM pg_stat_user_tables
		WHERE schemaname = 'public' AND vacuum_count > 0 ORDER BY relname`)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(dbcopytest.Entities))
	if diff := cmp.Diff(want, must(pgx.CollectRows(rows, pgx.RowTo[string]))(t)); diff != "" {
		t.Errorf("tables vacuumed after the load (-want +got):\n%s", diff)
	}
}
