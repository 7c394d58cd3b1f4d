package dbcopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

func validateAll(t *testing.T, e *Engine) map[string][]store.ValidationResult {
	t.Helper()
	out := map[string][]store.ValidationResult{}
	for _, name := range dbcopytest.Entities {
		vs, err := e.Validate(ctxT(t), name)
		if err != nil {
			t.Fatalf("validate %s: %v", name, err)
		}
		out[name] = vs
	}
	return out
}

func TestValidationPassesThenCatchesTampering(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 300)
	copyAll(t, e)
	for name, vs := range validateAll(t, e) {
		if !Passed(vs, false) {
			for _, v := range vs {
				t.Errorf("%s %s: %s issues=%d %s", name, v.ValidationType, v.Status, v.IssuesFound, v.IssueDetails)
			}
		}
		if len(vs) < 2 {
			t.Errorf("%s: only %d checks ran", name, len(vs))
		}
	}
	// Change one row's content and delete another: the content check finds exactly them.
	ctx := ctxT(t)
	if _, err := e.Pool().Exec(ctx, `UPDATE public.offices SET city = 'Nowhere' WHERE legacy_id = 5`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pool().Exec(ctx, `DELETE FROM public.comments WHERE id = (SELECT destination_id FROM migration_mappings
		WHERE source_table = 'dispatch_comment' AND source_id = '10')`); err != nil {
		t.Fatal(err)
	}
	for entity, want := range map[string]string{"offices": "key 5: city not what the source says", "comments": "key 10: missing in target"} {
		vs, err := e.Validate(ctx, entity)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, v := range vs {
			if v.Status == model.ValidationFailed && strings.Contains(string(v.IssueDetails), want) && v.IssuesFound == 1 {
				found = true
			}
		}
		if !found || Passed(vs, true) {
			t.Errorf("%s: tampering not reported as %q: %+v", entity, want, vs)
		}
	}
}

func TestSchemaOpsApproveExecuteRollback(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 500)
	copyAll(t, e)
	ctx := ctxT(t)
	def := "false"
	e.spec.SchemaOps = []spec.SchemaOp{
		{Name: "drop-body", Type: "drop_column", Table: "comments", Column: "body"},
		{Name: "add-flag", Type: "add_column", Table: "comments", Column: "flagged", ColType: "boolean", Default: &def},
		{Name: "amount-numeric", Type: "modify_column", Table: "orders", Column: "amount", ColType: "numeric"},
		{Name: "backup-projects", Type: "create_backup", Table: "projects"},
	}
	digest := func(q string) string {
		var s string
		if err := e.Pool().QueryRow(ctx, q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return s
	}
	bodies := `SELECT md5(string_agg(id::text || ':' || body, ',' ORDER BY id)) FROM public.comments`
	amounts := `SELECT md5(string_agg(id::text || ':' || amount::float8::text, ',' ORDER BY id)) FROM public.orders`
	wantBodies, wantAmounts := digest(bodies), digest(amounts)

	op, err := e.PlanSchemaOp(ctx, "drop-body")
	if err != nil {
		t.Fatal(err)
	}
	if op.RiskLevel != model.RiskCritical {
		t.Fatalf("op.RiskLevel = %v, want model.RiskCritical; planned drop = %+v", op.RiskLevel, op)
	}
	if op.BackupTableName == nil {
		t.Fatalf("op.BackupTableName is nil; planned drop = %+v", op)
	}
	if !strings.Contains(op.RollbackSQL, "ADD COLUMN") {
		t.Fatalf("strings.Contains(op.RollbackSQL, \"ADD COLUMN\") is false; planned drop = %+v", op)
	}
	if _, err := e.ExecuteSchemaOp(ctx, "drop-body", ""); !errors.Is(err, ErrApprovalRequired) {
		t.Fatalf("unapproved critical op: %v", err)
	}
	op, err = e.ExecuteSchemaOp(ctx, "drop-body", "ops-lead")
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != model.OpCompleted {
		t.Fatalf("op.Status = %v, want model.OpCompleted; executed drop = %+v %s",
			op.Status, op, op.ValidationResults)
	}
	if op.ApprovedBy == nil {
		t.Fatalf("op.ApprovedBy is nil; executed drop = %+v %s", op, op.ValidationResults)
	}
	if !strings.Contains(string(op.ValidationResults), `"passed": true`) {
		t.Fatalf("strings.Contains(string(op.ValidationResults), `\"passed\": true`) is false; executed drop = %+v %s",
			op, op.ValidationResults)
	}
	if n := count(t, e, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'comments' AND column_name = 'body'`); n != 0 {
		t.Fatal("body still there")
	}
	for _, name := range []string{"add-flag", "amount-numeric", "backup-projects"} {
		if op, err := e.ExecuteSchemaOp(ctx, name, ""); err != nil {
			t.Fatalf("err: want nil; %s: %+v %v", name, op, err)
		} else if op.Status != model.OpCompleted {
			t.Fatalf("op.Status = %v, want model.OpCompleted; %s: %+v %v", op.Status, name, op, err)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM public.comments WHERE flagged = false`); n == 0 {
		t.Fatal("added column lacks its default")
	}
	if _, err := e.Pool().Exec(ctx, `DELETE FROM public.projects`); err != nil {
		t.Fatal(err)
	}
	// Roll everything back in reverse order: data comes back from the backups.
	for _, name := range []string{"backup-projects", "amount-numeric", "add-flag", "drop-body"} {
		if op, err := e.RollbackSchemaOp(ctx, name); err != nil {
			t.Fatalf("err: want nil; rollback %s: %+v %v", name, op, err)
		} else if op.Status != model.OpRolledBack {
			t.Fatalf("op.Status = %v, want model.OpRolledBack; rollback %s: %+v %v", op.Status, name, op, err)
		}
	}
	if got := digest(bodies); got != wantBodies {
		t.Fatal("dropped column not restored with its data")
	}
	if got := digest(amounts); got != wantAmounts {
		t.Fatal("modified column not restored")
	}
	if typ := digest(`SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'amount'`); typ != "double precision" {
		t.Fatalf("amount type after rollback = %s", typ)
	}
	if n := count(t, e, `SELECT count(*) FROM public.projects`); n == 0 {
		t.Fatal("backup not restored")
	}
	ops, err := e.Ledger().ListSchemaOps(ctx, e.MigrationID())
	if err != nil {
		t.Fatalf("err: want nil; recorded ops: %d %v", len(ops), err)
	}
	if len(ops) != 4 {
		t.Fatalf("len(ops): want 4; recorded ops: %d %v", len(ops), err)
	}
}

func TestRollbackEmptiesTargetAndRerunMatches(t *testing.T) {
	e, clinic, _ := openClinic(t, "sqlite", 1, 400)
	copyAll(t, e)
	order, _ := e.Spec().Order()
	ctx := ctxT(t)
	for i := len(order) - 1; i >= 0; i-- {
		if _, err := e.RollbackEntity(ctx, order[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range order {
		ent, _ := e.Spec().Entity(name)
		if n := count(t, e, "SELECT count(*) FROM public."+spec.QuoteIdent(ent.TargetTable)); n != 0 {
			t.Errorf("%s: %d rows left after rollback", name, n)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM migration_mappings`); n != 0 {
		t.Fatalf("%d mappings left", n)
	}
	// The same migration runs again from scratch to the same result.
	copyAll(t, e)
	assertClinic(t, e, clinic)
}

func TestRetryFailedAfterSpecFix(t *testing.T) {
	e, clinic, _ := openClinic(t, "sqlite", 1, 500)
	copyAll(t, e)
	ctx := ctxT(t)
	// The fix: treat the legacy 'maybe' as unknown, i.e. the default.
	ent, _ := e.spec.Entity("offices")
	for i, c := range ent.Columns {
		if c.Target == "active" {
			ent.Columns[i] = spec.Column{Target: "active", Expr: "nullif(active, 'maybe')", Type: "boolean", Default: c.Default}
		}
	}
	e.mu.Lock()
	delete(e.plans, "offices")
	e.mu.Unlock()
	res, err := e.RetryFailed(ctx, "offices")
	if err != nil {
		t.Fatalf("err: want nil; retry = %+v, %v", res, err)
	}
	if res.Retried != 1 {
		t.Fatalf("res.Retried = %v, want 1; retry = %+v, %v", res.Retried, res, err)
	}
	if res.Loaded != 1 {
		t.Fatalf("res.Loaded = %v, want 1; retry = %+v, %v", res.Loaded, res, err)
	}
	if res.Failed != 0 {
		t.Fatalf("res.Failed = %v, want 0; retry = %+v, %v", res.Failed, res, err)
	}
	x := clinic.Expects["offices"]
	if n := count(t, e, `SELECT count(*) FROM public.offices`); n != x.Source {
		t.Fatalf("%d offices after retry, want %d", n, x.Source)
	}
	if n := count(t, e, `SELECT records_processed FROM entity_migration_status WHERE entity_name = 'offices'`); n != x.Source {
		t.Fatalf("records_processed %d", n)
	}
	if n := count(t, e, `SELECT records_failed FROM entity_migration_status WHERE entity_name = 'offices'`); n != 0 {
		t.Fatalf("records_failed %d", n)
	}
	vs, err := e.Validate(ctx, "offices")
	if err != nil || !Passed(vs, false) {
		t.Fatalf("validation after retry: %+v %v", vs, err)
	}
}

func TestIncrementalSyncPicksUpChangesAndInserts(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	clinic := dbcopytest.NewClinic(1, false)
	path := filepath.Join(dir, "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, path, clinic.Tables); err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", path, 300)))
	if err != nil {
		t.Fatal(err)
	}
	e, _, _ := openWith(t, sp)
	full, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "profiles"}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; full load = %+v, %v", full, err)
	}
	if !full.Done {
		t.Fatalf("full.Done is false; full load = %+v, %v", full, err)
	}
	if full.MarkStart == "" {
		t.Fatalf("full.MarkStart = %v, want != \"\"; full load = %+v, %v", full.MarkStart, full, err)
	}
	// The legacy application keeps writing: one update, two inserts.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nProf := clinic.Expects["profiles"].Source
	later := "2031-01-01 00:00:00"
	if _, err := db.ExecContext(ctx, `UPDATE dispatch_user SET first_name = 'Changed', updated_at = ? WHERE id = 20`, later); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO dispatch_user VALUES (?, ?, 'New', 'User', 'f', '{}', 0, '2030-01-01', ?)`,
			nProf+i, fmt.Sprintf("new%d@clinic.example", i), later); err != nil {
			t.Fatal(err)
		}
	}
	sync, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "profiles", Sync: true, Mark: full.MarkStart, BatchNumber: full.Next.BatchNumber, After: ""}, 0, nil)
	if err != nil || !sync.Done {
		t.Fatalf("sync = %+v, %v", sync, err)
	}
	if sync.Inserted != 2 {
		t.Fatalf("sync.Inserted: want 2; sync inserted %d loaded %d, want 2 new and the update",
			sync.Inserted, sync.Loaded)
	}
	if sync.Loaded < 3 {
		t.Fatalf("sync.Loaded: want >= 3; sync inserted %d loaded %d, want 2 new and the update",
			sync.Inserted, sync.Loaded)
	}
	var name string
	if err := e.Pool().QueryRow(ctx, `SELECT full_name FROM public.profiles WHERE legacy_id = 20`).Scan(&name); err != nil || !strings.HasPrefix(name, "Changed ") {
		t.Fatalf("updated row = %q, %v", name, err)
	}
	// A second pass from where the first ended finds nothing new.
	again, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "profiles", Sync: true, Mark: sync.Next.Mark, After: sync.Next.After, BatchNumber: sync.Next.BatchNumber}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; idle pass = %+v, %v", again, err)
	}
	if again.Inserted != 0 {
		t.Fatalf("again.Inserted = %v, want 0; idle pass = %+v, %v", again.Inserted, again, err)
	}
	if again.Loaded != 0 {
		t.Fatalf("again.Loaded = %v, want 0; idle pass = %+v, %v", again.Loaded, again, err)
	}
	vs, err := e.Validate(ctx, "profiles")
	if err != nil || !Passed(vs, false) {
		t.Fatalf("validation after sync: %+v %v", vs, err)
	}
}

func openWith(t *testing.T, sp *spec.Spec) (*Engine, context.Context, string) {
	t.Helper()
	ctx := ctxT(t)
	target := newTarget(t)
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return e, ctx, target
}
