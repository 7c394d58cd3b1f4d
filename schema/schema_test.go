package schema_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/schema"
)

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	first, err := schema.Apply(ctx, pool)
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	if len(first.Applied) == 0 {
		t.Fatalf("len(first.Applied) = %v, want != 0; first apply = %+v, want all migrations up to %d",
			len(first.Applied), first, schema.Latest())
	}
	if first.Version != schema.Latest() {
		t.Fatalf("first.Version = %v, want schema.Latest(); first apply = %+v, want all migrations up to %d",
			first.Version, first, schema.Latest())
	}
	second, err := schema.Apply(ctx, pool)
	if err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if len(second.Applied) != 0 {
		t.Fatalf("len(second.Applied) = %v, want 0; second apply = %+v, want no-op at %d",
			len(second.Applied), second, first.Version)
	}
	if second.Version != first.Version {
		t.Fatalf("second.Version = %v, want %v (first.Version); second apply = %+v, want no-op at %d",
			second.Version, first.Version, second, first.Version)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(first.Applied) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(first.Applied))
	}
}

func TestApplyConcurrently(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := schema.Apply(ctx, pool); errs <- err }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent apply: %v", err)
		}
	}
}

func TestApplyRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if _, err := schema.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, 'future', 'x')`,
		schema.Latest()+1); err != nil {
		t.Fatal(err)
	}
	_, err := schema.Apply(ctx, pool)
	if !errors.Is(err, schema.ErrTooNew) {
		t.Fatalf("apply over newer schema: err = %v, want ErrTooNew", err)
	}
}

func TestApplyRefusesEditedMigration(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if _, err := schema.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.Apply(ctx, pool); !errors.Is(err, schema.ErrModified) {
		t.Fatalf("apply over edited migration: err = %v, want ErrModified", err)
	}
}

// TestCatalogMatchesSeeds reads the live catalog: every control table and index of the data models
// exists, and each enum column's CHECK allows exactly the values internal/model spells.
func TestCatalogMatchesSeeds(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if _, err := schema.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}

	tables := []string{
		"migration_jobs", "migration_mailboxes", "migration_runs", "migration_gate_checks", "migration_credentials",
		"migration_orchestrations", "entity_migration_status", "migration_checkpoints", "migration_mappings",
		"batch_processing_status", "migration_errors", "schema_change_operations", "legacy_entity_mappings",
		"data_validation_results",
	}
	for _, tbl := range tables {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+tbl).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (err %v)", tbl, err)
		}
	}

	indexes := []string{
		// the email migration model
		"idx_migration_jobs_domain", "idx_migration_jobs_phase", "idx_migration_mailboxes_job", "idx_migration_runs_job",
		// the database migration model's critical indexes
		"idx_entity_migration_status_order", "idx_migration_checkpoints_migration_created",
		"idx_migration_mappings_source", "idx_migration_errors_type_occurred",
	}
	for _, idx := range indexes {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+idx).Scan(&ok); err != nil || !ok {
			t.Errorf("index %s missing (err %v)", idx, err)
		}
	}

	enums := []struct {
		table, column string
		want          []string
	}{
		{"migration_jobs", "phase", strs(append(slices.Clone(model.Phases), model.PhaseFailed))},
		{"migration_jobs", "migration_gate", strs([]model.Gate{model.GateBlocked, model.GateWarning, model.GateReadyForDNS})},
		{"migration_mailboxes", "source_type", strs(model.SourceTypes)},
		{"migration_mailboxes", "status", strs([]model.MailboxStatus{model.MailboxPending, model.MailboxSyncing,
			model.MailboxOK, model.MailboxError, model.MailboxQuarantine, model.MailboxSkipped})},
		{"migration_runs", "run_type", strs([]model.RunType{model.RunPreflight, model.RunInitial, model.RunDelta,
			model.RunFinal, model.RunVerify, model.RunPSTExtract, model.RunPSTUpload, model.RunTgzExport, model.RunTgzImport})},
		{"migration_runs", "tool", strs([]model.Tool{model.ToolIMAPSync, model.ToolReadPST, model.ToolIMAPUpload,
			model.ToolZmmailbox, model.ToolDoveadm, model.ToolVerify})},
		{"migration_runs", "status", strs([]model.RunStatus{model.RunQueued, model.RunRunning, model.RunSuccess,
			model.RunPartial, model.RunFailed})},
		{"migration_gate_checks", "check_id", strs(model.AllCheckIDs())},
		{"migration_gate_checks", "status", strs([]model.CheckStatus{model.CheckPass, model.CheckWarn, model.CheckFail})},
		{"migration_orchestrations", "migration_type", strs([]model.MigrationType{model.MigrationFull,
			model.MigrationIncremental, model.MigrationSchemaCleanup})},
		{"migration_orchestrations", "status", strs([]model.OrchestrationStatus{model.OrchPending, model.OrchRunning,
			model.OrchCompleted, model.OrchFailed, model.OrchRollingBack})},
		{"entity_migration_status", "status", strs([]model.EntityStatus{model.EntityPending, model.EntityRunning,
			model.EntityCompleted, model.EntityFailed, model.EntitySkipped})},
		{"migration_checkpoints", "checkpoint_type", strs([]model.CheckpointType{model.CheckpointBatch,
			model.CheckpointEntity, model.CheckpointError})},
		{"batch_processing_status", "status", strs([]model.BatchStatus{model.BatchPending, model.BatchProcessing,
			model.BatchCompleted, model.BatchFailed, model.BatchRetrying})},
		{"migration_errors", "error_type", strs([]model.ErrorType{model.ErrConnection, model.ErrDataValidation,
			model.ErrConstraintViolation, model.ErrTimeout, model.ErrUnknown})},
		{"schema_change_operations", "operation_type", strs([]model.SchemaOpType{model.OpDropColumn,
			model.OpAddColumn, model.OpModifyColumn, model.OpCreateBackup})},
		{"schema_change_operations", "status", strs([]model.SchemaOpStatus{model.OpPending, model.OpCompleted,
			model.OpFailed, model.OpRolledBack})},
		{"schema_change_operations", "risk_level", strs([]model.RiskLevel{model.RiskLow, model.RiskMedium,
			model.RiskHigh, model.RiskCritical})},
		{"data_validation_results", "validation_type", strs([]model.ValidationType{model.ValidationReferential,
			model.ValidationCompleteness, model.ValidationBusinessRule, model.ValidationPerformance})},
		{"data_validation_results", "status", strs([]model.ValidationStatus{model.ValidationPassed,
			model.ValidationFailed, model.ValidationWarning})},
	}
	literal := regexp.MustCompile(`'([^']*)'::text`)
	for _, e := range enums {
		// The CHECK on this one column whose definition is an IN-list.
		rows, err := pool.Query(ctx, `SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
			JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
			WHERE c.conrelid = $1::regclass AND c.contype = 'c' AND a.attname = $2 AND cardinality(c.conkey) = 1`,
			e.table, e.column)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var def string
			if err := rows.Scan(&def); err != nil {
				t.Fatal(err)
			}
			for _, m := range literal.FindAllStringSubmatch(def, -1) {
				got = append(got, m[1])
			}
		}
		rows.Close()
		sort.Strings(got)
		want := slices.Clone(e.want)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s.%s CHECK allows %v, seed says %v", e.table, e.column, got, want)
		}
	}
}

func strs[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}
