package dbcopy

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// setLockTimeout shortens the concurrent writers' lock timeout for a test.
func setLockTimeout(d time.Duration) (restore func()) {
	old := concurrentLockTimeout
	concurrentLockTimeout = d
	return func() { concurrentLockTimeout = old }
}

// peopleDB writes a SQLite table people(id, email) of n rows; dup maps a row id to the id whose
// email it repeats.
func peopleDB(t *testing.T, n int, dup map[int]int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "people.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		email := fmt.Sprintf("p%d@example.com", i)
		if d, ok := dup[i]; ok {
			email = fmt.Sprintf("p%d@example.com", d)
		}
		if _, err := tx.Exec(`INSERT INTO people VALUES (?, ?)`, i, email); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openPeople(t *testing.T, path string, batch, writers int) *Engine {
	t.Helper()
	return openSpecWriters(t, newTarget(t), uniquePeopleSpec(path, batch), writers)
}

// uniquePeopleSpec loads people (id, email unique) from the SQLite file at path.
func uniquePeopleSpec(path string, batch int) string {
	return fmt.Sprintf(`name: people
batch_size: %d
sources:
  legacy: {driver: sqlite, path: %q}
target:
  create_tables: true
entities:
  - name: people
    source_table: people
    target_table: people
    key: {source: id}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: email, type: text, unique: true}
`, batch, path)
}

// TestConcurrentWritersShareUniqueValues: neighbouring batches, written at the same time,
// carry the same value of a unique column. Whichever writer inserts it first, the run ends as
// a sequential one would: the earlier batch's row loaded, the later one quarantined as a
// unique violation, every other row loaded, commits in order.
func TestConcurrentWritersShareUniqueValues(t *testing.T) {
	defer setLockTimeout(time.Second)()
	const n, batch = 4000, 400
	dup := map[int]int{}
	for k := 1; k < n/batch; k++ {
		dup[k*batch+1] = k * batch // first row of batch k repeats the last row of batch k-1
	}
	e := openPeople(t, peopleDB(t, n, dup), batch, 4)
	res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
	if err != nil || !res.Done {
		t.Fatalf("copy: %+v, %v", res, err)
	}
	if res.Loaded != int64(n-len(dup)) {
		t.Fatalf("res.Loaded: want int64(n-len(dup)); loaded %d failed %d, want %d and %d",
			res.Loaded, res.Failed, n-len(dup), len(dup))
	}
	if res.Failed != int64(len(dup)) {
		t.Fatalf("res.Failed: want int64(len(dup)); loaded %d failed %d, want %d and %d",
			res.Loaded, res.Failed, n-len(dup), len(dup))
	}
	for id, kept := range dup {
		if got := count(t, e, `SELECT count(*) FROM public.people WHERE legacy_id = $1`, kept); got != 1 {
			t.Errorf("row %d (the earlier holder of its email) loaded %d times", kept, got)
		}
		if got := count(t, e, `SELECT count(*) FROM public.people WHERE legacy_id = $1`, id); got != 0 {
			t.Errorf("row %d (the later duplicate) loaded", id)
		}
	}
	if codes := fmtCodes(errorCodes(t, e, "people")); codes != fmt.Sprintf("23505=%d", len(dup)) {
		t.Fatalf("errors %s", codes)
	}
	if got := count(t, e, `SELECT count(*) FROM migration_mappings`); got != n-len(dup) {
		t.Fatalf("%d mappings", got)
	}
	if got := count(t, e, `SELECT count(*) FROM migration_checkpoints WHERE batch_number <> (
		SELECT count(*) FROM migration_checkpoints c2 WHERE c2.batch_number < migration_checkpoints.batch_number)`); got != 0 {
		t.Fatalf("%d checkpoints out of sequence", got)
	}
}

// TestLockTimeoutFallsBackToOneWriter: a batch that cannot get a row lock in time (here another
// session holds the unique value it inserts) fails the concurrent run; CopyBatches continues
// from the last committed batch with one writer and finishes without an error.
func TestLockTimeoutFallsBackToOneWriter(t *testing.T) {
	defer setLockTimeout(time.Second)()
	const n, batch = 2000, 200
	e := openPeople(t, peopleDB(t, n, nil), batch, 3)
	ctx := ctxT(t)
	blocker, err := e.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(context.Background())
	if _, err := blocker.Exec(ctx, `INSERT INTO public.people (id, legacy_id, email) VALUES ($1, -1, 'p1000@example.com')`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res RunResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
		done <- result{res, err}
	}()
	p, err := e.plan(ctx, "people")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !p.sequential.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no batch hit the lock timeout")
		}
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("r.err: want nil; copy: %+v, %v", r.res, r.err)
	}
	if !r.res.Done {
		t.Fatalf("r.res.Done is false; copy: %+v, %v", r.res, r.err)
	}
	if r.res.Loaded != n {
		t.Fatalf("r.res.Loaded = %v, want %v (n); copy: %+v, %v", r.res.Loaded, n, r.res, r.err)
	}
	if r.res.Failed != 0 {
		t.Fatalf("r.res.Failed = %v, want 0; copy: %+v, %v", r.res.Failed, r.res, r.err)
	}
	if got := count(t, e, `SELECT count(*) FROM public.people`); got != n {
		t.Fatalf("%d rows", got)
	}
}

// TestPipelinedFailuresKeepTheirSourceRows: a pipelined batch lets go of its source rows once
// encoded; rows PostgreSQL then rejects (a unique value taken) are recorded with their own
// source row, found again by key; the rows of a repeated legacy key, found before encoding,
// are recorded together with theirs.
func TestPipelinedFailuresKeepTheirSourceRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "people.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// No primary key in the legacy table: id 7 is there twice, with different emails.
	if _, err := db.Exec(`CREATE TABLE people (id INTEGER, email TEXT);
		INSERT INTO people VALUES (1, 'a@x'), (7, 'first@x'), (7, 'second@x'), (8, 'a@x'), (9, 'c@x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e := openPeople(t, path, 100, 2)
	res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; copy: %+v, %v", res, err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false; copy: %+v, %v", res, err)
	}
	if res.Loaded != 2 {
		t.Fatalf("res.Loaded = %v, want 2; copy: %+v, %v", res.Loaded, res, err)
	}
	if res.Failed != 3 {
		t.Fatalf("res.Failed = %v, want 3; copy: %+v, %v", res.Failed, res, err)
	}
	rows, err := e.Pool().Query(ctxT(t), `SELECT source_record_id, coalesce(source_data->>'email',
		(SELECT string_agg(r->>'email', ',') FROM jsonb_array_elements(source_data->'rows') r)), context ? 'source_row'
		FROM migration_errors ORDER BY source_record_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id string
		var email *string
		var lost bool
		if err := rows.Scan(&id, &email, &lost); err != nil {
			t.Fatal(err)
		}
		if email == nil || lost {
			t.Fatalf("error of row %s has no source row (lost %v)", id, lost)
		}
		got = append(got, id+"="+*email)
	}
	if fmt.Sprint(got) != "[7=first@x,second@x 8=a@x]" {
		t.Fatalf("errors carry %v, want [7=first@x,second@x 8=a@x]", got)
	}
	if n := count(t, e, `SELECT count(*) FROM public.people WHERE email IN ('first@x', 'second@x')`); n != 0 {
		t.Fatalf("%d rows of the repeated key 7 loaded", n)
	}
}

// TestCountedChangesKeepWritersConcurrent: every batch changes values (spaces dropped around
// every id cast from text) and adds to the same counts; the writers still run side by side
// (never waiting on each other's count rows until a lock timeout makes the run sequential),
// and the counts add up to every row.
func TestCountedChangesKeepWritersConcurrent(t *testing.T) {
	defer setLockTimeout(2 * time.Second)()
	tbl := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "qty"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= 400; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, fmt.Sprintf(" %d ", i)})
	}
	path := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctxT(t), path, []*dbcopytest.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse(fmt.Appendf(nil, `name: counted
batch_size: 10
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id}, columns: [{source: qty, type: bigint}]}
`, path))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctxT(t), sp, Options{MigrationID: uuid.New(), TargetURL: newTarget(t), Writers: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Prepare(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "items"}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; copy: %+v, %v", res, err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false; copy: %+v, %v", res, err)
	}
	if res.Loaded != 400 {
		t.Fatalf("res.Loaded = %v, want 400; copy: %+v, %v", res.Loaded, res, err)
	}
	p, _ := e.plan(ctxT(t), "items")
	if p.sequential.Load() {
		t.Error("writers waited on each other until a lock timeout: the run went on one batch at a time")
	}
	cc, err := e.ChangeCounts(ctxT(t), "items")
	if err != nil {
		t.Errorf("err: want nil; counts %+v (%v), want qty trimmed ×400", cc, err)
	} else if len(cc) != 1 {
		t.Errorf("len(cc) = %v, want 1; counts %+v (%v), want qty trimmed ×400", len(cc), cc, err)
	} else if cc[0].Count != 400 {
		t.Errorf("cc[0].Count = %v, want 400; counts %+v (%v), want qty trimmed ×400", cc[0].Count, cc, err)
	} else if cc[0].Change != "trimmed" {
		t.Errorf("cc[0].Change = %v, want \"trimmed\"; counts %+v (%v), want qty trimmed ×400",
			cc[0].Change, cc, err)
	}
}
