package dbcopy

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/testing/datasets"
)

// TestValuesArriveExactly copies the values real schemas get wrong — text keys with trailing
// spaces, epoch-millisecond timestamps, numeric(12,4) money, ” beside NULL — and compares
// the target with the source by reading both sides (not through the engine): equal, value for
// value. A value numeric(12,4) cannot hold is an error row (inexact), not a rounded value.
func TestValuesArriveExactly(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "reading", PK: true, Columns: []string{"id", "at_ms", "amount", "note"},
		Types: []string{"TEXT", "INTEGER", "TEXT", "TEXT"}}
	tbl.Rows = [][]any{
		{"k", int64(1727784000123), "12345678.1234", ""},
		{"k ", int64(1727784000999), "0.0001", nil},
		{" k", int64(-1), "-3.5", "  "},
		{"Val2 ", int64(1700000000000), "0", "x"},
		{"inexact", int64(1727784000123), "1.23456", "dropped?"},
	}
	path := t.TempDir() + "/legacy.db"
	ctx := ctxT(t)
	if err := dbcopytest.WriteSQLite(ctx, path, []*dbcopytest.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	target := newTarget(t)
	e := openSpec(t, target, `name: exact
sources: {legacy: {driver: sqlite, path: `+path+`}}
target: {create_tables: true}
entities:
  - {name: readings, source_table: reading, target_table: reading, key: {source: id, target: id, mode: keep, type: text},
     columns: [{source: at_ms, type: timestamptz}, {source: amount, type: "numeric(12,4)"}, {source: note, type: text}]}
`)
	copyAll(t, e)
	if diff := cmp.Diff(map[string]int{"inexact": 1}, errorCodes(t, e, "readings")); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	pool, err := pgxpool.New(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	got, types := datasets.TargetTable(t, pool, "public", "reading", []string{"id"})
	want := datasets.SourceTable(t, path, "reading", []string{"id"}, types)
	delete(want, "t:inexact")
	if diff := datasets.Diff(want, got, 20); len(diff) > 0 {
		t.Errorf("the target differs from the source:\n  %s", join(diff))
	}
	if got["t:k"]["at_ms"] != "2024-10-01T12:00:00.123Z" {
		t.Errorf("got[\"t:k\"][\"at_ms\"] = %v, want \"2024-10-01T12:00:00.123Z\"; row k: %v; row 'k ': %v",
			got["t:k"]["at_ms"], got["t:k"], got["t:k "])
	} else if got["t:k"]["note"] != "t:" {
		t.Errorf("got[\"t:k\"][\"note\"] = %v, want \"t:\"; row k: %v; row 'k ': %v",
			got["t:k"]["note"], got["t:k"], got["t:k "])
	} else if got["t:k "]["note"] != "NULL" {
		t.Errorf("got[\"t:k \"][\"note\"] = %v, want \"NULL\"; row k: %v; row 'k ': %v",
			got["t:k "]["note"], got["t:k"], got["t:k "])
	}
}

// TestWhereFiltersTheSource: a row filter at the source (where:) selects the rows that belong
// to the migration, on SQLite and PostgreSQL sources, for the copy (a composite key pages
// through the filtered rows, three to a batch), the counts and the validation; what the
// filter leaves out never reaches the target.
func TestWhereFiltersTheSource(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "line", Columns: []string{"order_id", "pos", "status", "amount"},
		Types: []string{"INTEGER", "INTEGER", "TEXT", "INTEGER"}}
	var want []string
	for i := range 40 {
		status := []string{"open", "deleted", "paid", "void"}[i%4]
		amount := int64(i * 3 % 25)
		tbl.Rows = append(tbl.Rows, []any{int64(i / 5), int64(i % 5), status, amount})
		if status != "deleted" && status != "void" && amount >= 10 {
			want = append(want, fmt.Sprintf("%d/%d %s %d", i/5, i%5, status, amount))
		}
	}
	slices.Sort(want)
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			ctx := ctxT(t)
			path := filepath.Join(t.TempDir(), "legacy.db")
			src := fmt.Sprintf("{driver: sqlite, path: %q}", path)
			if driver == "postgres" {
				url := newTarget(t)
				if err := dbcopytest.WritePostgres(ctx, url, []*dbcopytest.Table{tbl}); err != nil {
					t.Fatal(err)
				}
				src = fmt.Sprintf("{driver: postgres, dsn: %q}", url)
			} else if err := dbcopytest.WriteSQLite(ctx, path, []*dbcopytest.Table{tbl}); err != nil {
				t.Fatal(err)
			}
			e := openSpec(t, newTarget(t), `name: filtered
sources: {legacy: `+src+`}
target: {create_tables: true}
entities:
  - name: lines
    source_table: line
    target_table: lines
    batch_size: 3
    key: {columns: [order_id, pos]}
    where:
      - {column: status, op: in, values: [open, paid]}
      - {column: amount, op: ge, value: "10"}
    columns:
      - {source: order_id, type: bigint}
      - {source: pos, type: bigint}
      - {source: status, type: text}
      - {source: amount, type: bigint}
`)
			copyAll(t, e)
			got := strings0(t, e, `SELECT order_id || '/' || pos || ' ' || status || ' ' || amount FROM public.lines`)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("filtered rows (-want +got):\n%s", diff)
			}
			if n := count(t, e, `SELECT records_total FROM entity_migration_status WHERE id = $1`, e.EntityStatusID("lines")); n != len(want) {
				t.Errorf("records_total %d, want the %d rows the filter keeps", n, len(want))
			}
			assertValidated(t, e, "lines")
		})
	}
}

// TestPostgresSourceBytesExact: a PostgreSQL source's bytea values arrive as the same bytes
// (they were read as their hex text, and the text's bytes loaded: \x00ff became 6 bytes).
func TestPostgresSourceBytesExact(t *testing.T) {
	ctx := ctxT(t)
	src := newTarget(t)
	conn, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{{0x00, 0xff, 0x5c}, []byte(`\x41`), {}, nil}
	if _, err := conn.Exec(ctx, `CREATE TABLE blob (id bigint PRIMARY KEY, data bytea)`); err != nil {
		t.Fatal(err)
	}
	for i, b := range want {
		if _, err := conn.Exec(ctx, `INSERT INTO blob VALUES ($1, $2)`, i+1, b); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	e := openSpec(t, newTarget(t), fmt.Sprintf(`name: bytes
sources: {legacy: {driver: postgres, dsn: %q}}
target: {create_tables: true}
entities:
  - {name: blobs, source_table: blob, target_table: blob, key: {source: id, target: id, mode: keep, type: bigint},
     columns: [{source: data, type: bytea}]}
`, src))
	copyAll(t, e)
	rows, err := e.Pool().Query(ctx, `SELECT data FROM public.blob ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bytes (-source +target):\n%s", diff)
	}
	assertValidated(t, e, "blobs")
}
