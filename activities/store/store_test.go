package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenAndMigrate(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func TestOpenCreatesMissingDatabase(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDatabase(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	// Point at a database that does not exist yet on the same server; Open must create it.
	fresh := cfg.Database + "_fresh"
	t.Cleanup(func() { dropDatabase(t, cfg, fresh) })
	db, err := store.Open(ctx, "postgres://"+cfg.User+"@"+cfg.Host+":"+strconv.Itoa(int(cfg.Port))+"/"+fresh)
	if err != nil {
		t.Fatalf("open missing database: %v", err)
	}
	defer db.Close()
	var name string
	if err := db.Pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatalf("err: want nil; current_database = %q (%v), want %q", name, err, fresh)
	} else if name != fresh {
		t.Fatalf("name: want fresh; current_database = %q (%v), want %q", name, err, fresh)
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://u:hunter2-secret@127.0.0.1:1/x?connect_timeout=1")
	if err == nil {
		t.Fatal("want an error connecting to port 1")
	}
	if strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestJobsAndMailboxes(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)

	given, err := db.CreateJob(ctx, store.Job{ID: 42, TenantID: 112, Domain: "example.com", DestIMAPHost: "mail.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if given.ID != 42 {
		t.Fatalf("given.ID = %v, want 42; created job = %+v", given.ID, given)
	}
	if given.Phase != model.PhaseDiscovered {
		t.Fatalf("given.Phase = %v, want model.PhaseDiscovered; created job = %+v", given.Phase, given)
	}
	if given.Gate != model.GateBlocked {
		t.Fatalf("given.Gate = %v, want model.GateBlocked; created job = %+v", given.Gate, given)
	}
	// Generated ids must not collide with a spec-assigned one.
	for range 3 {
		j, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "other.org"})
		if err != nil {
			t.Fatalf("create job after explicit id: %v", err)
		}
		if j.ID <= 42 {
			t.Fatalf("generated id %d not above the explicit 42", j.ID)
		}
	}
	if _, err := db.GetJob(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing job: %v", err)
	}

	// ready_for_dns without an approval is refused by the schema itself.
	if err := db.SetJobPhase(ctx, 42, model.PhaseCutoverReady, model.GateReadyForDNS); err == nil {
		t.Fatal("ready_for_dns without approval was accepted")
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if err := db.ApproveJob(ctx, 42, "ops-lead-7", at, "checked counts"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetJobPhase(ctx, 42, model.PhaseCutoverReady, model.GateReadyForDNS); err != nil {
		t.Fatal(err)
	}
	j, _ := db.GetJob(ctx, 42)
	if j.ApprovedBy == nil {
		t.Fatalf("j.ApprovedBy is nil; approved job = %+v", j)
	}
	if *j.ApprovedBy != "ops-lead-7" {
		t.Fatalf("*j.ApprovedBy = %v, want \"ops-lead-7\"; approved job = %+v", *j.ApprovedBy, j)
	}
	if !j.ApprovedAt.Equal(at) {
		t.Fatalf("j.ApprovedAt.Equal(at) is false; approved job = %+v", j)
	}
	if j.Gate != model.GateReadyForDNS {
		t.Fatalf("j.Gate = %v, want model.GateReadyForDNS; approved job = %+v", j.Gate, j)
	}

	m, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: 42, Email: "ana@example.com", SourceType: model.SourceIMAP,
		SourceHost: "old.example.com", FolderMap: map[string]string{"Sent Items": "Sent"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != model.MailboxPending {
		t.Fatalf("m.Status = %v, want model.MailboxPending; mailbox = %+v", m.Status, m)
	}
	if m.FolderMap["Sent Items"] != "Sent" {
		t.Fatalf("m.FolderMap[\"Sent Items\"] = %v, want \"Sent\"; mailbox = %+v", m.FolderMap["Sent Items"], m)
	}
	if err := db.SetMailboxProgress(ctx, m.ID, store.MailboxProgress{MessagesSource: 8, MessagesDest: 7,
		BytesSource: 800, BytesDest: 700, Status: model.MailboxSyncing}); err != nil {
		t.Fatal(err)
	}
	// A re-submitted spec keeps progress.
	if _, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: 42, Email: "ana@example.com", SourceType: model.SourceIMAP}); err != nil {
		t.Fatal(err)
	}
	m, _ = db.GetMailbox(ctx, m.ID)
	if m.SyncPercent != 87.5 {
		t.Fatalf("m.SyncPercent = %v, want 87.5; mailbox after progress = %+v", m.SyncPercent, m)
	}
	if m.MessagesDest != 7 {
		t.Fatalf("m.MessagesDest = %v, want 7; mailbox after progress = %+v", m.MessagesDest, m)
	}
	if m.Status != model.MailboxSyncing {
		t.Fatalf("m.Status = %v, want model.MailboxSyncing; mailbox after progress = %+v", m.Status, m)
	}
	if _, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: 42, Email: "x@example.com", SourceType: "exchange"}); err == nil {
		t.Fatal("unknown source_type accepted")
	}
}

func TestRunsAreIdempotentByKey(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	j, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	key := "email-job-1/activity-7"
	r1, err := db.RecordRun(ctx, store.Run{JobID: j.ID, RunType: model.RunInitial, Tool: model.ToolIMAPSync,
		Status: model.RunRunning, IdempotencyKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := db.RecordRun(ctx, store.Run{JobID: j.ID, RunType: model.RunInitial, Tool: model.ToolIMAPSync,
		Status: model.RunSuccess, Stats: json.RawMessage(`{"transferred":1200,"errors":2,"folders":14}`), IdempotencyKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID != r2.ID {
		t.Fatalf("r1.ID = %v, want %v (r2.ID); retried run made a new row or kept old status: %+v vs %+v",
			r1.ID, r2.ID, r1, r2)
	}
	if r2.Status != model.RunSuccess {
		t.Fatalf("r2.Status = %v, want model.RunSuccess; retried run made a new row or kept old status: %+v vs %+v",
			r2.Status, r1, r2)
	}
	runs, err := db.ListRuns(ctx, j.ID, 0)
	if err != nil {
		t.Fatalf("err: want nil; runs = %d (%v), want 1", len(runs), err)
	}
	if len(runs) != 1 {
		t.Fatalf("len(runs): want 1; runs = %d (%v), want 1", len(runs), err)
	}
	if err := db.FinishRun(ctx, r1.ID, model.RunPartial, nil, json.RawMessage(`{"transferred":3}`), "/var/log/x"); err != nil {
		t.Fatal(err)
	}
	runs, _ = db.ListRuns(ctx, j.ID, 0)
	if runs[0].FinishedAt == nil {
		t.Fatalf("runs[0].FinishedAt is nil; finished run = %+v", runs[0])
	}
	if runs[0].LogPath != "/var/log/x" {
		t.Fatalf("runs[0].LogPath = %v, want \"/var/log/x\"; finished run = %+v", runs[0].LogPath, runs[0])
	}
	if runs[0].Status != model.RunPartial {
		t.Fatalf("runs[0].Status = %v, want model.RunPartial; finished run = %+v", runs[0].Status, runs[0])
	}
}

func TestGateChecksLatestWins(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	j, _ := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "example.com"})
	t0 := time.Now().Add(-time.Minute)
	if err := db.RecordGateChecks(ctx, j.ID, []store.GateCheck{
		{CheckID: model.CheckCountRatio, Status: model.CheckFail, Message: "0.5", CheckedAt: t0},
		{CheckID: model.CheckManualApproval, Status: model.CheckFail, Message: "not approved", CheckedAt: t0},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordGateChecks(ctx, j.ID, []store.GateCheck{
		{CheckID: model.CheckCountRatio, Status: model.CheckPass, Message: "1.0"},
	}); err != nil {
		t.Fatal(err)
	}
	cs, err := db.LatestGateChecks(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[model.CheckID]model.CheckStatus{}
	for _, c := range cs {
		got[c.CheckID] = c.Status
	}
	if len(cs) != 2 {
		t.Fatalf("len(cs) = %v, want 2; latest checks = %+v", len(cs), cs)
	}
	if got[model.CheckCountRatio] != model.CheckPass {
		t.Fatalf("got[model.CheckCountRatio] = %v, want model.CheckPass; latest checks = %+v",
			got[model.CheckCountRatio], cs)
	}
	if got[model.CheckManualApproval] != model.CheckFail {
		t.Fatalf("got[model.CheckManualApproval] = %v, want model.CheckFail; latest checks = %+v",
			got[model.CheckManualApproval], cs)
	}
}

func TestOrchestrationFollowsSeedStateDiagram(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	id := uuid.New()
	o, err := db.CreateOrchestration(ctx, store.Orchestration{ID: id, MigrationType: model.MigrationFull, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != model.OrchPending {
		t.Fatalf("new orchestration status %s", o.Status)
	}
	if _, err := db.CreateOrchestration(ctx, store.Orchestration{ID: id, MigrationType: model.MigrationFull, CreatedBy: "test"}); err != nil {
		t.Fatalf("re-create is not a no-op: %v", err)
	}
	var bad *store.ErrBadTransition
	if err := db.TransitionOrchestration(ctx, id, model.OrchCompleted); !errors.As(err, &bad) {
		t.Fatalf("pending → completed: %v, want ErrBadTransition", err)
	}
	steps := []model.OrchestrationStatus{model.OrchRunning, model.OrchRunning, model.OrchRollingBack, model.OrchPending,
		model.OrchRunning, model.OrchCompleted}
	for _, s := range steps {
		if err := db.TransitionOrchestration(ctx, id, s); err != nil {
			t.Fatalf("→ %s: %v", s, err)
		}
	}
	o, _ = db.GetOrchestration(ctx, id)
	if o.Status != model.OrchCompleted {
		t.Fatalf("o.Status = %v, want model.OrchCompleted; completed orchestration = %+v", o.Status, o)
	}
	if o.StartedAt == nil {
		t.Fatalf("o.StartedAt is nil; completed orchestration = %+v", o)
	}
	if o.CompletedAt == nil {
		t.Fatalf("o.CompletedAt is nil; completed orchestration = %+v", o)
	}
	if o.CompletedAt.Before(*o.StartedAt) {
		t.Fatalf("o.CompletedAt.Before(*o.StartedAt) is true; completed orchestration = %+v", o)
	}
	// An ended migration is taken up again by a new run (retry, retry of quarantined rows,
	// rollback); completed never goes back to pending without rolling back.
	if err := db.TransitionOrchestration(ctx, id, model.OrchPending); !errors.As(err, &bad) {
		t.Fatalf("completed → pending: %v, want ErrBadTransition", err)
	}
	for _, s := range []model.OrchestrationStatus{model.OrchRunning, model.OrchFailed, model.OrchRunning, model.OrchCompleted,
		model.OrchRollingBack, model.OrchPending} {
		if err := db.TransitionOrchestration(ctx, id, s); err != nil {
			t.Fatalf("recovery → %s: %v", s, err)
		}
	}
	if err := db.TransitionOrchestration(ctx, id, model.OrchFailed); !errors.As(err, &bad) {
		t.Fatalf("pending → failed: %v, want ErrBadTransition", err)
	}
	for _, s := range []model.OrchestrationStatus{model.OrchRunning, model.OrchCompleted} {
		if err := db.TransitionOrchestration(ctx, id, s); err != nil {
			t.Fatalf("→ %s: %v", s, err)
		}
	}
	if err := db.SetOrchestrationProgress(ctx, id, 4, 5, 0); err == nil {
		t.Fatal("completed_entities > total_entities accepted")
	}
	if err := db.SetOrchestrationProgress(ctx, id, 4, 1, 3); err != nil {
		t.Fatal(err)
	}
	o, _ = db.GetOrchestration(ctx, id)
	if o.ProgressPercentage != 25 {
		t.Fatalf("o.ProgressPercentage = %v, want 25; progress = %+v", o.ProgressPercentage, o)
	}
	if o.ErrorCount != 3 {
		t.Fatalf("o.ErrorCount = %v, want 3; progress = %+v", o.ErrorCount, o)
	}
}

func TestEntityBatchCheckpointErrorAreIdempotent(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mid := uuid.New()
	if _, err := db.CreateOrchestration(ctx, store.Orchestration{ID: mid, MigrationType: model.MigrationFull, CreatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	e, err := db.UpsertEntityStatus(ctx, store.EntityStatus{MigrationID: mid, EntityName: "offices", TargetEntity: "offices",
		DependencyOrder: 0, BatchSize: 1000, RecordsTotal: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpsertEntityStatus(ctx, store.EntityStatus{MigrationID: mid, EntityName: "profiles", TargetEntity: "profiles",
		DependencyOrder: 0, BatchSize: 1000}); err == nil {
		t.Fatal("duplicate dependency_order within a migration accepted")
	}
	if err := db.SetEntityStatus(ctx, e.ID, model.EntityRunning); err != nil {
		t.Fatal(err)
	}
	if err := db.SetEntityProgress(ctx, e.ID, store.EntityProgress{RecordsTotal: 10, RecordsProcessed: 9, RecordsFailed: 1,
		LastProcessedID: "10", ThroughputPerSecond: 1234.5}); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetEntityStatus(ctx, mid, "offices")
	if err != nil {
		t.Fatalf("err: want nil; entity = %+v (%v)", got, err)
	}
	if got.RecordsProcessed != 9 {
		t.Fatalf("got.RecordsProcessed = %v, want 9; entity = %+v (%v)", got.RecordsProcessed, got, err)
	}
	if *got.LastProcessedID != "10" {
		t.Fatalf("*got.LastProcessedID = %v, want \"10\"; entity = %+v (%v)", *got.LastProcessedID, got, err)
	}
	if got.StartedAt == nil {
		t.Fatalf("got.StartedAt is nil; entity = %+v (%v)", got, err)
	}

	now := time.Now()
	dur := int64(12)
	for i := range 2 {
		wrote, err := db.RecordBatch(ctx, store.Batch{EntityStatusID: e.ID, BatchNumber: 1, BatchSize: 10, Status: model.BatchCompleted,
			RecordsSuccessful: 9, RecordsFailed: 1, StartedAt: &now, CompletedAt: &now, ProcessingDurationMS: &dur})
		if err != nil {
			t.Fatalf("err: want nil; record batch #%d: wrote=%v err=%v", i, wrote, err)
		}
		if wrote != (i == 0) {
			t.Fatalf("wrote: want (i == 0); record batch #%d: wrote=%v err=%v", i, wrote, err)
		}
		last := "10"
		wrote, err = db.RecordCheckpoint(ctx, store.Checkpoint{MigrationID: mid, EntityName: "offices",
			CheckpointType: model.CheckpointBatch, BatchNumber: 1, LastSourceID: &last, RecordsProcessed: 10,
			SystemState: json.RawMessage(`{"last_processed_id":"10"}`), IsResumable: true})
		if err != nil {
			t.Fatalf("err: want nil; record checkpoint #%d: wrote=%v err=%v", i, wrote, err)
		}
		if wrote != (i == 0) {
			t.Fatalf("wrote: want (i == 0); record checkpoint #%d: wrote=%v err=%v", i, wrote, err)
		}
		rec := "7"
		wrote, err = db.RecordError(ctx, store.MigrationError{MigrationID: mid, EntityStatusID: &e.ID,
			ErrorType: model.ErrConstraintViolation, ErrorCode: "23503", ErrorMessage: "orphan", SourceRecordID: &rec,
			SourceData: json.RawMessage(`{"id":7}`)})
		if err != nil {
			t.Fatalf("err: want nil; record error #%d: wrote=%v err=%v", i, wrote, err)
		}
		if wrote != (i == 0) {
			t.Fatalf("wrote: want (i == 0); record error #%d: wrote=%v err=%v", i, wrote, err)
		}
	}
	if _, err := db.RecordBatch(ctx, store.Batch{EntityStatusID: e.ID, BatchNumber: 2, BatchSize: 10,
		Status: model.BatchCompleted, RecordsSuccessful: 3}); err == nil {
		t.Fatal("completed batch with successful+failed != size accepted")
	}
	cp, err := db.LatestCheckpoint(ctx, mid, "offices")
	if err != nil {
		t.Fatalf("err: want nil; latest checkpoint = %+v (%v)", cp, err)
	}
	if cp.BatchNumber != 1 {
		t.Fatalf("cp.BatchNumber = %v, want 1; latest checkpoint = %+v (%v)", cp.BatchNumber, cp, err)
	}
	if *cp.LastSourceID != "10" {
		t.Fatalf("*cp.LastSourceID = %v, want \"10\"; latest checkpoint = %+v (%v)", *cp.LastSourceID, cp, err)
	}
	errs, err := db.ListErrors(ctx, mid, true)
	if err != nil {
		t.Fatalf("err: want nil; errors = %d (%v)", len(errs), err)
	}
	if len(errs) != 1 {
		t.Fatalf("len(errs): want 1; errors = %d (%v)", len(errs), err)
	}
	if err := db.ResolveError(ctx, errs[0].ID, "fixed spec"); err != nil {
		t.Fatal(err)
	}
	if errs, _ := db.ListErrors(ctx, mid, true); len(errs) != 0 {
		t.Fatalf("unresolved after resolve = %d", len(errs))
	}

	if err := db.RecordMappings(ctx, []store.Mapping{{MigrationID: mid, SourceTable: "offices", SourceID: "1",
		DestinationTable: "offices", DestinationID: uuid.New(), EntityType: "office"}}); err != nil {
		t.Fatal(err)
	}
	first, _ := db.LookupMapping(ctx, mid, "offices", "1")
	if err := db.RecordMappings(ctx, []store.Mapping{{MigrationID: mid, SourceTable: "offices", SourceID: "1",
		DestinationTable: "offices", DestinationID: uuid.New(), EntityType: "office"}}); err != nil {
		t.Fatal(err)
	}
	again, _ := db.LookupMapping(ctx, mid, "offices", "1")
	if first.DestinationID != again.DestinationID {
		t.Fatal("a second mapping for the same source row replaced the first")
	}

	// Validation results: a failed one must explain itself.
	if err := db.RecordValidation(ctx, store.ValidationResult{MigrationID: mid, ValidationType: model.ValidationCompleteness,
		EntityName: "offices", Status: model.ValidationFailed, RecordsValidated: 10, IssuesFound: 1,
		ValidationCriteria: json.RawMessage(`{"count":"source - errors = target"}`)}); err == nil {
		t.Fatal("failed validation without issue_details accepted")
	}
	if err := db.RecordValidation(ctx, store.ValidationResult{MigrationID: mid, ValidationType: model.ValidationCompleteness,
		EntityName: "offices", Status: model.ValidationPassed, RecordsValidated: 10,
		ValidationCriteria: json.RawMessage(`{"count":"source - errors = target"}`)}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaOpsNeedRollbackAndCriticalValidation(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mid := uuid.New()
	if _, err := db.CreateOrchestration(ctx, store.Orchestration{ID: mid, MigrationType: model.MigrationSchemaCleanup, CreatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	col := "legacy_flag"
	op := store.SchemaOp{ID: uuid.New(), MigrationID: mid, OperationType: model.OpDropColumn, TableName: "profiles",
		ColumnName: &col, OperationSQL: `ALTER TABLE "profiles" DROP COLUMN "legacy_flag"`, RiskLevel: model.RiskCritical}
	if err := db.CreateSchemaOp(ctx, op); err == nil {
		t.Fatal("operation without rollback SQL accepted")
	}
	op.RollbackSQL = `ALTER TABLE "profiles" ADD COLUMN "legacy_flag" boolean`
	if err := db.CreateSchemaOp(ctx, op); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSchemaOpStatus(ctx, op.ID, model.OpCompleted, nil); err == nil {
		t.Fatal("critical operation completed without validation results")
	}
	if err := db.ApproveSchemaOp(ctx, op.ID, "dba", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSchemaOpStatus(ctx, op.ID, model.OpCompleted, json.RawMessage(`{"rows_backed_up":3}`)); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetSchemaOp(ctx, op.ID)
	if err != nil {
		t.Fatalf("err: want nil; op = %+v (%v)", got, err)
	}
	if got.Status != model.OpCompleted {
		t.Fatalf("got.Status = %v, want model.OpCompleted; op = %+v (%v)", got.Status, got, err)
	}
	if got.ExecutedAt == nil {
		t.Fatalf("got.ExecutedAt is nil; op = %+v (%v)", got, err)
	}
	if *got.ApprovedBy != "dba" {
		t.Fatalf("*got.ApprovedBy = %v, want \"dba\"; op = %+v (%v)", *got.ApprovedBy, got, err)
	}

	if _, err := db.UpsertLegacyEntityMapping(ctx, store.LegacyEntityMapping{SourceEntity: "dispatch_user",
		DestinationEntity: "profiles", TransformationRules: json.RawMessage(`{"columns":{}}`),
		DependencyEntities: []string{"dispatch_user"}, Version: "1"}); err == nil {
		t.Fatal("entity depending on itself accepted")
	}
	lm, err := db.UpsertLegacyEntityMapping(ctx, store.LegacyEntityMapping{SourceEntity: "dispatch_user",
		DestinationEntity: "profiles", TransformationRules: json.RawMessage(`{"columns":{}}`),
		DependencyEntities: []string{"offices"}, Version: "1", IsActive: true})
	if err != nil {
		t.Fatalf("err: want nil; legacy mapping = %+v (%v)", lm, err)
	}
	if lm.DependencyEntities[0] != "offices" {
		t.Fatalf("lm.DependencyEntities[0] = %v, want \"offices\"; legacy mapping = %+v (%v)",
			lm.DependencyEntities[0], lm, err)
	}
}

func dropDatabase(t *testing.T, admin *pgx.ConnConfig, name string) {
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		t.Errorf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop %s: %v", name, err)
	}
}
