package dbcopy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// With change capture, the cutover freeze does not validate whole tables. The full content
// check (every row's hash under the mapping) runs during catch-up, before the freeze
// (ValidateBeforeFreeze); it notes the last drain committed when it started. Inside the freeze
// ValidateChanged checks the counts and only the rows written by a drain after that one, plus
// the rows the full check found different while the source was still moving (a change not
// drained yet looks like a difference; a real one is still different inside the freeze).

// lastDrain is the number of the last drain committed: taken under the drains' advisory lock
// (exclusive, for an instant), so no drain is between its number and its commit.
func (e *Engine) lastDrain(ctx context.Context) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, e.drainLock()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM change_drain_seq`).Scan(&n)
	})
	return n, err
}

// contentSelect is the target columns as the content check reads them.
func contentSelect(p *entityPlan, prefix string) string {
	sel := make([]string, len(p.cols))
	for i, c := range p.cols {
		sel[i] = prefix + spec.QuoteIdent(c)
		switch p.types[i] {
		case "numeric", "json", "jsonb":
			sel[i] += "::text"
		}
	}
	return strings.Join(sel, ", ")
}

// targetKeyValue is a legacy key as the target key column holds it.
func targetKeyValue(p *entityPlan, k string) any {
	if p.ent.Key.Mode == spec.KeyModeUUID {
		return [16]byte(p.keyUUID(k))
	}
	v, rerr := convert(k, p.types[0], castOpts{})
	if rerr != nil {
		return k
	}
	return v
}

// DeltaValidation is a validation that covers part of an entity.
type DeltaValidation struct {
	Results []store.ValidationResult
	// Since is the last drain committed when the full check started (ValidateBeforeFreeze).
	Since int64 `json:"since"`
	// Deferred counts rows found different during catch-up, re-checked inside the freeze.
	Deferred int64 `json:"deferred"`
}

// ValidateBeforeFreeze compares every source row with the target by hash (as the full content
// check does) while catch-up goes on. Rows found different are noted for the freeze's check
// instead of failing: a change not drained yet looks the same as a defect until then.
func (e *Engine) ValidateBeforeFreeze(ctx context.Context, entity string) (DeltaValidation, error) {
	var out DeltaValidation
	p, err := e.plan(ctx, entity)
	if err != nil {
		return out, err
	}
	start := time.Now()
	if out.Since, err = e.lastDrain(ctx); err != nil {
		return out, err
	}
	// The keys drains wrote up to now are compared below as they then are; only later drains'
	// keys are read again inside the freeze (changedSince), so the notes of these go.
	if _, err := e.pool.Exec(ctx, `DELETE FROM changed_key_sets WHERE migration_id = $1 AND entity_name = $2 AND drain <= $3`,
		e.opt.MigrationID, entity, out.Since); err != nil {
		return out, fmt.Errorf("forget keys changed before the full check: %w", err)
	}
	errored, err := e.erroredKeys(ctx, p)
	if err != nil {
		return out, err
	}
	query, err := e.contentQuery(ctx, p)
	if err != nil {
		return out, err
	}
	var total comparison
	q := p.query()
	q.Limit = p.ent.BatchSize
	for {
		rows, err := p.src.Read(ctx, q)
		if err != nil {
			return out, err
		}
		if len(rows) == 0 {
			break
		}
		c, err := e.compareRows(ctx, p, query, rows, nil, errored)
		if err != nil {
			return out, err
		}
		total.validated += c.validated
		total.differ = append(total.differ, c.differ...)
		for _, s := range c.samples {
			total.samples = appendSample(total.samples, s)
		}
		if len(rows) < q.Limit {
			break
		}
		q.After = p.nextAfter(rows[len(rows)-1])
	}
	if len(total.differ) > 0 {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			var mark int64
			if err := tx.QueryRow(ctx, `SELECT nextval('change_drain_seq')`).Scan(&mark); err != nil {
				return err
			}
			return e.noteChanged(ctx, tx, p, mark, total.differ)
		})
		if err != nil {
			return out, fmt.Errorf("note rows to re-check: %w", err)
		}
	}
	out.Deferred = int64(len(total.differ))
	v := store.ValidationResult{MigrationID: e.opt.MigrationID, EntityName: entity, ValidationType: model.ValidationCompleteness,
		Status: model.ValidationPassed, RecordsValidated: total.validated,
		ValidationCriteria: mustJSON(map[string]any{"check": "content_hash_before_freeze", "columns": p.cols,
			"method": "every row against its target row, each value compared with what the source value says, while " +
				"catch-up runs; rows that differ " +
				"are re-checked inside the cutover freeze (a change not drained yet differs until then)"}),
		IssueDetails:        mustJSON(map[string]any{"deferred_to_freeze": out.Deferred, "samples": total.samples, "since_drain": out.Since}),
		ExecutionDurationMS: time.Since(start).Milliseconds()}
	if err := e.ledger.RecordValidation(ctx, v); err != nil {
		return out, err
	}
	out.Results = []store.ValidationResult{v}
	// Query timings here, outside the freeze (they read whole tables).
	start = time.Now()
	perf, ok, err := e.checkPerformance(ctx, p)
	if err != nil {
		return out, err
	}
	if ok {
		perf.MigrationID, perf.EntityName = e.opt.MigrationID, entity
		perf.ExecutionDurationMS = time.Since(start).Milliseconds()
		if err := e.ledger.RecordValidation(ctx, perf); err != nil {
			return out, err
		}
		out.Results = append(out.Results, perf)
	}
	return out, nil
}

// ValidateChanged is the validation inside the cutover freeze, after the last drain: counts
// (source rows = mapped + quarantined), the content, references and business rules of the
// rows a drain wrote after drain `since` (and the rows ValidateBeforeFreeze deferred), then
// the application-insert check (ready.go: sequences moved past what the last drain brought,
// partitions, one rolled-back insert). Its cost follows the changes, not the table.
func (e *Engine) ValidateChanged(ctx context.Context, entity string, since int64) ([]store.ValidationResult, error) {
	p, err := e.plan(ctx, entity)
	if err != nil {
		return nil, err
	}
	var out []store.ValidationResult
	record := func(v store.ValidationResult, start time.Time) error {
		v.MigrationID, v.EntityName = e.opt.MigrationID, entity
		v.ExecutionDurationMS = time.Since(start).Milliseconds()
		if v.Status == "" {
			v.Status = model.ValidationPassed
			if v.IssuesFound > 0 {
				v.Status = model.ValidationFailed
			}
		}
		if err := e.ledger.RecordValidation(ctx, v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}
	start := time.Now()
	counts, err := e.checkCounts(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := record(counts, start); err != nil {
		return nil, err
	}
	start = time.Now()
	keys, err := e.changedSince(ctx, p, since)
	if err != nil {
		return nil, err
	}
	errored, err := e.erroredKeys(ctx, p)
	if err != nil {
		return nil, err
	}
	query, err := e.contentQuery(ctx, p)
	if err != nil {
		return nil, err
	}
	total := comparison{}
	for i := 0; i < len(keys); i += applyChunk {
		part := keys[i:min(i+applyChunk, len(keys))]
		vals := make([]any, len(part))
		for j, k := range part {
			vals[j] = p.keyValue(k)
		}
		q := p.query()
		q.In = vals
		rows, err := p.src.Read(ctx, q)
		if err != nil {
			return nil, err
		}
		found := map[string]bool{}
		for _, r := range rows {
			k, _ := p.rowKey(r)
			found[k] = true
		}
		var gone []string
		for _, k := range part {
			if !found[k] {
				gone = append(gone, k)
			}
		}
		c, err := e.compareRows(ctx, p, query, rows, gone, errored)
		if err != nil {
			return nil, err
		}
		total.validated += c.validated
		total.differ = append(total.differ, c.differ...)
		for _, s := range c.samples {
			total.samples = appendSample(total.samples, s)
		}
	}
	content := store.ValidationResult{ValidationType: model.ValidationCompleteness, RecordsValidated: total.validated,
		IssuesFound: int64(len(total.differ)),
		ValidationCriteria: mustJSON(map[string]any{"check": "content_hash_of_changed_rows", "since_drain": since, "columns": p.cols,
			"method": "every row written after the full check started, against its target row, each value compared " +
				"with what the source value says"}),
		IssueDetails: mustJSON(map[string]any{"changed_rows": len(keys), "samples": total.samples})}
	if err := record(content, start); err != nil {
		return nil, err
	}
	start = time.Now()
	rules, ok, err := e.checkRulesOf(ctx, p, keys)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := record(rules, start); err != nil {
			return nil, err
		}
	}
	// The target is made ready for the application here, after the last drain: rows drained
	// since the full check (the application's last inserts) are past any earlier sequence move.
	start = time.Now()
	app, ok, err := e.checkAppInsert(ctx, p)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := record(app, start); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// changedSince lists the legacy keys written by a drain after `since`.
func (e *Engine) changedSince(ctx context.Context, p *entityPlan, since int64) ([]string, error) {
	rows, err := e.pool.Query(ctx, `SELECT DISTINCT k FROM changed_key_sets s, unnest(s.source_ids) AS k
		WHERE s.migration_id = $1 AND s.entity_name = $2 AND s.drain > $3`,
		e.opt.MigrationID, p.ent.Name, since)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// mappedCount counts the mappings of a source table ($1 migration, $2 source table): it reads
// each block's count of mappings and its forgotten ones, not its arrays (schema migration 0024).
const mappedCount = `((SELECT count(*) FROM migration_mapping_rows WHERE migration_id = $1 AND source_table = $2) +
	(SELECT coalesce(sum(mappings), 0) FROM migration_mapping_blocks WHERE migration_id = $1 AND source_table = $2) -
	(SELECT count(*) FROM migration_mapping_forgotten f JOIN migration_mapping_blocks b ON b.id = f.block_id
		WHERE b.migration_id = $1 AND b.source_table = $2))`

// checkCounts is the completeness count: source rows = mapped rows + quarantined rows.
func (e *Engine) checkCounts(ctx context.Context, p *entityPlan) (store.ValidationResult, error) {
	src, err := p.src.Count(ctx, p.ent.SourceTable, p.where...)
	if err != nil {
		return store.ValidationResult{}, err
	}
	var mapped, failed int64
	err = e.pool.QueryRow(ctx, `SELECT `+mappedCount+`,
		(SELECT `+quarantinedRows+` FROM migration_errors WHERE entity_status_id = $3 AND NOT is_resolved)`,
		e.opt.MigrationID, p.ent.SourceTable, p.statusID).Scan(&mapped, &failed)
	if err != nil {
		return store.ValidationResult{}, err
	}
	unaccounted := src - mapped - failed
	return store.ValidationResult{ValidationType: model.ValidationCompleteness, RecordsValidated: src, IssuesFound: abs(unaccounted),
		ValidationCriteria: mustJSON(map[string]any{"check": "counts", "rule": "source rows = mapped rows + quarantined rows"}),
		IssueDetails:       mustJSON(map[string]any{"source_rows": src, "mapped": mapped, "quarantined": failed, "unaccounted": unaccounted})}, nil
}

// checkRulesOf evaluates the entity's business rules and references on the target rows of keys.
func (e *Engine) checkRulesOf(ctx context.Context, p *entityPlan, keys []string) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationBusinessRule}
	types := entityTypes(p.ent)
	var preds, labels []string
	for _, r := range p.ent.Validation {
		pred := ruleSQL(r, types[r.Column])
		viol := "(" + pred + ") IS NOT TRUE"
		if r.Op != "not_null" {
			viol = "(" + pred + ") IS FALSE"
		}
		preds = append(preds, viol)
		labels = append(labels, r.Label())
	}
	for _, b := range p.build {
		if b.parent == nil {
			continue
		}
		col := spec.QuoteIdent(b.column)
		preds = append(preds, fmt.Sprintf(`(t.%[1]s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %[2]s p WHERE p.%[3]s = t.%[1]s))`,
			col, spec.QuoteQualified(e.spec.Target.Schema, b.parent.TargetTable), spec.QuoteIdent(b.parent.Key.Target)))
		labels = append(labels, b.column+" → "+b.parent.TargetTable)
	}
	if len(preds) == 0 {
		return v, false, nil
	}
	// One scan of the changed rows counts every rule's violations.
	counts := make([]string, len(preds))
	for i, pred := range preds {
		counts[i] = fmt.Sprintf("count(*) FILTER (WHERE %s)", pred)
	}
	n := int64(0)
	bads := make([]int64, len(preds))
	dest := []any{&n}
	for i := range bads {
		dest = append(dest, &bads[i])
	}
	if err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), %s FROM %s t WHERE %s`,
		strings.Join(counts, ", "), p.target, "t."+keyMatch(p)), targetKeys(p, keys)).Scan(dest...); err != nil {
		return v, false, fmt.Errorf("rules %s: %w", strings.Join(labels, ", "), err)
	}
	v.RecordsValidated = n
	details := map[string]any{}
	for i, bad := range bads {
		details[labels[i]] = map[string]any{"violations": bad}
		sev := "error"
		if i < len(p.ent.Validation) && p.ent.Validation[i].Severity == "warning" {
			sev = "warning"
			if bad > 0 && v.Status == "" {
				v.Status = model.ValidationWarning
			}
		} else if bad > 0 {
			v.Status = model.ValidationFailed
		}
		details[labels[i]].(map[string]any)["severity"] = sev
		v.IssuesFound += bad
	}
	if v.Status == "" {
		v.Status = model.ValidationPassed
	}
	v.ValidationCriteria = mustJSON(map[string]any{"check": "business rules and references of the changed rows", "rules": labels})
	v.IssueDetails = mustJSON(details)
	return v, true, nil
}
