package dbcopy

import (
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestTransformPageAllocations: transforming a page carves what its rows get (key texts, UUIDs
// and their boxes, references' legacy texts, times) from the page's arrays, not an allocation
// or two per value.
func TestTransformPageAllocations(t *testing.T) {
	const n = 2000
	parents := &dbcopytest.Table{Name: "parent", PK: true, Columns: []string{"id"}, Types: []string{"INTEGER"}}
	children := &dbcopytest.Table{Name: "child", PK: true, Columns: []string{"id", "parent_id", "at"},
		Types: []string{"INTEGER", "INTEGER", "TEXT"}}
	for i := int64(1); i <= n; i++ {
		parents.Rows = append(parents.Rows, []any{i + 1000})
		children.Rows = append(children.Rows, []any{i + 1000, i%500 + 1000, "2024-03-04 05:06:07"})
	}
	e := openEngine(t, []*dbcopytest.Table{parents, children}, `name: packed
batch_size: 5000
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: parents, source_table: parent, target_table: parents, key: {source: id}, columns: []}
  - {name: children, source_table: child, target_table: children, key: {source: id},
     columns: [{source: parent_id, references: parents}, {source: at, type: timestamptz}]}
`)
	ctx := ctxT(t)
	p, err := e.plan(ctx, "children")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := e.readPage(ctx, p, dbmigrateapi.BatchRequest{Entity: "children"})
	if err != nil {
		t.Fatal(err)
	}
	if pg.n != n {
		t.Fatalf("read %d rows, want %d", pg.n, n)
	}
	allocs := testing.AllocsPerRun(3, func() {
		good, bad, err := e.transformPage(p, pg)
		if err != nil {
			t.Fatal(err)
		}
		if len(good) != n {
			t.Fatalf("transform: %d good rows, want %d (bad: %v)", len(good), n, bad)
		}
	})
	// Allocated on its own, each row's values were five allocations.
	if allocs > n/4 {
		t.Fatalf("transforming %d rows made %.0f allocations, want at most %d", n, allocs, n/4)
	}
}
