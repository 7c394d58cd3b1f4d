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
