package dbcopy

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestRefusedRowIsSplitOffByItsLine: a batch's COPY that PostgreSQL refuses at one row for its
// own data (a NULL in a NOT NULL column, at the batch's last row in COPY order) is written again
// without that row, not bisected: PostgreSQL's error names the tuple it failed on. Every row
// but the refused one loads, the refused one is quarantined with the violation, and the
// batch's transaction attempts fewer than 2n inserts (the failed COPY's and the others again);
// bisecting attempts about 2.7n (a COPY inserts its rows a thousand at a time, so a failed one
// leaves up to a thousand uncounted: n is large enough for the failures to count).
func TestRefusedRowIsSplitOffByItsLine(t *testing.T) {
	const n = 4096
	path := peopleDB(t, n, nil)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE people SET email = NULL WHERE id = ?`, n); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Ordered UUID keys: COPY order is id order, so row n is the last tuple sent.
	e := openSpecWriters(t, newTarget(t), fmt.Sprintf(`name: people
batch_size: %d
sources:
  legacy: {driver: sqlite, path: %q}
target:
  create_tables: true
entities:
  - name: people
    source_table: people
    target_table: people
    key: {source: id, uuid: ordered}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: email, type: text, not_null: true}
`, n, path), 1)
	attempted := -1
	testHookBeforeCommit = func(ctx context.Context, tx pgx.Tx) error {
		// Counts the inserts of the transaction's rolled-back savepoints too.
		return tx.QueryRow(ctx, `SELECT pg_stat_get_xact_tuples_inserted('public.people'::regclass)`).Scan(&attempted)
	}
	t.Cleanup(func() { testHookBeforeCommit = nil })
	res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loaded != n-1 {
		t.Fatalf("res.Loaded = %d, want %d", res.Loaded, n-1)
	}
	if got := count(t, e, `SELECT count(*) FROM public.people WHERE legacy_id = $1`, n); got != 0 {
		t.Fatalf("row %d (a NULL email) loaded %d times", n, got)
	}
	if codes := fmtCodes(errorCodes(t, e, "people")); codes != "23502=1" {
		t.Fatalf("errors %s, want 23502=1", codes)
	}
	if attempted >= 2*n {
		t.Fatalf("the batch attempted %d inserts for %d rows, want fewer than %d", attempted, n, 2*n)
	}
}

// TestCopyLine reads the tuple a COPY failed on from PostgreSQL's error context, and nothing
// from a context that names none or names another table.
func TestCopyLine(t *testing.T) {
	for _, c := range []struct {
		where string
		want  int
	}{
		{"COPY people, line 7", 7},
		{"COPY people, line 7, column email", 7},
		{"PL/pgSQL function check_people() line 3 at RAISE\nCOPY people, line 12", 12},
		{"COPY people, line 7, column x, line 9", 7},
		{"COPY other, line 7", 0},
		{"COPY people, line 7x", 0},
		{"PL/pgSQL function check_people() line 3 at RAISE", 0},
		{"", 0},
	} {
		if got := copyLine(&pgconn.PgError{Where: c.where}, "people"); got != c.want {
			t.Errorf("copyLine(%q) = %d, want %d", c.where, got, c.want)
		}
	}
}
