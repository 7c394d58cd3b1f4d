package dbcopy

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
)

// TestDrainMovesARowToItsNewPartition: a drain carries a row whose partition column changed in
// the source into its new month's partition and leaves no copy in the old one, next to an
// update in place, an insert and a delete of the same drain.
func TestDrainMovesARowToItsNewPartition(t *testing.T) {
	ctx := ctxT(t)
	emails := &dbcopytest.Table{Name: "emails", PK: true, Columns: []string{"id", "subject", "created_at"},
		Types: []string{"INTEGER", "TEXT", "TEXT"}}
	for i := 1; i <= 30; i++ {
		emails.Rows = append(emails.Rows, []any{int64(i), fmt.Sprintf("s%d", i), fmt.Sprintf("2024-%02d-%02d 10:00:00", 10+i%3, 1+i%28)})
	}
	e := openEngineAt(t, []*dbcopytest.Table{emails}, newTarget(t), "", `name: moved
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - name: emails
    source_table: emails
    target_table: emails
    key: {source: id}
    partition: {column: created_at, interval: month}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: subject, type: text}
      - {source: created_at, type: timestamptz, not_null: true}
`)
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	copyAll(t, e)
	db, err := sql.Open("sqlite", e.Spec().Sources["legacy"].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Row 3 is in October (10 + 3%3); it moves to December. Row 4 (November) changes in place.
	for _, q := range []string{
		`UPDATE emails SET created_at = '2024-12-20 08:00:00' WHERE id = 3`,
		`UPDATE emails SET subject = 'changed' WHERE id = 4`,
		`INSERT INTO emails (id, subject, created_at) VALUES (100, 'new', '2024-11-11 11:00:00')`,
		`DELETE FROM emails WHERE id = 5`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st, err := e.Drain(ctx, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	if st.Failed != 0 {
		t.Fatalf("drain %+v: rows quarantined", st)
	}
	if n := count(t, e, `SELECT count(*) FROM public.emails`); n != 30 {
		t.Errorf("target holds %d emails, want 30 (30 - 1 deleted + 1 inserted)", n)
	}
	var copies int
	var at time.Time
	if err := e.Pool().QueryRow(ctx, `SELECT count(*), max(created_at) FROM public.emails WHERE legacy_id = 3`).Scan(&copies, &at); err != nil {
		t.Fatal(err)
	}
	if copies != 1 || !at.Equal(time.Date(2024, 12, 20, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("row 3: %d copies, latest created_at %v; want 1 copy at 2024-12-20 08:00 UTC", copies, at)
	}
	var part string
	if err := e.Pool().QueryRow(ctx, `SELECT tableoid::regclass::text FROM public.emails WHERE legacy_id = 3`).Scan(&part); err != nil {
		t.Fatal(err)
	}
	if part != "public.emails_2024_12" {
		t.Errorf("row 3 is in %s, want public.emails_2024_12", part)
	}
	if n := count(t, e, `SELECT count(*) FROM public.emails WHERE legacy_id = 4 AND subject = 'changed'`); n != 1 {
		t.Errorf("row 4 updated in place: %d rows with the new subject, want 1", n)
	}
	if n := count(t, e, `SELECT count(*) FROM public.emails WHERE legacy_id IN (5, 100)`); n != 1 {
		t.Errorf("rows 5 (deleted) and 100 (inserted): %d in the target, want 1", n)
	}
	// Row 100 came in by a drain: a mapping row maps it, no block's range holds it (the load's
	// keys end at 30). It moves to December; a drain that looked only in the blocks would keep
	// its November copy.
	if _, err := db.ExecContext(ctx, `UPDATE emails SET created_at = '2024-12-21 09:00:00' WHERE id = 100`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Drain(ctx, "legacy"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, e, `SELECT count(*) FROM public.emails WHERE legacy_id = 100`); n != 1 {
		t.Errorf("row 100 after its move: %d copies in the target, want 1", n)
	}
	if n := count(t, e, `SELECT count(*) FROM public.emails_2024_12 WHERE legacy_id = 100`); n != 1 {
		t.Errorf("row 100 in public.emails_2024_12: %d rows, want 1", n)
	}
}
