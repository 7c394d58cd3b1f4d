package dbcopy

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// contentDetails is the content check's issue_details as the tests read them.
type contentDetails struct {
	Missing   listedKeys `json:"missing"`
	Extra     listedKeys `json:"extra"`
	Different struct {
		listedKeys
		Columns map[string]int64 `json:"columns"`
	} `json:"different"`
}

type listedKeys struct {
	Count int64    `json:"count"`
	Keys  []string `json:"keys"`
}

// contentCheck runs the entity's validation and returns its content check's details.
func contentCheck(t *testing.T, e *Engine, entity string) (contentDetails, model.ValidationStatus, map[string]any) {
	t.Helper()
	vs, err := e.Validate(ctxT(t), entity)
	if err != nil {
		t.Fatal(err)
	}
	var d contentDetails
	var status model.ValidationStatus
	rules := map[string]any{}
	for _, v := range vs {
		var crit struct {
			Check string `json:"check"`
		}
		_ = json.Unmarshal(v.ValidationCriteria, &crit)
		switch {
		case crit.Check == "content":
			if err := json.Unmarshal(v.IssueDetails, &d); err != nil {
				t.Fatal(err)
			}
			status = v.Status
		case v.ValidationType == model.ValidationBusinessRule:
			_ = json.Unmarshal(v.IssueDetails, &rules)
		}
	}
	return d, status, rules
}

// TestValidationListsTheRows: the content check names the rows it finds wrong, by legacy key
// and with counts — a target row deleted (missing), a target value changed (different, with
// its column), a source row deleted after the copy and a row another writer put in the target
// (extra: the count alone used to see them) — and a validation rule names its violating rows.
func TestValidationListsTheRows(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "name", "qty"}, Types: []string{"INTEGER", "TEXT", "INTEGER"}}
	for i := int64(1); i <= 8; i++ {
		qty := i
		if i == 3 || i == 7 {
			qty = -1
		}
		tbl.Rows = append(tbl.Rows, []any{i, "item", qty})
	}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: listed
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id},
     columns: [{source: name, type: text}, {source: qty, type: bigint}],
     validation: [{name: positive qty, column: qty, op: gt, value: "0"}]}
`)
	copyAll(t, e)
	d, status, rules := contentCheck(t, e, "items")
	if status != model.ValidationPassed {
		t.Fatalf("status: want model.ValidationPassed; a faithful copy: %s %+v", status, d)
	}
	if d.Missing.Count+d.Extra.Count+d.Different.Count != 0 {
		t.Fatalf("d.Missing.Count+d.Extra.Count+d.Different.Count = %v, want 0; a faithful copy: %s %+v",
			d.Missing.Count+d.Extra.Count+d.Different.Count, status, d)
	}
	if diff := cmp.Diff(map[string]any{"severity": "error", "violations": float64(2), "keys": []any{"3", "7"}}, rules["positive qty"]); diff != "" {
		t.Errorf("rule details (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	for _, q := range []string{
		`DELETE FROM public.items WHERE id = (SELECT destination_id FROM migration_mappings WHERE source_id = '2')`,
		`UPDATE public.items SET name = 'changed' WHERE id = (SELECT destination_id FROM migration_mappings WHERE source_id = '4')`,
		`INSERT INTO public.items (id, name, qty) VALUES ('00000000-0000-0000-0000-00000000000a', 'foreign', 1)`,
	} {
		if _, err := e.Pool().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	src := e.Spec().Sources["legacy"].Path
	if err := execSQLite(ctx, src, `DELETE FROM item WHERE id = 5`); err != nil {
		t.Fatal(err)
	}
	d, status, _ = contentCheck(t, e, "items")
	got := map[string]any{"status": status, "missing": d.Missing, "extra": d.Extra, "different": d.Different.listedKeys,
		"columns": d.Different.Columns}
	want := map[string]any{"status": model.ValidationFailed, "missing": listedKeys{Count: 1, Keys: []string{"2"}},
		"extra":     listedKeys{Count: 2, Keys: []string{"5", "row 00000000-0000-0000-0000-00000000000a (not placed by this migration)"}},
		"different": listedKeys{Count: 1, Keys: []string{"4"}}, "columns": map[string]int64{"name": 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("content check (-want +got):\n%s", diff)
	}
}

// TestLossyConversionCannotPassValidation: a conversion that loses milliseconds (the float
// division epochs used to go through), put in the path the copy and the transformation share,
// copies 12:00:00.122999 for 1727784000123; the validation reads the source value itself and
// finds every such row.
func TestLossyConversionCannotPassValidation(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "event", PK: true, Columns: []string{"id", "at"}, Types: []string{"INTEGER", "INTEGER"}}
	for i := int64(1); i <= 5; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, 1727784000000 + i*123})
	}
	testHookEpoch = func(n int64) time.Time {
		f := float64(n) / 1000
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC().Truncate(time.Microsecond) // as the copy once did
	}
	t.Cleanup(func() { testHookEpoch = nil })
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: lossy
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: events, source_table: event, target_table: events, key: {source: id, target: id, mode: keep, type: bigint},
     columns: [{source: at, type: timestamptz}]}
`)
	copyAll(t, e)
	d, status, _ := contentCheck(t, e, "events")
	if status != model.ValidationFailed {
		t.Fatalf("status: want model.ValidationFailed; a lossy conversion passed the content check: %s %+v",
			status, d)
	}
	if d.Different.Count == 0 {
		t.Fatalf("d.Different.Count = %v, want != 0; a lossy conversion passed the content check: %s %+v",
			d.Different.Count, status, d)
	}
	if d.Different.Columns["at"] != d.Different.Count {
		t.Fatalf("d.Different.Columns[\"at\"] = %v, want %v (d.Different.Count); a lossy conversion passed the content check: %s %+v",
			d.Different.Columns["at"], d.Different.Count, status, d)
	}
}

// execSQLite runs statements on the SQLite file at path.
func execSQLite(ctx context.Context, path, stmts string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmts)
	return err
}

// TestCompletenessFindsLostMappingsAndRows: the completeness check counts mappings from the
// blocks' counts; a mapping lost (forgotten while its source row stays) leaves a source row
// unaccounted for, and a target row deleted leaves a mapping without its row: both fail it.
func TestCompletenessFindsLostMappingsAndRows(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= 5; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, "item"})
	}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: counts
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id}, columns: [{source: name, type: text}]}
`)
	copyAll(t, e)
	completeness := func() map[string]any {
		vs, err := e.Validate(ctxT(t), "items")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			var c struct{ Check string }
			_ = json.Unmarshal(v.ValidationCriteria, &c)
			if c.Check == "counts" {
				var d map[string]any
				_ = json.Unmarshal(v.IssueDetails, &d)
				return map[string]any{"status": v.Status, "mapped": d["mapped"], "unaccounted": d["unaccounted"],
					"missing": d["mapped_missing_in_target"]}
			}
		}
		t.Fatal("no counts check")
		return nil
	}
	probes := 0
	testHookMappingProbe = func() { probes++ }
	t.Cleanup(func() { testHookMappingProbe = nil })
	if diff := cmp.Diff(map[string]any{"status": model.ValidationPassed, "mapped": float64(5), "unaccounted": nil,
		"missing": nil}, completeness()); diff != "" {
		t.Errorf("a faithful copy (-want +got):\n%s", diff)
	}
	if probes != 0 {
		t.Errorf("probes = %d for a faithful copy, want 0 (the key sums agree)", probes)
	}
	ctx := context.Background()
	exec := func(qs ...string) {
		for _, q := range qs {
			if _, err := e.Pool().Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A row the migration did not place: every mapping still has its row (counted by probes).
	exec(`INSERT INTO public.items (id, name) VALUES (gen_random_uuid(), 'stray')`)
	if diff := cmp.Diff(map[string]any{"status": model.ValidationPassed, "mapped": float64(5), "unaccounted": nil,
		"missing": nil}, completeness()); diff != "" {
		t.Errorf("a stray target row (-want +got):\n%s", diff)
	}
	if probes != 1 {
		t.Errorf("probes = %d after a stray target row, want 1", probes)
	}
	exec(`DELETE FROM public.items WHERE name = 'stray'`)
	// As many mappings as target rows, but not the same keys: the counts alone would agree.
	exec(`INSERT INTO migration_mapping_forgotten (block_id, source_id) SELECT id, '2' FROM migration_mapping_blocks`,
		`DELETE FROM public.items WHERE id = (SELECT destination_id FROM migration_mappings WHERE source_id = '4')`)
	if diff := cmp.Diff(map[string]any{"status": model.ValidationFailed, "mapped": float64(4), "unaccounted": float64(1),
		"missing": float64(1)}, completeness()); diff != "" {
		t.Errorf("a lost mapping and a deleted row (-want +got):\n%s", diff)
	}
	if probes != 2 {
		t.Errorf("probes = %d after a lost mapping and a deleted row, want 2", probes)
	}
}
