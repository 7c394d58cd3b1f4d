package dbcopy

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// openLetters prepares a monthly partitioned target table whose message_id is unique across
// its partitions (unique_across_partitions), on an empty SQLite source.
func openLetters(t *testing.T) *Engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "letters.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE letters (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, seen INTEGER,
		created_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return openSpec(t, newTarget(t), fmt.Sprintf(`name: letters
sources:
  legacy: {driver: sqlite, path: %q}
target:
  create_tables: true
entities:
  - name: letters
    source_table: letters
    target_table: letters
    key: {source: id}
    partition: {column: created_at, interval: month}
    unique_across_partitions: [message_id]
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: message_id, type: text, not_null: true}
      - {source: seen, type: boolean}
      - {source: created_at, type: timestamptz, not_null: true}
`, path))
}

// TestUniqueAcrossPartitionsFollowsUpdates: the companion table that keeps message_id unique
// over every partition holds exactly one claim per row, whatever updates do: an update of other
// columns (a drain's flag change) leaves the claim alone without calling the trigger function
// at all, an update of the value moves the claim (the old value free again, the new one
// refused to another row), an update of the key moves it to the new key, a move to another
// partition keeps it, an upsert of the same row passes, and a delete frees the value.
func TestUniqueAcrossPartitionsFollowsUpdates(t *testing.T) {
	e := openLetters(t)
	ctx := ctxT(t)
	for _, m := range [][3]string{{"2024_01", "2024-01-01", "2024-02-01"}, {"2024_02", "2024-02-01", "2024-03-01"}} {
		if _, err := e.Pool().Exec(ctx, fmt.Sprintf(`CREATE TABLE public.letters_%s PARTITION OF public.letters
			FOR VALUES FROM ('%s') TO ('%s')`, m[0], m[1], m[2])); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	exec := func(q string, args ...any) error {
		_, err := e.Pool().Exec(ctx, q, args...)
		return err
	}
	mustExec := func(q string, args ...any) {
		t.Helper()
		if err := exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	refused := func(what, q string, args ...any) {
		t.Helper()
		err := exec(q, args...)
		if pgCode(err) != "23505" {
			t.Fatalf("%s: error %v, want unique_violation (23505)", what, err)
		}
	}
	claims := func() string {
		t.Helper()
		rows, err := e.Pool().Query(ctx, `SELECT u.value, coalesce(l.legacy_id::text, 'no row')
			FROM public.letters_message_id_uniq u LEFT JOIN public.letters l ON l.id = u.row_key ORDER BY u.value`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var v, k string
			err := r.Scan(&v, &k)
			return v + "→" + k, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(got)
	}
	insert := `INSERT INTO public.letters (id, legacy_id, message_id, seen, created_at) VALUES ($1, $2, $3, false, $4)`
	mustExec(insert, a, 1, "<m1>", "2024-01-10")
	mustExec(insert, b, 2, "<m2>", "2024-02-10")
	refused("another month's row with a taken value", insert, c, 3, "<m1>", "2024-02-11")

	// A flag update: the claim stays, and the trigger function is not called.
	tx, err := e.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	var calls int64
	if _, err := tx.Exec(ctx, `SET LOCAL track_functions = 'pl'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE public.letters SET seen = true, message_id = message_id`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(pg_stat_get_xact_function_calls('public.letters_message_id_uniq_fn'::regproc), 0)`).
		Scan(&calls); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Errorf("calls = %d, want 0: an update leaving message_id and the key as they were called the trigger function", calls)
	}
	if got, want := claims(), "[<m1>→1 <m2>→2]"; got != want {
		t.Fatalf("claims after a flag update = %s, want %s", got, want)
	}

	// The value changes: the old one is free, the new one taken.
	mustExec(`UPDATE public.letters SET message_id = '<m1b>' WHERE legacy_id = 1`)
	if got, want := claims(), "[<m1b>→1 <m2>→2]"; got != want {
		t.Fatalf("claims after a value update = %s, want %s", got, want)
	}
	mustExec(insert, c, 3, "<m1>", "2024-02-11")
	refused("an update to a value another row holds", `UPDATE public.letters SET message_id = '<m1b>' WHERE legacy_id = 2`)

	// The key changes (the value does not): the claim follows the row.
	mustExec(`UPDATE public.letters SET id = $1 WHERE legacy_id = 2`, uuid.New())
	if got, want := claims(), "[<m1>→3 <m1b>→1 <m2>→2]"; got != want {
		t.Fatalf("claims after a key update = %s, want %s", got, want)
	}

	// The row moves to another month's partition (a delete and an insert there): its claim stays.
	mustExec(`UPDATE public.letters SET created_at = '2024-02-15' WHERE legacy_id = 1`)
	if got, want := claims(), "[<m1>→3 <m1b>→1 <m2>→2]"; got != want {
		t.Fatalf("claims after a move to another partition = %s, want %s", got, want)
	}
	mustExec(`UPDATE public.letters SET created_at = '2024-01-10' WHERE legacy_id = 1`)

	// An upsert of the same row (as drains write) passes; one carrying another row's value does not.
	upsert := insert + ` ON CONFLICT (id, created_at) DO UPDATE SET message_id = EXCLUDED.message_id, seen = EXCLUDED.seen`
	mustExec(upsert, a, 1, "<m1b>", "2024-01-10")
	refused("an upsert to a value another row holds", upsert, a, 1, "<m2>", "2024-01-10")

	mustExec(`DELETE FROM public.letters WHERE legacy_id = 3`)
	if got, want := claims(), "[<m1b>→1 <m2>→2]"; got != want {
		t.Fatalf("claims after a delete = %s, want %s", got, want)
	}
	mustExec(insert, uuid.New(), 4, "<m1>", "2024-01-12")
}
