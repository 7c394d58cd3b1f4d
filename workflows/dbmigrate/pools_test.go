package dbmigrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestEndedMigrationsHoldNoTargetConnections runs six small migrations, each into its own
// target database, through one worker (three completed, one rolled back, one failed on its
// error limit, one refused at planning) and checks in pg_stat_activity that, once they ended,
// the worker holds no connection to any of their targets; and in their histories that every
// activity they scheduled had a bounded retry policy.
func TestEndedMigrationsHoldNoTargetConnections(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	dbURL := testenv.NewDatabase(t)
	queue := inProcessWorker(t, srv, dbURL)
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "legacy.db")
	tbl := &dbcopytest.Table{Name: "item", Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"}, PK: true}
	for i := range 50 {
		tbl.Rows = append(tbl.Rows, []any{int64(i + 1), fmt.Sprintf("item %d", i+1)})
	}
	if err := dbcopytest.WriteSQLite(ctx, src, []*dbcopytest.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	c := srv.Client(t)
	type started struct {
		target string
		in     dbmigrateapi.Input
		want   model.OrchestrationStatus
	}
	var runs []started
	for i := range 6 {
		target := testenv.NewDatabase(t)
		column, typ, want := "name", "text", model.OrchCompleted
		switch i {
		case 4:
			typ, want = "bigint", model.OrchFailed // every row quarantined: over the error limit
		case 5:
			column, want = "no_such_column", "" // refused by the plan before it runs
		}
		sp, err := spec.Parse(fmt.Appendf(nil, `name: pools-%d
sources: {legacy: {driver: sqlite, path: %q}}
target: {dsn: %q, create_tables: true}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id},
     columns: [{source: %s, target: name, type: %s}]}
`, i, src, target, column, typ))
		if err != nil {
			t.Fatal(err)
		}
		mtype := model.MigrationFull
		if i == 3 {
			mtype, want = model.MigrationIncremental, model.OrchPending // rolled back below
		}
		in := dbmigrateapi.Input{MigrationID: uuid.NewString(), MigrationType: mtype, CreatedBy: "test", Spec: sp,
			Config: dbmigrateapi.Config{SyncInterval: time.Hour, MaxErrors: 1}}
		startMigration(t, c, queue, in)
		runs = append(runs, started{target: target, in: in, want: want})
	}
	rolled := dbmigrateapi.WorkflowID(runs[3].in.MigrationID)
	testenv.WaitFor(t, "catching up", 2*time.Minute, func() bool { return query(t, c, rolled).Phase == dbmigrateapi.PhaseCatchingUp })
	if err := c.SignalWorkflow(ctx, rolled, "", dbmigrateapi.SignalRollback, dbmigrateapi.RollbackRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		var res dbmigrateapi.State
		err := c.GetWorkflow(ctx, dbmigrateapi.WorkflowID(r.in.MigrationID), "").Get(ctx, &res)
		if r.want == "" {
			if err == nil {
				t.Fatalf("migration %s: a spec naming a missing column was not refused", r.in.Spec.Name)
			}
			continue
		}
		if st := query(t, c, dbmigrateapi.WorkflowID(r.in.MigrationID)); st.Status != r.want {
			t.Fatalf("migration %s ended %s, want %s (%s)", r.in.Spec.Name, st.Status, r.want, st.Error)
		}
	}
	admin, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	held := func() map[string]int64 {
		out := map[string]int64{}
		for _, r := range runs {
			name := databaseName(t, r.target)
			if n := one(t, admin, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
				name); n > 0 {
				out[r.in.Spec.Name] = n
			}
		}
		return out
	}
	// A closed connection leaves pg_stat_activity when its backend exits: poll briefly.
	deadline := time.Now().Add(30 * time.Second)
	for len(held()) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if h := held(); len(h) > 0 {
		t.Fatalf("connections still held to the targets of ended migrations: %v", h)
	}
	// Every activity these runs scheduled had a bounded retry policy.
	for _, r := range runs[:4] {
		id := dbmigrateapi.WorkflowID(r.in.MigrationID)
		for _, wid := range []string{id, id + "/items"} {
			iter := c.GetWorkflowHistory(ctx, wid, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for iter.HasNext() {
				ev, err := iter.Next()
				if err != nil {
					t.Fatal(err)
				}
				if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetRetryPolicy().GetMaximumAttempts() <= 0 {
					t.Errorf("%s: activity %s scheduled with retry policy %v", wid, a.GetActivityType().GetName(), a.GetRetryPolicy())
				}
			}
		}
	}
}

// databaseName is the database a postgres:// URL names.
func databaseName(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ConnConfig.Database
}
