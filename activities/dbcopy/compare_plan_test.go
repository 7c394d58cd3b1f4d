package dbcopy

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// TestContentQueryProbesTheKeyIndex: the content check reads a page's target rows by probing
// the target's key index, key by key, also once the table has statistics and the page's keys
// are many against its rows, where PostgreSQL plans a plain join of the keys as a hash join over
// a scan of the whole table, for every page (quadratic in the table's rows). On a target without
// an index on its key the check still reads every row (one scan per page) and passes.
func TestContentQueryProbesTheKeyIndex(t *testing.T) {
	const n = 3000
	tbl := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "name", "doc"}, Types: []string{"INTEGER", "TEXT", "TEXT"}}
	for i := int64(1); i <= n; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, fmt.Sprintf("item %d", i), fmt.Sprintf(`{"n": %d}`, i)})
	}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: probes
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id},
     columns: [{source: name, type: text}, {source: doc, type: jsonb}]}
`)
	copyAll(t, e)
	ctx := ctxT(t)
	if _, err := e.Pool().Exec(ctx, "ANALYZE public.items"); err != nil {
		t.Fatal(err)
	}
	p, err := e.plan(ctx, "items")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := e.Pool().Query(ctx, "SELECT id FROM public.items")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != n {
		t.Fatalf("len(keys) = %d, want %d", len(keys), n)
	}
	q, err := e.contentQuery(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var plan []map[string]any
	if err := e.Pool().QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+q, keys).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	scans := map[string]int{} // node type → nodes on items
	var walk func(node map[string]any)
	walk = func(node map[string]any) {
		if node["Relation Name"] == "items" {
			scans[fmt.Sprint(node["Node Type"])]++
		}
		for _, c := range asList(node["Plans"]) {
			walk(c)
		}
	}
	walk(plan[0]["Plan"].(map[string]any))
	b, _ := json.MarshalIndent(plan, "", " ")
	if scans["Seq Scan"] != 0 {
		t.Fatalf(`scans["Seq Scan"] = %d, want 0 (the whole table read for a page); plan:\n%s`, scans["Seq Scan"], b)
	}
	if probes := scans["Index Scan"] + scans["Index Only Scan"]; probes != 1 {
		t.Fatalf("index scans of items = %d, want 1 (probed per key); plan:\n%s", probes, b)
	}

	// Without an index on the key: the same rows, read by a join.
	for _, stmt := range []string{"ALTER TABLE public.items DROP CONSTRAINT items_pkey", "ANALYZE public.items"} {
		if _, err := e.Pool().Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	d, status, _ := contentCheck(t, e, "items")
	if status != model.ValidationPassed {
		t.Fatalf("status = %s, want passed; content check without a key index: %+v", status, d)
	}
	if found := d.Missing.Count + d.Extra.Count + d.Different.Count; found != 0 {
		t.Fatalf("missing + extra + different = %d, want 0; content check without a key index: %+v", found, d)
	}
}

func asList(v any) []map[string]any {
	l, _ := v.([]any)
	out := make([]map[string]any, 0, len(l))
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
