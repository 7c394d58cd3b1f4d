package dbcopy

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestMixedStorageClassMarksCatchUp runs catch-up passes of SQLite tables whose watermark
// column holds values of several storage classes, as legacy applications leave them: integer
// epochs beside ISO text timestamps and a real. SQLite sorts NULL < INTEGER/REAL < TEXT < BLOB,
// so a pass that starts at an integer high-water mark reads the integers above it, then every
// text. The mark is declared without a type (no affinity: a text mark compares after every
// integer) and INT (INTEGER affinity converts a mark's text back to a number). Three rows a
// batch, one batch per call, so the mark crosses every call as the workflow carries it. Every
// changed and inserted row arrives: the target holds the source's rows, name for name.
func TestMixedStorageClassMarksCatchUp(t *testing.T) {
	var tables []*dbcopytest.Table
	for _, tc := range []struct{ name, decl string }{{"untyped", ""}, {"typed", "INT"}} {
		tb := &dbcopytest.Table{Name: tc.name, PK: true, Columns: []string{"id", "name", "updated"},
			Types: []string{"INTEGER", "TEXT", tc.decl}}
		for i := int64(1); i <= 10; i++ {
			tb.Rows = append(tb.Rows, []any{i, fmt.Sprint("row ", i), 100 + i})
		}
		tables = append(tables, tb)
	}
	e := openEngine(t, tables, `name: mixed-marks
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
batch_size: 3
entities:
  - {name: untyped, source_table: untyped, target_table: untyped, key: {source: id},
     incremental: {column: updated},
     columns: [{source: id, target: legacy_id, type: text}, {source: name, type: text}]}
  - {name: typed, source_table: typed, target_table: typed, key: {source: id},
     incremental: {column: updated},
     columns: [{source: id, target: legacy_id, type: text}, {source: name, type: text}]}
`)
	ctx := ctxT(t)
	path := e.Spec().Sources["legacy"].Path
	for _, tb := range tables {
		full, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: tb.Name}, 0, nil)
		if err != nil {
			t.Fatalf("%s: full load: %v", tb.Name, err)
		}
		// The application writes integer epochs from one code path, ISO text from another.
		changes := `UPDATE ` + tb.Name + ` SET name = 'epoch ' || id, updated = 200 + id WHERE id <= 4;
UPDATE ` + tb.Name + ` SET name = 'iso ' || id, updated = '2026-12-07T08:00:0' || id WHERE id IN (5, 6);
UPDATE ` + tb.Name + ` SET name = 'real 7', updated = 150.5 WHERE id = 7;
INSERT INTO ` + tb.Name + ` VALUES (11, 'new epoch', 300), (12, 'new iso', '2026-12-07T09:00:00');`
		if err := execSQLite(ctx, path, changes); err != nil {
			t.Fatal(err)
		}
		next := catchUpPass(t, e, dbmigrateapi.BatchRequest{Entity: tb.Name, Sync: true, Mark: full.MarkStart, MarkType: full.MarkStartType,
			BatchNumber: full.Next.BatchNumber})
		if diff := cmp.Diff(sourceNames(t, path, tb.Name), strings0(t, e, `SELECT legacy_id || ':' || name FROM public.`+tb.Name)); diff != "" {
			t.Errorf("%s: first pass from mark %q (-source +target):\n%s", tb.Name, full.MarkStart, diff)
		}
		// A later pass continues after the mark the first one ended at.
		changes = `UPDATE ` + tb.Name + ` SET name = 'later ' || id, updated = '2026-12-08T00:00:00' WHERE id IN (8, 9)`
		if err := execSQLite(ctx, path, changes); err != nil {
			t.Fatal(err)
		}
		catchUpPass(t, e, next)
		if diff := cmp.Diff(sourceNames(t, path, tb.Name), strings0(t, e, `SELECT legacy_id || ':' || name FROM public.`+tb.Name)); diff != "" {
			t.Errorf("%s: second pass from mark %q (-source +target):\n%s", tb.Name, next.Mark, diff)
		}
	}
}

// catchUpPass runs one catch-up pass from req, one batch a call, and returns where the next
// pass continues.
func catchUpPass(t *testing.T, e *Engine, req dbmigrateapi.BatchRequest) dbmigrateapi.BatchRequest {
	t.Helper()
	for calls := 0; calls < 20; calls++ {
		res, err := e.CopyBatches(ctxT(t), req, 1, nil)
		if err != nil {
			t.Fatalf("%s: catch-up after mark %q key %q: %v", req.Entity, req.Mark, req.After, err)
		}
		req = res.Next
		if res.Done {
			return req
		}
	}
	t.Fatalf("%s: catch-up pass did not end in 20 batches", req.Entity)
	return req
}

// sourceNames is a SQLite table's rows as sorted "id:name".
func sourceNames(t *testing.T, path, table string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), `SELECT id || ':' || name FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestMixedStorageClassKeysCatchUp runs a catch-up pass without a watermark column (rows after
// the last key copied) of a SQLite key declared without a type: the load ends at an integer,
// and the application then inserts integers above it and text (which sorts after every
// integer). The pass continues after the integer, not its text: every new row arrives, from
// the cursor with its class and from one without (as a migration running before cursors
// carried their class holds it).
func TestMixedStorageClassKeysCatchUp(t *testing.T) {
	for _, withClass := range []bool{true, false} {
		t.Run(fmt.Sprint("class ", withClass), func(t *testing.T) { keysCatchUp(t, withClass) })
	}
}

func keysCatchUp(t *testing.T, withClass bool) {
	tb := &dbcopytest.Table{Name: "untyped", PK: true, Columns: []string{"id", "name"}, Types: []string{"", "TEXT"}}
	for i := int64(1); i <= 5; i++ {
		tb.Rows = append(tb.Rows, []any{i, fmt.Sprint("row ", i)})
	}
	e := openEngine(t, []*dbcopytest.Table{tb}, `name: mixed-keys-catch-up
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
batch_size: 3
entities:
  - {name: untyped, source_table: untyped, target_table: untyped, key: {source: id},
     columns: [{source: id, target: legacy_id, type: text}, {source: name, type: text}]}
`)
	ctx := ctxT(t)
	path := e.Spec().Sources["legacy"].Path
	full, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: tb.Name}, 0, nil)
	if err != nil {
		t.Fatalf("full load: %v", err)
	}
	inserts := `INSERT INTO untyped VALUES (6, 'new 6'), (7, 'new 7'), (40, 'new 40'), ('a', 'new a'), ('10', 'new text 10')`
	if err := execSQLite(ctx, path, inserts); err != nil {
		t.Fatal(err)
	}
	next := full.Next
	next.Sync = true
	if !withClass {
		next.AfterType = ""
	}
	catchUpPass(t, e, next)
	if diff := cmp.Diff(sourceNames(t, path, tb.Name), strings0(t, e, `SELECT legacy_id || ':' || name FROM public.untyped`)); diff != "" {
		t.Errorf("pass after key %q (class %q) (-source +target):\n%s", next.After, next.AfterType, diff)
	}
}

// TestMarkArgReadsCheckpointsWithoutClass: a watermark checkpointed before marks carried their
// storage class reads back by the column's declared type (text that is no integer as text;
// TestMarkWithoutClassCatchUp the number text of an untyped column); one with a class reads
// back as a value of that class.
func TestMarkArgReadsCheckpointsWithoutClass(t *testing.T) {
	for _, tc := range []struct {
		integer     bool
		mark, class string
		want        any
	}{
		{true, "42", "", int64(42)},
		{true, "2026-12-07T08:00:00", "", "2026-12-07T08:00:00"},
		{false, "2026-12-07T08:00:00", "", "2026-12-07T08:00:00"},
		{false, "42", keyClassInteger, int64(42)},
		{false, "150.5", keyClassReal, 150.5},
		{true, "42", keyClassText, "42"},
	} {
		p := &entityPlan{markInt: tc.integer}
		got, err := p.markArg(tc.mark, tc.class)
		if err != nil {
			t.Errorf("markArg(%q, %q) with an INT column %v: %v", tc.mark, tc.class, tc.integer, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("markArg(%q, %q) with an INT column %v (-want +got):\n%s", tc.mark, tc.class, tc.integer, diff)
		}
	}
}

// TestMarkWithoutClassCatchUp continues a catch-up pass of an untyped SQLite watermark from an
// integer high-water mark checkpointed without its class, as a migration running before marks
// carried one holds it: every changed and inserted row arrives.
func TestMarkWithoutClassCatchUp(t *testing.T) {
	tb := &dbcopytest.Table{Name: "untyped", PK: true, Columns: []string{"id", "name", "updated"},
		Types: []string{"INTEGER", "TEXT", ""}}
	for i := int64(1); i <= 6; i++ {
		tb.Rows = append(tb.Rows, []any{i, fmt.Sprint("row ", i), 100 + i})
	}
	e := openEngine(t, []*dbcopytest.Table{tb}, `name: old-marks
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
batch_size: 3
entities:
  - {name: untyped, source_table: untyped, target_table: untyped, key: {source: id},
     incremental: {column: updated},
     columns: [{source: id, target: legacy_id, type: text}, {source: name, type: text}]}
`)
	ctx := ctxT(t)
	path := e.Spec().Sources["legacy"].Path
	full, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: tb.Name}, 0, nil)
	if err != nil {
		t.Fatalf("full load: %v", err)
	}
	changes := `UPDATE untyped SET name = 'epoch ' || id, updated = 200 + id WHERE id <= 2;
UPDATE untyped SET name = 'iso 3', updated = '2026-12-07T08:00:00' WHERE id = 3;
INSERT INTO untyped VALUES (7, 'new epoch', 300);`
	if err := execSQLite(ctx, path, changes); err != nil {
		t.Fatal(err)
	}
	catchUpPass(t, e, dbmigrateapi.BatchRequest{Entity: tb.Name, Sync: true, Mark: full.MarkStart, BatchNumber: full.Next.BatchNumber})
	if diff := cmp.Diff(sourceNames(t, path, tb.Name), strings0(t, e, `SELECT legacy_id || ':' || name FROM public.untyped`)); diff != "" {
		t.Errorf("pass from mark %q without its class (-source +target):\n%s", full.MarkStart, diff)
	}
}
