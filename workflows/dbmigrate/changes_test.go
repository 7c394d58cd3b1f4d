package dbmigrate_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestChangedValuesAreCounted: every value a transformation changes (” and blank text to NULL,
// spaces dropped by a cast, a default filling NULL, a rounding the column allows) is counted
// per column, and the counts are in the plan (what may change), the migration's status and
// its report; the target holds the changed values, and nothing else changed.
func TestChangedValuesAreCounted(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := inProcessWorker(t, srv, dbURL)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "legacy.db")
	tbl := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "note", "qty", "price"},
		Types: []string{"INTEGER", "TEXT", "TEXT", "TEXT"}}
	tbl.Rows = [][]any{
		{int64(1), "", " 5", "1.005"},
		{int64(2), "  ", "5 ", "2.50"},
		{int64(3), "", "7", "3"},
		{int64(4), "", nil, "4.125"},
		{int64(5), "x", nil, nil},
		{int64(6), nil, "8", "0.1"},
	}
	if err := dbcopytest.WriteSQLite(ctx, src, []*dbcopytest.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	target := testenv.NewDatabase(t)
	sp, err := spec.Parse([]byte(`name: counted
sources: {legacy: {driver: sqlite, path: "` + src + `"}}
target: {dsn: "` + target + `", create_tables: true}
entities:
  - name: items
    source_table: item
    target_table: items
    key: {source: id, target: id, mode: keep, type: bigint}
    columns:
      - {source: note, type: text, empty_as_null: true}
      - {source: qty, type: bigint, default: "0"}
      - {source: price, type: "numeric(6,2)", round: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(sp)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"items.note: '' and blank text become NULL (empty_as_null)", `items.qty: NULL becomes "0" (default)`,
		"items.price: values the type cannot hold exactly are rounded (round)"} {
		if !strings.Contains(p.String(), line) {
			t.Errorf("the plan does not say %q:\n%s", line, p)
		}
	}
	c := srv.Client(t)
	in := dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationFull, CreatedBy: "test", Spec: sp}
	var res dbmigrateapi.State
	if err := startMigration(t, c, queue, in).Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	want := []dbcopy.ColumnChange{
		{Column: "note", Change: "empty_to_null", Count: 4},
		{Column: "price", Change: "rounded", Count: 2},
		{Column: "qty", Change: "default_filled", Count: 2},
		{Column: "qty", Change: "trimmed", Count: 2},
	}
	if len(res.Entities) != 1 {
		t.Fatalf("result %+v", res)
	}
	if diff := cmp.Diff(want, res.Entities[0].Changes); diff != "" {
		t.Errorf("changes in the status (-want +got):\n%s", diff)
	}
	pool, err := pgxpool.New(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT id::text || ' ' || coalesce(note, 'NULL') || ' ' || qty || ' ' || coalesce(price::text, 'NULL')
		FROM public.items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	rows.Close()
	if diff := cmp.Diff([]string{"1 NULL 5 1.01", "2 NULL 5 2.50", "3 NULL 7 3.00", "4 NULL 0 4.13", "5 x 0 NULL", "6 NULL 8 0.10"}, got); diff != "" {
		t.Errorf("target rows (-want +got):\n%s", diff)
	}
	var path string
	if err := pool.QueryRow(ctx, `SELECT coalesce(report_path, '') FROM cutover.migration_orchestrations WHERE id = $1`,
		in.MigrationID).Scan(&path); err != nil {
		t.Fatalf("err: want nil; no report recorded (%v)", err)
	} else if path == "" {
		t.Fatalf("path = %v, want != \"\"; no report recorded (%v)", path, err)
	}
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range want {
		row := "<tr><td>items</td><td>" + c.Column + "</td><td>" + c.Change + `</td><td class="n" data-field="changed">` +
			strconv.FormatInt(c.Count, 10) + "</td></tr>"
		if !strings.Contains(string(html), row) {
			t.Errorf("the report does not list %s", row)
		}
	}
}
