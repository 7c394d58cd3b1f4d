package dbcopy

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestLedgerRecordsHowTheMigrationRanAndWhereEachEntityEnded: the orchestration's
// configuration column holds the run's settings (batch size, entities at once, writers per
// entity, error budget, capture mode per source), and an entity that completes gets one
// entity_completion checkpoint with its last batch, last key and counts (recorded again by a
// retried activity: still one).
func TestLedgerRecordsHowTheMigrationRanAndWhereEachEntityEnded(t *testing.T) {
	ctx := ctxT(t)
	notes := &dbcopytest.Table{Name: "notes", PK: true, Columns: []string{"id", "body"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(1), "a"}, {int64(2), "b"}, {int64(3), "c"}, {int64(4), "d"}, {int64(5), "e"}}}
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, []*dbcopytest.Table{notes}); err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(`name: settings
version: "7"
batch_size: 2
error_budget: {max_rows: 3}
sources: {legacy: {driver: sqlite, path: "` + src + `"}}
target: {create_tables: true}
entities:
  - {name: notes, source_table: notes, target_table: notes, key: {source: id, mode: keep, type: bigint},
     columns: [{source: body, type: text}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), MigrationType: model.MigrationIncremental, TargetURL: newTarget(t),
		Parallelism: 3, Writers: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := e.Pool().QueryRow(ctx, `SELECT configuration FROM migration_orchestrations WHERE id = $1`,
		e.MigrationID()).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"spec": "settings", "version": "7", "batch_size": 2.0, "parallelism": 3.0,
		"writers_per_entity": 4.0, "error_budget": map[string]any{"max_rows": 3.0}, "on_existing": "fail",
		"capture": map[string]any{"legacy": "triggers"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("configuration (-want +got):\n%s", d)
	}

	copyAll(t, e)
	for range 2 { // the activity retried after its write
		if err := e.SetEntityStatus(ctx, "notes", model.EntityCompleted); err != nil {
			t.Fatal(err)
		}
	}
	type checkpoint struct {
		Batch     int64
		LastKey   string
		Processed int64
		Total     float64
		Failed    float64
	}
	rows, err := e.Pool().Query(ctx, `SELECT batch_number, last_source_id, records_processed,
		(system_state->>'records_total')::float8, (system_state->>'records_failed')::float8
		FROM migration_checkpoints WHERE migration_id = $1 AND checkpoint_type = 'entity_completion'`, e.MigrationID())
	if err != nil {
		t.Fatal(err)
	}
	var cps []checkpoint
	for rows.Next() {
		var c checkpoint
		if err := rows.Scan(&c.Batch, &c.LastKey, &c.Processed, &c.Total, &c.Failed); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, c)
	}
	rows.Close()
	if d := cmp.Diff([]checkpoint{{Batch: 2, LastKey: "5", Processed: 5, Total: 5}}, cps); d != "" {
		t.Errorf("entity_completion checkpoints (-want +got):\n%s", d)
	}
}
