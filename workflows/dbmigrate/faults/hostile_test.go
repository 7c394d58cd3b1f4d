package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// injection is the name of the table the tests would lose to an injection.
const injection = `x"; DROP TABLE y; --`

// hostileNames are table and column names that would break out of a quoted identifier, end
// the statement, comment out the rest or truncate it.
var hostileNames = []string{injection, `y"; DELETE FROM y; --`, "y\x00; DROP TABLE y", `y" --`, `"`, `y;`, "y\n; DROP TABLE y"}

// TestFaultHostileIdentifiersNeverInject puts hostile names in a migration spec and proves
// table y is never touched:
//
//   - a spec naming them is refused with a clear error by the parser, by the engine (a spec
//     built in code, as an SDK client can send one) and by DBMigrationWorkflow itself, before
//     any activity runs;
//   - below that gate the source readers quote every name: a table literally named
//     `x"; DROP TABLE y; --` is read as one identifier, and every other hostile name is an
//     error (unknown table or column), on PostgreSQL and on SQLite;
//   - hostile values where the engine writes SQL literals (validation rules, partial-index
//     predicates, constants) run through a whole migration verbatim.
func TestFaultHostileIdentifiersNeverInject(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL and the Temporal dev server")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tried := 0

	// A target (and PostgreSQL source) database holding y and a table named like an injection.
	dbURL := testenv.NewDatabase(t)
	pool := newPool(t, dbURL)
	if _, err := pool.Exec(ctx, `CREATE TABLE y (id bigint PRIMARY KEY, v text);
		INSERT INTO y SELECT i, 'keep ' || i FROM generate_series(1, 3) i;
		CREATE TABLE "x""; DROP TABLE y; --" (id bigint PRIMARY KEY, "name"")--" text);
		INSERT INTO "x""; DROP TABLE y; --" VALUES (1, 'a'), (2, 'b')`); err != nil {
		t.Fatal(err)
	}
	yIntact := func(where string) {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM y WHERE v LIKE 'keep %'`).Scan(&n); err != nil {
			t.Fatalf("err: want nil; after %s: table y has %d of its 3 rows (%v)", where, n, err)
		} else if n != 3 {
			t.Fatalf("n: want 3; after %s: table y has %d of its 3 rows (%v)", where, n, err)
		}
	}

	t.Run("parser", func(t *testing.T) {
		for _, h := range hostileNames {
			for _, field := range []string{"source_table", "target_table"} {
				tried++
				doc := strings.Replace(fmt.Sprintf(specYAML, 100, `{driver: sqlite, path: /nonexistent.db}`),
					field+": events", fmt.Sprintf("%s: %q", field, h), 1)
				_, err := spec.Parse([]byte(doc))
				var se *spec.Error
				if !errors.As(err, &se) || !strings.Contains(err.Error(), field) {
					t.Errorf("%s %q: err = %v, want a spec error naming %s", field, h, err, field)
				}
			}
		}
	})

	hostileSpec := func(table string) *spec.Spec {
		sp, err := spec.Parse(fmt.Appendf(nil, specYAML, 100, fmt.Sprintf("{driver: postgres, dsn: %q}", dbURL)))
		if err != nil {
			t.Fatal(err)
		}
		sp.Entities[1].SourceTable = table // as a client building the spec in code could
		return sp
	}

	t.Run("engine", func(t *testing.T) {
		for _, h := range hostileNames {
			tried++
			e, err := dbcopy.Open(ctx, hostileSpec(h), dbcopy.Options{MigrationID: uuid.New(), TargetURL: dbURL})
			if err == nil {
				e.Close()
				t.Fatalf("engine opened a spec with source_table %q", h)
			}
			if !errors.Is(err, dbcopy.ErrSpec) {
				t.Errorf("source_table %q: %v, want an ErrSpec", h, err)
			}
		}
		yIntact("the engine refused the specs")
	})

	t.Run("workflow", func(t *testing.T) {
		tried++
		srv := testenv.SharedTemporal(t)
		queue := fmt.Sprintf("dbfault-hostile-%d", time.Now().UnixNano())
		startWorker(t, srv.Address(), dbURL, queue)
		c := srv.Client(t)
		in := dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationFull, CreatedBy: "fault-test",
			Spec: hostileSpec(injection)}
		err := startMigration(t, c, queue, in).Get(ctx, nil)
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || ae.Type() != "dbmigrate.invalid_spec" || !strings.Contains(err.Error(), "source_table") {
			t.Fatalf("workflow ended with %v, want a dbmigrate.invalid_spec error naming source_table", err)
		}
		it := c.GetWorkflowHistory(ctx, dbmigrateapi.WorkflowID(in.MigrationID), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetEventType() == enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
				t.Fatalf("an activity (%s) ran for a refused spec", ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
			}
		}
		yIntact("the workflow refused the spec")
	})

	// Below the gate: the readers, on a read-write PostgreSQL connection and on SQLite.
	sqlitePath := filepath.Join(t.TempDir(), "hostile.db")
	sdb, err := sql.Open("sqlite", "file:"+sqlitePath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`CREATE TABLE y (id INTEGER PRIMARY KEY, v TEXT);
		INSERT INTO y VALUES (1, 'keep 1'), (2, 'keep 2'), (3, 'keep 3');
		CREATE TABLE "x""; DROP TABLE y; --" (id INTEGER PRIMARY KEY, "name"")--" TEXT);
		INSERT INTO "x""; DROP TABLE y; --" VALUES (1, 'a'), (2, 'b')`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	pgSrc, err := source.OpenPostgres(ctx, dbURL, "public")
	if err != nil {
		t.Fatal(err)
	}
	defer pgSrc.Close()
	liteSrc, err := source.OpenSQLite(ctx, sqlitePath)
	if err != nil {
		t.Fatal(err)
	}
	defer liteSrc.Close()
	for _, src := range []source.Source{pgSrc, liteSrc} {
		t.Run("reader "+src.Driver(), func(t *testing.T) {
			// The table named like an injection is one identifier: its rows come back.
			tried++
			if n, err := src.Count(ctx, injection); err != nil {
				t.Fatalf("err: want nil; count of the table named %q: %d, %v", injection, n, err)
			} else if n != 2 {
				t.Fatalf("n: want 2; count of the table named %q: %d, %v", injection, n, err)
			}
			rows, err := src.Read(ctx, source.Query{Table: injection, Columns: []string{"id", `name")--`}, Key: "id", Limit: 10})
			if err != nil {
				t.Fatalf("err: want nil; read of the table named %q: %v, %v", injection, rows, err)
			}
			if len(rows) != 2 {
				t.Fatalf("len(rows) = %v, want 2; read of the table named %q: %v, %v", len(rows), injection, rows, err)
			}
			if fmt.Sprint(rows[1][1]) != "b" {
				t.Fatalf("fmt.Sprint(rows[1][1]) = %v, want \"b\"; read of the table named %q: %v, %v",
					fmt.Sprint(rows[1][1]), injection, rows, err)
			}
			for _, h := range hostileNames[1:] {
				tried += 4
				if _, err := src.Count(ctx, h); err == nil {
					t.Errorf("count of table %q succeeded", h)
				}
				if _, err := src.Max(ctx, "y", h); err == nil {
					t.Errorf("max of column %q succeeded", h)
				}
				if _, err := src.Read(ctx, source.Query{Table: h, Columns: []string{"id"}, Key: "id", Limit: 10}); err == nil {
					t.Errorf("read of table %q succeeded", h)
				}
				if _, err := src.Read(ctx, source.Query{Table: "y", Columns: []string{"id", h}, Key: h, After: int64(0), Limit: 10}); err == nil {
					t.Errorf("read of column %q succeeded", h)
				}
			}
			rows, err = src.Read(ctx, source.Query{Table: "y", Columns: []string{"id", "v"}, Key: "id", Limit: 10})
			if err != nil {
				t.Fatalf("err: want nil; table y after the hostile reads: %v, %v", rows, err)
			}
			if len(rows) != 3 {
				t.Fatalf("len(rows) = %v, want 3; table y after the hostile reads: %v, %v", len(rows), rows, err)
			}
		})
	}
	yIntact("the hostile reads")

	t.Run("literals", func(t *testing.T) {
		tried++
		hostileLiterals(t, ctx, dbURL, pool)
		yIntact("a migration with hostile literals")
	})
	t.Logf("hostile inputs tried: %d (names and literals); table y intact; panics 0", tried)
}

// hostileLiterals runs a whole migration whose validation rules, partial-index predicate and
// constant carry quotes, backslashes, semicolons and comments: the engine renders them as
// literals, so the migration completes and stores them verbatim.
func hostileLiterals(t *testing.T, ctx context.Context, dbURL string, pool *pgxpool.Pool) {
	t.Helper()
	const constant = `x'); DROP TABLE y; --`
	src := sqliteWorkload(t, t.TempDir(), 50, 1, 100)
	doc := fmt.Sprintf(`name: literals
sources:
  legacy: %s
target:
  schema: lit
  create_tables: true
ignore:
  - {table: events}
entities:
  - name: owners
    source_table: owners
    target_table: owners
    key: {source: id}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: name, type: text}
      - {target: note, constant: %q, type: text}
    validation:
      - {column: name, op: ne, value: "'); DROP TABLE y; --"}
      - {column: note, op: in, values: [%q, "\\'); DROP TABLE y; --"]}
      - {column: name, op: matches, value: "^owner [0-9]+$"}
    indexes:
      - {columns: [name], where: {column: note, op: ne, value: "\\'); DROP TABLE y; --"}}
      - {full_text: {columns: [name, note]}}
`, src.source, constant, constant)
	sp, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA lit`); err != nil {
		t.Fatal(err)
	}
	srv := testenv.SharedTemporal(t)
	queue := fmt.Sprintf("dbfault-literals-%d", time.Now().UnixNano())
	startWorker(t, srv.Address(), dbURL, queue)
	in := dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: model.MigrationFull, CreatedBy: "fault-test", Spec: sp}
	var res dbmigrateapi.State
	if err := startMigration(t, srv.Client(t), queue, in).Get(ctx, &res); err != nil {
		t.Fatalf("err: want nil; migration with hostile literals: %s, %v", res.Status, err)
	} else if res.Status != model.OrchCompleted {
		t.Fatalf("res.Status: want model.OrchCompleted; migration with hostile literals: %s, %v", res.Status, err)
	}
	for _, v := range res.Validation {
		if !v.Passed {
			t.Errorf("validation %s: %+v", v.Entity, v.Checks)
		}
	}
	var n, indexes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM lit.owners WHERE note = $1`, constant).Scan(&n); err != nil {
		t.Fatalf("err: want nil; %d of 50 rows carry the constant verbatim (%v)", n, err)
	} else if n != 50 {
		t.Fatalf("n: want 50; %d of 50 rows carry the constant verbatim (%v)", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'lit' AND tablename = 'owners'`).Scan(&indexes); err != nil {
		t.Fatalf("err: want nil; %d indexes on lit.owners, want the key, the partial and the full-text one (%v)",
			indexes, err)
	} else if indexes != 3 {
		t.Fatalf("indexes: want 3; %d indexes on lit.owners, want the key, the partial and the full-text one (%v)",
			indexes, err)
	}
}
