package dbmigrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

const testSpec = `name: t
sources:
  legacy: {driver: sqlite, path: /nonexistent/legacy.db, capture: key_cursor}
entities:
  - {name: offices, source_table: office, target_table: offices, key: {source: id}, columns: [{source: name, type: text}]}
  - {name: profiles, source_table: users, target_table: profiles, key: {source: id}, columns: [{source: email, type: text}]}
  - name: doctors
    source_table: doctor
    target_table: doctors
    key: {source: id}
    columns: [{source: office_id, references: offices}, {source: profile_id, references: profiles}]
  - {name: projects, source_table: project, target_table: projects, key: {source: id}, columns: [{source: name, type: text}]}
`

var testOrder = []string{"offices", "profiles", "doctors", "projects"}

func testInput(t *testing.T, typ model.MigrationType, cfg dbmigrateapi.Config, ops ...spec.SchemaOp) dbmigrateapi.Input {
	t.Helper()
	sp, err := spec.Parse([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	sp.SchemaOps = ops
	return dbmigrateapi.Input{MigrationID: "3f1c2a1e-1111-4a4a-8a8a-000000000001", MigrationType: typ, CreatedBy: "test", Spec: sp, Config: cfg}
}

// recorder is the fake world the mocked activities write to.
type recorder struct {
	mu           sync.Mutex
	transitions  []model.OrchestrationStatus
	events       []string // "start X", "done X", "rollback X", "op-exec X", ...
	chunks       map[string]int
	chunkCalls   []dbcopy.ChunkRequest
	approvedBy   map[string]string
	failed       map[string]int64 // records_failed reported per entity
	chunksToDo   int              // chunks before an entity is done
	copyHook     func(entity string)
	validateHook func(entity string)
	finalizeHook func(entity string)
	statusHook   func() // on each counters-only status write
	copyErr      error  // every copy activity fails with it
	prepareErr   error  // DBPrepare fails with it
	prepared     dbcopy.Migration
	prepareDelay time.Duration
	copyDelay    time.Duration
	drainDelay   time.Duration
	window       *dbcopy.WindowRequest
	requests     []dbcopy.RecordRequest // operators' requests written to the ledger
	// orphansLoadAt: the re-drive of an entity's orphans loads its row on that call (1-based);
	// the others find the parent still missing.
	orphansLoadAt map[string]int
	orphanCalls   map[string]int
	orphanHook    func(entity string) // in each re-drive of orphans, before it ends ("orphans-end X")
	// entityStatusCalls counts the activities that only record an entity's status.
	entityStatusCalls int
	published         []string // event types, by DBEmitEvent or with a status write
	emitCalls         int      // DBEmitEvent activities
}

func (r *recorder) log(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) index(s string) int { return slices.Index(r.events, s) }

func newEnv(t *testing.T, rec *recorder) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	// A loaded machine (CI runs packages in parallel on two cores) can hold a workflow task past
	// the SDK's 1 s deadlock detection without any deadlock in the code.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: time.Minute})
	RegisterWorkflows(env)
	env.RegisterActivity(&dbcopy.Activities{})
	if rec.chunks == nil {
		rec.chunks = map[string]int{}
	}
	if rec.approvedBy == nil {
		rec.approvedBy = map[string]string{}
	}
	if rec.chunksToDo == 0 {
		rec.chunksToDo = 2
	}
	var a *dbcopy.Activities
	env.OnActivity(a.DBPrepare, mock.Anything, mock.Anything).After(rec.prepareDelay).Return(func(_ context.Context, m dbcopy.Migration) (dbcopy.PrepareResult, error) {
		rec.mu.Lock()
		rec.prepared = m
		rec.mu.Unlock()
		if rec.prepareErr != nil {
			return dbcopy.PrepareResult{}, rec.prepareErr
		}
		tot := map[string]int64{}
		for _, n := range testOrder {
			tot[n] = 100
		}
		return dbcopy.PrepareResult{Order: testOrder, Totals: tot}, nil
	})
	env.OnActivity(a.DBSetStatus, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.StatusRequest) error {
		if r.Event != nil {
			rec.mu.Lock()
			rec.published = append(rec.published, r.Event.Event.EventType)
			rec.mu.Unlock()
		}
		if r.To == "" && rec.statusHook != nil {
			rec.statusHook()
		}
		if r.To != "" {
			rec.mu.Lock()
			rec.transitions = append(rec.transitions, r.To)
			rec.mu.Unlock()
		}
		if r.Completed > r.Total {
			return errors.New("completed_entities exceeds total_entities")
		}
		return nil
	})
	env.OnActivity(a.DBSetEntityStatus, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.EntityRequest) error {
		rec.mu.Lock()
		rec.entityStatusCalls++
		rec.mu.Unlock()
		switch r.Status {
		case model.EntityRunning:
			rec.log("start " + r.Entity)
		case model.EntityCompleted:
			rec.log("done " + r.Entity)
		case model.EntityFailed:
			rec.log("failed " + r.Entity)
		}
		return nil
	})
	env.OnActivity(a.DBCopyChunk, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.ChunkRequest) (dbcopy.ChunkResult, error) {
		e := r.Cursor.Entity
		if r.Running { // the entity recorded running by its first chunk (leanEntityChange)
			rec.log("start " + e)
		}
		if rec.copyHook != nil && !r.Cursor.Sync {
			rec.copyHook(e)
		}
		rec.mu.Lock()
		rec.chunks[e]++
		if rec.copyErr != nil {
			rec.mu.Unlock()
			return dbcopy.ChunkResult{}, rec.copyErr
		}
		n := rec.chunks[e]
		rec.chunkCalls = append(rec.chunkCalls, r)
		failed := rec.failed[e]
		rec.mu.Unlock()
		if r.Cursor.Sync {
			rec.log("sync " + e)
			return dbcopy.ChunkResult{Run: dbcopy.RunResult{Entity: e, Done: true, Next: r.Cursor}, RecordsTotal: 100,
				RecordsProcessed: 100 - failed, RecordsFailed: failed}, nil
		}
		done := n >= rec.chunksToDo
		if done {
			rec.log("loaded " + e)
		}
		next := dbmigrateapi.BatchRequest{Entity: e, BatchNumber: int64(n * 10), After: fmt.Sprint(n * 50)}
		processed := min(int64(n*50), 100)
		return dbcopy.ChunkResult{Run: dbcopy.RunResult{Entity: e, Batches: 10, Rows: 50, Loaded: 50, Done: done, Next: next, MarkStart: "m0",
			MarkStartType: "blob"},
			RecordsTotal: 100, RecordsProcessed: processed - failed, RecordsFailed: failed, Throughput: 1000}, nil
	}).After(rec.copyDelay)
	env.OnActivity(a.DBFinalize, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.EntityRequest) error {
		if rec.finalizeHook != nil {
			rec.finalizeHook(r.Entity)
		}
		if r.Status == model.EntityCompleted { // recorded completed by its Finalize (leanEntityChange)
			rec.log("done " + r.Entity)
		}
		return nil
	})
	env.OnActivity(a.DBValidate, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.ValidateRequest) (dbmigrateapi.ValidationSummary, error) {
		rec.log("validate " + r.Entity)
		if rec.validateHook != nil {
			rec.validateHook(r.Entity)
		}
		return dbmigrateapi.ValidationSummary{Entity: r.Entity, Passed: true, Status: model.ValidationPassed}, nil
	})
	env.OnActivity(a.DBEmitEvent, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.EmitRequest) error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.published = append(rec.published, r.Event.EventType)
		rec.emitCalls++
		return nil
	})
	env.OnActivity(a.DBRecordRequest, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.RecordRequest) error {
		rec.mu.Lock()
		rec.requests = append(rec.requests, r)
		rec.mu.Unlock()
		return nil
	})
	env.OnActivity(a.DBPlanSchemaOp, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.SchemaOpRequest) (dbcopy.SchemaOpResult, error) {
		risk := model.RiskLow
		if strings.HasPrefix(r.Name, "drop") {
			risk = model.RiskCritical
		}
		return dbcopy.SchemaOpResult{Name: r.Name, Risk: risk, Status: model.OpPending}, nil
	})
	env.OnActivity(a.DBExecuteSchemaOp, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.SchemaOpRequest) (dbcopy.SchemaOpResult, error) {
		rec.log("op-exec " + r.Name)
		rec.mu.Lock()
		rec.approvedBy[r.Name] = r.ApprovedBy
		rec.mu.Unlock()
		return dbcopy.SchemaOpResult{Name: r.Name, Status: model.OpCompleted}, nil
	})
	env.OnActivity(a.DBRollbackSchemaOp, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.SchemaOpRequest) (dbcopy.SchemaOpResult, error) {
		rec.log("op-rollback " + r.Name)
		return dbcopy.SchemaOpResult{Name: r.Name, Status: model.OpRolledBack}, nil
	})
	env.OnActivity(a.DBRollbackEntity, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.EntityRequest) (int64, error) {
		rec.log("rollback " + r.Entity)
		return 100, nil
	})
	mockCapture(env, rec)
	env.OnActivity(a.DBAcceptErrors, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.AcceptRequest) (dbcopy.AcceptResult, error) {
		rec.log("accept " + r.AcceptedBy + ": " + r.Reason)
		return dbcopy.AcceptResult{QuarantinedRows: 3}, nil
	})
	env.OnActivity(a.DBRetryFailed, mock.Anything, mock.Anything).Return(func(_ context.Context, r dbcopy.EntityRequest) (dbcopy.RetryResult, error) {
		if r.OrphansOnly { // the parent never arrives, unless orphansLoadAt says so
			rec.log("orphans " + r.Entity)
			rec.mu.Lock()
			if rec.orphanCalls == nil {
				rec.orphanCalls = map[string]int{}
			}
			rec.orphanCalls[r.Entity]++
			load := rec.orphanCalls[r.Entity] == rec.orphansLoadAt[r.Entity]
			rec.mu.Unlock()
			if rec.orphanHook != nil {
				rec.orphanHook(r.Entity)
				defer rec.log("orphans-end " + r.Entity)
			}
			if load {
				return dbcopy.RetryResult{Entity: r.Entity, Retried: 1, Loaded: 1}, nil
			}
			return dbcopy.RetryResult{Entity: r.Entity, Retried: 1, Failed: 1}, nil
		}
		rec.log("retry " + r.Entity)
		return dbcopy.RetryResult{Entity: r.Entity, Retried: 1, Loaded: 1}, nil
	})
	return env
}

func result(t *testing.T, env *testsuite.TestWorkflowEnvironment) dbmigrateapi.State {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var st dbmigrateapi.State
	if err := env.GetWorkflowError(); err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.HasDetails() {
			if derr := ae.Details(&st); derr != nil {
				t.Fatalf("details: %v", derr)
			}
			return st
		}
		t.Fatalf("workflow error without state: %v", err)
	}
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestFullMigrationStateMachine(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rec.transitions) != "[running completed]" {
		t.Fatalf("fmt.Sprint(rec.transitions) = %v, want \"[running completed]\"; transitions ledger=%v workflow=%v",
			fmt.Sprint(rec.transitions), rec.transitions, st.Transitions)
	}
	if fmt.Sprint(st.Transitions) != "[pending running completed]" {
		t.Fatalf("fmt.Sprint(st.Transitions) = %v, want \"[pending running completed]\"; transitions ledger=%v workflow=%v",
			fmt.Sprint(st.Transitions), rec.transitions, st.Transitions)
	}
	if st.Status != model.OrchCompleted {
		t.Fatalf("st.Status = %v, want model.OrchCompleted; counters: %+v", st.Status, st)
	}
	if st.CompletedEntities != 4 {
		t.Fatalf("st.CompletedEntities = %v, want 4; counters: %+v", st.CompletedEntities, st)
	}
	if st.TotalEntities != 4 {
		t.Fatalf("st.TotalEntities = %v, want 4; counters: %+v", st.TotalEntities, st)
	}
	if st.ProgressPercent != 100 {
		t.Fatalf("st.ProgressPercent = %v, want 100; counters: %+v", st.ProgressPercent, st)
	}
	if st.ErrorCount != 0 {
		t.Fatalf("st.ErrorCount = %v, want 0; counters: %+v", st.ErrorCount, st)
	}
	for _, n := range testOrder {
		if rec.index("validate "+n) < rec.index("done "+n) {
			t.Errorf("validated %s before its load finished: %v", n, rec.events)
		}
		if got := slices.Index(rec.events[rec.index("validate "+n)+1:], "validate "+n); got >= 0 {
			t.Errorf("validated %s twice, nothing changed it in between: %v", n, rec.events)
		}
	}
	if len(st.Validation) != 4 {
		t.Fatalf("validation results: %+v", st.Validation)
	}
}

func TestDAGOrderAndParallelism(t *testing.T) {
	rec := &recorder{}
	// The first two entities to start wait for each other: the test fails unless the workflow
	// runs two at once.
	var mu sync.Mutex
	started := map[string]bool{}
	both := make(chan struct{})
	rec.copyHook = func(e string) {
		mu.Lock()
		if !started[e] {
			started[e] = true
			if len(started) == 2 {
				close(both)
			}
		}
		first := len(started) <= 2
		mu.Unlock()
		if first {
			select {
			case <-both:
			case <-time.After(10 * time.Second):
			}
		}
	}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{Parallelism: 2}))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-both:
	default:
		t.Fatal("two entities never ran at the same time")
	}
	// doctors starts only after both its parents loaded.
	for _, parent := range []string{"offices", "profiles"} {
		if rec.index("start doctors") < rec.index("loaded "+parent) {
			t.Fatalf("doctors started before %s was loaded: %v", parent, rec.events)
		}
	}
	// Never more than two entities loading (between start and their last chunk).
	running, peak := 0, 0
	for _, ev := range rec.events {
		switch {
		case strings.HasPrefix(ev, "start "):
			running++
		case strings.HasPrefix(ev, "loaded "):
			running--
		}
		peak = max(peak, running)
	}
	if peak != 2 {
		t.Fatalf("peak parallelism %d, want 2: %v", peak, rec.events)
	}
	// The ledger records it (the orchestration's configuration, written by DBPrepare).
	if got := rec.prepared.Parallelism; got != 2 {
		t.Errorf("DBPrepare was told parallelism %d, want 2", got)
	}
}

func TestErrorThresholdStopsEntityAndMigration(t *testing.T) {
	rec := &recorder{failed: map[string]int64{"profiles": 30}}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{MaxErrors: 10, Parallelism: 1}))
	st := result(t, env)
	err := env.GetWorkflowError()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != errTypeThreshold {
		t.Fatalf("error = %v", err)
	}
	if st.Status != model.OrchFailed {
		t.Fatalf("st.Status: want model.OrchFailed; status %s transitions %v", st.Status, rec.transitions)
	}
	if fmt.Sprint(rec.transitions) != "[running failed]" {
		t.Fatalf("fmt.Sprint(rec.transitions) = %v, want \"[running failed]\"; status %s transitions %v",
			fmt.Sprint(rec.transitions), st.Status, rec.transitions)
	}
	if rec.index("failed profiles") < 0 {
		t.Fatalf("want rec.index(\"failed profiles\") >= 0; events: %v", rec.events)
	}
	if rec.index("start doctors") >= 0 {
		t.Fatalf("want rec.index(\"start doctors\") < 0; events: %v", rec.events)
	}
	if !strings.Contains(st.Error, "30 failed records exceed the limit of 10") || st.ErrorCount != 30 {
		t.Fatalf("state: %+v", st)
	}
}

func TestCriticalSchemaOpWaitsForApproval(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	ops := []spec.SchemaOp{{Name: "drop-name", Type: "drop_column", Table: "offices", Column: "name", After: "offices"},
		{Name: "add-flag", Type: "add_column", Table: "projects", Column: "flag", ColType: "boolean"}}
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(dbmigrateapi.QueryStatus)
		if err != nil {
			t.Error(err)
			return
		}
		var st dbmigrateapi.State
		_ = v.Get(&st)
		if op := st.Ops[0]; !op.AwaitingApproval || op.Risk != model.RiskCritical {
			t.Errorf("op not awaiting approval: %+v", op)
		}
		if rec.index("op-exec drop-name") >= 0 {
			t.Error("critical op executed without approval")
		}
		// The update's validator refuses an unknown operation.
		env.UpdateWorkflow(dbmigrateapi.UpdateApprove, "u1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) {},
			OnAccept: func() { t.Error("unknown op accepted") },
		}, dbmigrateapi.Approval{Operation: "nope", ApprovedBy: "x"})
		env.SignalWorkflow(dbmigrateapi.SignalApprove, dbmigrateapi.Approval{Operation: "drop-name", ApprovedBy: "ops-lead"})
	}, time.Hour)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationFull, dbmigrateapi.Config{}, ops...))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if rec.approvedBy["drop-name"] != "ops-lead" {
		t.Fatalf("rec.approvedBy[\"drop-name\"] = %v, want \"ops-lead\"; approvals %v events %v",
			rec.approvedBy["drop-name"], rec.approvedBy, rec.events)
	}
	if rec.index("op-exec add-flag") < 0 {
		t.Fatalf("want rec.index(\"op-exec add-flag\") >= 0; approvals %v events %v", rec.approvedBy, rec.events)
	}
	if st.Ops[0].Status != model.OpCompleted {
		t.Fatalf("st.Ops[0].Status = %v, want model.OpCompleted; state %+v", st.Ops[0].Status, st)
	}
	if st.Status != model.OrchCompleted {
		t.Fatalf("st.Status = %v, want model.OrchCompleted; state %+v", st.Status, st)
	}
}

func TestIncrementalPassesCutoverAndRollbackRefusedWhilePending(t *testing.T) {
	// Prepare takes a while: a rollback asked for while pending is refused.
	rec := &recorder{prepareDelay: time.Minute}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalRollback, dbmigrateapi.RollbackRequest{Reason: "too early"})
	}, 10*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{RequestedBy: "ops"})
	}, 3*time.Hour+30*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationIncremental, dbmigrateapi.Config{SyncInterval: time.Hour}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(st.Refused) != 1 || !strings.Contains(st.Refused[0], "rollback refused: status is pending") {
		t.Fatalf("refused = %v", st.Refused)
	}
	// Three timed passes (1h, 2h, 3h) plus the final pass after cutover.
	if st.Passes != 4 {
		t.Fatalf("st.Passes: want 4; passes %d status %s phase %s", st.Passes, st.Status, st.Phase)
	}
	if st.Status != model.OrchCompleted {
		t.Fatalf("st.Status: want model.OrchCompleted; passes %d status %s phase %s", st.Passes, st.Status, st.Phase)
	}
	if st.Phase != dbmigrateapi.PhaseDone {
		t.Fatalf("st.Phase: want dbmigrateapi.PhaseDone; passes %d status %s phase %s",
			st.Passes, st.Status, st.Phase)
	}
	// Catch-up cursors continue after the full load: watermark entities from their mark.
	for _, c := range rec.chunkCalls {
		if !c.Cursor.Sync {
			continue
		}
		if c.Cursor.Mark != "m0" {
			t.Fatalf("catch-up cursor mark %q, want m0: %+v", c.Cursor.Mark, c.Cursor)
		}
		if c.Cursor.MarkType != "blob" {
			t.Fatalf("catch-up cursor mark's storage class %q, want blob (the load's): %+v", c.Cursor.MarkType, c.Cursor)
		}
		if c.Cursor.BatchNumber != 20 {
			t.Fatalf("catch-up cursor batch %d, want 20: %+v", c.Cursor.BatchNumber, c.Cursor)
		}
	}
	if rec.index("validate offices") < rec.index("sync projects") {
		t.Fatal("validated before the final pass")
	}
}

func TestFinalPassIsTimed(t *testing.T) {
	rec := &recorder{copyDelay: 90 * time.Second}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{}) }, 30*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationIncremental, dbmigrateapi.Config{SyncInterval: time.Hour}))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	syncCalls := 0
	for _, c := range rec.chunkCalls {
		if c.Cursor.Sync {
			syncCalls++
		}
	}
	// Cutover came before the first timed pass: the final pass is the only one, four entities
	// at 90 s each.
	if st.FinalPassSeconds != 360 {
		t.Fatalf("st.FinalPassSeconds: want 360; final pass %v s over %d calls, %d passes",
			st.FinalPassSeconds, syncCalls, st.Passes)
	}
	if syncCalls != 4 {
		t.Fatalf("syncCalls: want 4; final pass %v s over %d calls, %d passes",
			st.FinalPassSeconds, syncCalls, st.Passes)
	}
	if st.Passes != 1 {
		t.Fatalf("st.Passes: want 1; final pass %v s over %d calls, %d passes",
			st.FinalPassSeconds, syncCalls, st.Passes)
	}
}

func TestRollbackCompensatesInReverseOrder(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	ops := []spec.SchemaOp{{Name: "add-a", Type: "add_column", Table: "offices", Column: "a", ColType: "text", After: "offices"},
		{Name: "add-b", Type: "add_column", Table: "projects", Column: "b", ColType: "text"}}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(dbmigrateapi.SignalRollback, dbmigrateapi.RollbackRequest{Reason: "bad data", RequestedBy: "ops"})
	}, 90*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationIncremental, dbmigrateapi.Config{SyncInterval: time.Hour}, ops...))
	st := result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rec.transitions) != "[running rolling_back pending]" {
		t.Fatalf("fmt.Sprint(rec.transitions) = %v, want \"[running rolling_back pending]\"; transitions %v state %+v",
			fmt.Sprint(rec.transitions), rec.transitions, st)
	}
	if st.Status != model.OrchPending {
		t.Fatalf("st.Status = %v, want model.OrchPending; transitions %v state %+v", st.Status, rec.transitions, st)
	}
	if !st.RolledBack {
		t.Fatalf("st.RolledBack is false; transitions %v state %+v", rec.transitions, st)
	}
	var comp []string
	for _, e := range rec.events {
		if strings.HasPrefix(e, "rollback ") || strings.HasPrefix(e, "op-rollback ") {
			comp = append(comp, e)
		}
	}
	want := "[op-rollback add-b op-rollback add-a rollback projects rollback doctors rollback profiles rollback offices]"
	if fmt.Sprint(comp) != want {
		t.Fatalf("compensations %v, want %s", comp, want)
	}
}

func TestRetryFailedSignal(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(dbmigrateapi.SignalRetry, dbmigrateapi.RetryRequest{Entity: "profiles"}) }, 30*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(dbmigrateapi.SignalCutover, dbmigrateapi.CutoverRequest{}) }, 40*time.Minute)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationIncremental, dbmigrateapi.Config{SyncInterval: time.Hour}))
	result(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if rec.index("retry profiles") < 0 {
		t.Fatalf("want rec.index(\"retry profiles\") >= 0; events %v", rec.events)
	}
	if rec.index("retry offices") >= 0 {
		t.Fatalf("want rec.index(\"retry offices\") < 0; events %v", rec.events)
	}
}

func TestInvalidSpecFailsBeforeAnyActivity(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	in := testInput(t, model.MigrationFull, dbmigrateapi.Config{})
	off, _ := in.Spec.Entity("offices")
	off.DependsOn = []string{"doctors"}
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, in)
	err := env.GetWorkflowError()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != errTypeInvalid || !strings.Contains(err.Error(), "dependency cycle") {
		t.Fatalf("error = %v", err)
	}
	if len(rec.transitions) != 0 {
		t.Fatalf("len(rec.transitions) = %v, want 0; something ran: %v %v",
			len(rec.transitions), rec.transitions, rec.events)
	}
	if len(rec.events) != 0 {
		t.Fatalf("len(rec.events) = %v, want 0; something ran: %v %v", len(rec.events), rec.transitions, rec.events)
	}
}

func TestEntityContinuesAsNew(t *testing.T) {
	rec := &recorder{chunksToDo: 5}
	env := newEnv(t, rec)
	in := EntityInput{Migration: migrationOf(testInput(t, model.MigrationFull, dbmigrateapi.Config{})), Entity: "offices",
		Config: dbmigrateapi.Config{ActivitiesPerRun: 2}, Cursor: dbmigrateapi.BatchRequest{Entity: "offices"}}
	env.ExecuteWorkflow(dbmigrateapi.EntityWorkflowName, in)
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("error = %v, want continue-as-new", err)
	}
	var next EntityInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if !next.Continued {
		t.Fatalf("next.Continued is false; continued with %+v", next)
	}
	if next.Cursor.After != "100" {
		t.Fatalf("next.Cursor.After = %v, want \"100\"; continued with %+v", next.Cursor.After, next)
	}
	if next.Cursor.BatchNumber != 20 {
		t.Fatalf("next.Cursor.BatchNumber = %v, want 20; continued with %+v", next.Cursor.BatchNumber, next)
	}
	if next.MarkStart != "m0" {
		t.Fatalf("next.MarkStart = %v, want \"m0\"; continued with %+v", next.MarkStart, next)
	}
	if next.MarkStartType != "blob" {
		t.Fatalf("next.MarkStartType = %v, want \"blob\"; continued with %+v", next.MarkStartType, next)
	}
}

func TestOrchestrationContinuesAsNewAfterPasses(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, rec)
	env.ExecuteWorkflow(dbmigrateapi.WorkflowName, testInput(t, model.MigrationIncremental, dbmigrateapi.Config{SyncInterval: time.Minute, PassesPerRun: 3}))
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("error = %v", err)
	}
	var next dbmigrateapi.Input
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Resume == nil {
		t.Fatalf("next.Resume is nil; resume state %+v", next.Resume)
	}
	if next.Resume.Passes != 3 {
		t.Fatalf("next.Resume.Passes = %v, want 3; resume state %+v", next.Resume.Passes, next.Resume)
	}
	if next.Resume.Phase != dbmigrateapi.PhaseCatchingUp {
		t.Fatalf("next.Resume.Phase = %v, want dbmigrateapi.PhaseCatchingUp; resume state %+v",
			next.Resume.Phase, next.Resume)
	}
	if next.Resume.Status != model.OrchRunning {
		t.Fatalf("next.Resume.Status = %v, want model.OrchRunning; resume state %+v",
			next.Resume.Status, next.Resume)
	}
}

// migrationOf is the dbcopy.Migration the workflow derives from in.
func migrationOf(in dbmigrateapi.Input) dbcopy.Migration {
	return dbcopy.Migration{ID: in.MigrationID, Type: in.MigrationType, Spec: in.Spec}
}
