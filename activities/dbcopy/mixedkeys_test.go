package dbcopy

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestMixedStorageClassKeysPageOnce copies SQLite tables whose key column holds values of
// several storage classes, three rows a batch, one batch per call so the cursor crosses every
// call as the workflow carries it. SQLite sorts NULL < INTEGER/REAL < TEXT < BLOB whatever the
// column's declared type: a key declared without a type holding integers, reals and text (text
// that reads as a number included), and an INT key (not the rowid) holding text beside its
// integers (INTEGER affinity keeps text that is no number). A row of two classes in each is
// quarantined (its name NULL), mended in the source and re-driven by its key's text, which
// does not say the class. Every row is read once: the mappings hold each source key once, the
// target as many rows as the source, and the validation passes.
func TestMixedStorageClassKeysPageOnce(t *testing.T) {
	untyped := &dbcopytest.Table{Name: "untyped", PK: true, Columns: []string{"id", "name"}, Types: []string{"", "TEXT"}}
	for _, k := range []any{int64(1), int64(2), int64(3), 2.5, int64(10), int64(11), int64(12), int64(40),
		"a", "b", "10x", "20", "7", "zz", "é", "-1", int64(-5), "x y", "q"} {
		var name any = fmt.Sprint("row ", k)
		if k == int64(11) || k == "zz" {
			name = nil
		}
		untyped.Rows = append(untyped.Rows, []any{k, name})
	}
	typed := &dbcopytest.Table{Name: "typed", PK: true, Columns: []string{"id", "name"}, Types: []string{"INT", "TEXT"}}
	for _, k := range []any{int64(1), int64(2), int64(3), int64(4), "abc", "abd", "x", int64(5), "zz", "q1"} {
		var name any = fmt.Sprint("row ", k)
		if k == int64(5) || k == "abd" {
			name = nil
		}
		typed.Rows = append(typed.Rows, []any{k, name})
	}
	e := openEngine(t, []*dbcopytest.Table{untyped, typed}, `name: mixed-keys
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
batch_size: 3
error_budget: {max_rows: 2}
entities:
  - {name: untyped, source_table: untyped, target_table: untyped, key: {source: id},
     columns: [{source: id, target: legacy_id, type: text}, {source: name, type: text, not_null: true}]}
  - {name: typed, source_table: typed, target_table: typed, key: {source: id},
     columns: [{source: id, target: legacy_id, type: text}, {source: name, type: text, not_null: true}]}
`)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name  string
		table *dbcopytest.Table
	}{{"untyped", untyped}, {"typed", typed}} {
		next, calls := dbmigrateapi.BatchRequest{Entity: tc.name}, 0
		for {
			res, err := e.CopyBatches(ctx, next, 1, nil)
			if err != nil {
				t.Fatalf("%s: copy after %q: %v", tc.name, next.After, err)
			}
			if calls++; res.Done || calls > 3*len(tc.table.Rows) {
				break
			}
			next = res.Next
		}
		if err := e.Finalize(ctx, tc.name); err != nil {
			t.Fatalf("finalize %s: %v", tc.name, err)
		}
		mend := `UPDATE ` + tc.table.Name + ` SET name = 'mended' WHERE name IS NULL`
		if err := execSQLite(ctx, e.Spec().Sources["legacy"].Path, mend); err != nil {
			t.Fatal(err)
		}
		res, err := e.RetryFailed(ctx, tc.name)
		if err != nil {
			t.Fatalf("%s: re-drive: %v", tc.name, err)
		}
		if diff := cmp.Diff(RetryResult{Entity: tc.name, Retried: 2, Loaded: 2}, res); diff != "" {
			t.Errorf("%s: re-drive (-want +got):\n%s", tc.name, diff)
		}
		var want []string
		for _, r := range tc.table.Rows {
			k, _ := keyText(r[0])
			want = append(want, k)
		}
		slices.Sort(want)
		got := strings0(t, e, `SELECT source_id FROM migration_mappings WHERE source_table = $1`, tc.table.Name)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: mapped keys (-source +mappings):\n%s", tc.name, diff)
		}
		got = strings0(t, e, `SELECT legacy_id FROM public.`+tc.name)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: target keys (-source +target):\n%s", tc.name, diff)
		}
		assertValidated(t, e, tc.name)
	}
}
