package dbcopy

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestParentCheckLooksKeysUp: a batch's parent check over a large, analyzed parent table of
// wide rows looks each key up in the key index; it never scans the parent table (which the
// planner chose for "key = ANY($1)" with a batch's thousands of keys, at every batch). It also
// answers which keys are there.
func TestParentCheckLooksKeysUp(t *testing.T) {
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, newTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE parents (id uuid PRIMARY KEY, note text);
		INSERT INTO parents SELECT gen_random_uuid(), repeat('x', 200) FROM generate_series(1, 60000);
		ANALYZE parents`); err != nil {
		t.Fatal(err)
	}
	rs, err := conn.Query(ctx, `SELECT id FROM parents TABLESAMPLE SYSTEM (20) LIMIT 5000`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rs, pgx.RowTo[pgtype.UUID])
	if err != nil {
		t.Fatal(err)
	}
	absent := pgtype.UUID{Bytes: uuid.New(), Valid: true}
	keys = append(keys, absent)
	table := spec.QuoteQualified("public", "parents")
	indexed, err := keyIndexed(ctx, conn, table, "id")
	if err != nil || !indexed {
		t.Fatalf("keyIndexed = %v, %v; want true (the primary key)", indexed, err)
	}
	q := parentCheckSQL(table, "id", "uuid", indexed)

	rs, err = conn.Query(ctx, "EXPLAIN "+q, keys)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if strings.Contains(l, "Seq Scan") || strings.Contains(l, "Bitmap Heap Scan") {
			t.Errorf("parent check plan scans the parent table (%.80s), want a key lookup per key", strings.TrimSpace(l))
		}
	}

	rs, err = conn.Query(ctx, q, keys)
	if err != nil {
		t.Fatal(err)
	}
	found, err := pgx.CollectRows(rs, pgx.RowTo[pgtype.UUID])
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != len(keys)-1 {
		t.Errorf("parent check found %d keys, want %d (all but the absent one)", len(found), len(keys)-1)
	}
	for _, k := range found {
		if k == absent {
			t.Errorf("parent check found the absent key %v", k)
		}
	}
}

// TestParentCheckWithoutKeyIndexScansOnce: a parent whose key leads no index (a user's table)
// is checked by one scan of the table a batch, never by a scan per key.
func TestParentCheckWithoutKeyIndexScansOnce(t *testing.T) {
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, newTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE parents (id uuid, note text);
		INSERT INTO parents SELECT gen_random_uuid(), 'x' FROM generate_series(1, 2000);
		ANALYZE parents`); err != nil {
		t.Fatal(err)
	}
	table := spec.QuoteQualified("public", "parents")
	indexed, err := keyIndexed(ctx, conn, table, "id")
	if err != nil || indexed {
		t.Fatalf("keyIndexed = %v, %v; want false", indexed, err)
	}
	rs, err := conn.Query(ctx, `SELECT id FROM parents LIMIT 100`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rs, pgx.RowTo[pgtype.UUID])
	if err != nil {
		t.Fatal(err)
	}
	q := parentCheckSQL(table, "id", "uuid", indexed)
	rs, err = conn.Query(ctx, "EXPLAIN "+q, keys)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if plan := strings.Join(lines, "\n"); strings.Contains(plan, "SubPlan") || strings.Count(plan, "Seq Scan") != 1 {
		t.Errorf("parent check plan without a key index, want one scan of the table:\n%s", plan)
	}
	rs, err = conn.Query(ctx, q, keys)
	if err != nil {
		t.Fatal(err)
	}
	found, err := pgx.CollectRows(rs, pgx.RowTo[pgtype.UUID])
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != len(keys) {
		t.Errorf("parent check found %d keys, want %d", len(found), len(keys))
	}
}
