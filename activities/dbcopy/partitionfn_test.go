package dbcopy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
)

// TestPartitionsKeepComingAfterCutover: the target keeps a function that creates the coming
// months' partitions, the one the migration calls at cutover and on its timer, and the
// operator's scheduler after it is closed. Months later an application row dated beyond the
// last partition waits in the DEFAULT partition; the function, called as a cron job would (a
// plain session, default search_path), creates the months from the current one on and moves
// that row into its month. Partition names follow the engine's rule, long names included.
func TestPartitionsKeepComingAfterCutover(t *testing.T) {
	ctx := ctxT(t)
	accounts := &dbcopytest.Table{Name: "accounts", PK: true, Columns: []string{"id", "email"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(7), "a@x"}}}
	emails := &dbcopytest.Table{Name: "emails", PK: true, Columns: []string{"id", "account_id", "subject", "created_at"},
		Types: []string{"INTEGER", "INTEGER", "TEXT", "TEXT"},
		Rows:  [][]any{{int64(1), int64(7), "old", "2024-11-05 10:00:00"}}}
	target := newTarget(t)
	e := openEngineAt(t, []*dbcopytest.Table{accounts, emails}, target, "", `name: upkeep
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: accounts, source_table: accounts, target_table: accounts, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: email, type: text, unique: true, not_null: true}]}
  - name: emails
    source_table: emails
    target_table: emails
    key: {source: id}
    partition: {column: created_at, ahead: 1}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: account_id, references: accounts, not_null: true}
      - {source: subject, type: text}
      - {source: created_at, type: timestamptz, not_null: true, target_default: {function: now}}
`)
	copyAll(t, e)
	// The cutover, in January 2025.
	made, err := e.PartitionsAhead(ctx, "emails", time.Date(2025, 1, 15, 9, 0, 0, 0, time.UTC), 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"emails_default", "emails_2025_01", "emails_2025_02"}, made); d != "" {
		t.Errorf("partitions made at cutover (-want +got):\n%s", d)
	}
	// The application writes past them; the row waits in the DEFAULT partition.
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `INSERT INTO public.emails (account_id, subject, created_at)
		SELECT id, 'spring', '2025-05-10 08:00:00+00' FROM public.accounts`); err != nil {
		t.Fatalf("the application's insert: %v", err)
	}
	// The operator's monthly job, in April.
	rows, err := conn.Query(ctx, `SELECT * FROM cutover.cutover_partitions_ahead('public.emails', 2, '2025-04-20 00:00:00+00')`)
	if err != nil {
		t.Fatal(err)
	}
	made, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"emails_2025_04", "emails_2025_05", "emails_2025_06"}, made); d != "" {
		t.Errorf("partitions made by the scheduled call (-want +got):\n%s", d)
	}
	var where string
	if err := conn.QueryRow(ctx, `SELECT tableoid::regclass::text FROM public.emails WHERE subject = 'spring'`).Scan(&where); err != nil {
		t.Fatal(err)
	}
	if where != "emails_2025_05" {
		t.Errorf("the May row is in %s, want emails_2025_05", where)
	}
	// Called again: nothing more to do.
	var again int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM cutover.cutover_partitions_ahead('public.emails', 2, '2025-04-20 00:00:00+00')`).
		Scan(&again); err != nil {
		t.Errorf("err: want nil; a second call made %d partitions (%v), want 0", again, err)
	} else if again != 0 {
		t.Errorf("again: want 0; a second call made %d partitions (%v), want 0", again, err)
	}
	long := strings.Repeat("very_long_table_name_", 4) + "2025_05"
	var name string
	if err := conn.QueryRow(ctx, `SELECT cutover.cutover_ident63($1)`, long).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if want := ident63(long); name != want {
		t.Errorf("long partition name %q, want the engine's %q", name, want)
	}
}
