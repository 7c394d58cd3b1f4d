package dbcopy

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestPagesAreBoundedByBytes copies 1,200 rows of 64 KiB with a batch size of 500: once the first
// page showed how wide the rows are, pages hold at most maxPageBytes of source values (128 of
// these rows), and every row arrives once.
func TestPagesAreBoundedByBytes(t *testing.T) {
	const n, width = 1200, 64 << 10
	tbl := &dbcopytest.Table{Name: "mail", PK: true, Columns: []string{"id", "body"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= n; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, strings.Repeat(string(rune('a'+i%26)), width)})
	}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: wide
batch_size: 500
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: mails, source_table: mail, target_table: mails, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: body, type: text}]}
`)
	var rows []int
	res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "mails"}, 0, func(b BatchResult) error {
		rows = append(rows, b.Rows)
		return nil
	})
	if err != nil {
		t.Fatalf("err: want nil; copy: %+v %v", res, err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false; copy: %+v %v", res, err)
	}
	if res.Loaded != n {
		t.Fatalf("res.Loaded = %v, want %v (n); copy: %+v %v", res.Loaded, n, res, err)
	}
	if len(rows) < 2 {
		t.Fatalf("len(rows) = %v, want >= 2; batches of %v rows, want 500 then pages bounded by bytes",
			len(rows), rows)
	}
	if rows[0] != 500 {
		t.Fatalf("rows[0] = %v, want 500; batches of %v rows, want 500 then pages bounded by bytes", rows[0], rows)
	}
	for _, r := range rows[1:] {
		if int64(r)*(width+8) > maxPageBytes {
			t.Errorf("a page of %d rows (%d KiB): batches %v", r, r*width>>10, rows)
		}
	}
	if got := count(t, e, `SELECT count(DISTINCT legacy_id) FROM public.mails WHERE length(body) = $1`, width); got != n {
		t.Errorf("%d distinct full rows in the target, want %d", got, n)
	}
}

// TestContentCheckPagesAreBoundedByBytes: the content check reads the source in pages bounded
// by bytes too (a worker that did not run the load starts at the batch size, then learns the
// width from its first page), and its check of every wide row passes.
func TestContentCheckPagesAreBoundedByBytes(t *testing.T) {
	const n, width = 600, 64 << 10
	tbl := &dbcopytest.Table{Name: "mail", PK: true, Columns: []string{"id", "body"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= n; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, strings.Repeat(string(rune('a'+i%26)), width)})
	}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: wide
batch_size: 300
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: mails, source_table: mail, target_table: mails, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: body, type: text}]}
`)
	ctx := ctxT(t)
	if res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "mails"}, 0, nil); err != nil || !res.Done {
		t.Fatalf("copy: %+v %v", res, err)
	}
	p, err := e.plan(ctx, "mails")
	if err != nil {
		t.Fatal(err)
	}
	p.rowBytes.Store(0) // as in a worker that did not run the load
	pages, stop := e.readAhead(ctx, p)
	var sizes []int
	total := 0
	for pg := range pages {
		if pg.err != nil {
			t.Fatal(pg.err)
		}
		sizes, total = append(sizes, len(pg.rows)), total+len(pg.rows)
	}
	stop()
	if total != n {
		t.Fatalf("pages of %v rows hold %d rows in all, want %d", sizes, total, n)
	}
	if len(sizes) < 3 {
		t.Fatalf("pages of %v rows: %d pages, want at least 3 (pages bounded by bytes)", sizes, len(sizes))
	}
	if sizes[0] != 300 {
		t.Fatalf("pages of %v rows: the first holds %d, want the asked 300", sizes, sizes[0])
	}
	for _, r := range sizes[1:] {
		if int64(r)*(width+8) > maxPageBytes {
			t.Errorf("a page of %d rows (%d KiB): pages %v", r, r*width>>10, sizes)
		}
	}
	vs, err := e.Validate(ctx, "mails")
	if err != nil {
		t.Fatal(err)
	}
	if !Passed(vs, false) {
		for _, v := range vs {
			t.Logf("%s %s %s", v.ValidationType, v.Status, v.IssueDetails)
		}
		t.Fatal("validation of the wide rows failed")
	}
}
