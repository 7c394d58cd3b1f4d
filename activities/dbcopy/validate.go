package dbcopy

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// maxIssueSamples bounds the examples kept in issue_details.
const maxIssueSamples = 20

// Validate proves an entity's copy and records each check in data_validation_results:
// completeness (source rows = loaded + quarantined, every mapping has its target row), a full
// content check (per-row hashes over the mapped columns, compared per key range and drilled
// into on mismatch), referential integrity of reference columns in the target, the spec's
// business rules, the application's insert (ready.go) and query timings (performance.go).
func (e *Engine) Validate(ctx context.Context, entity string) ([]store.ValidationResult, error) {
	p, err := e.plan(ctx, entity)
	if err != nil {
		return nil, err
	}
	var out []store.ValidationResult
	for _, check := range []func(context.Context, *entityPlan) (store.ValidationResult, bool, error){
		e.checkCompleteness, e.checkContent, e.checkReferences, e.checkRules, e.checkAppInsert, e.checkPerformance,
	} {
		start := time.Now()
		v, ok, err := check(ctx, p)
		if err != nil {
			return out, fmt.Errorf("validate %s: %w", entity, err)
		}
		if !ok {
			continue
		}
		v.MigrationID, v.EntityName = e.opt.MigrationID, entity
		v.ExecutionDurationMS = time.Since(start).Milliseconds()
		v.IssuesFound = min(v.IssuesFound, v.RecordsValidated)
		if v.Status == "" {
			v.Status = model.ValidationPassed
			if v.IssuesFound > 0 {
				v.Status = model.ValidationFailed
			}
		}
		if v.Status != model.ValidationPassed && len(v.IssueDetails) == 0 {
			v.IssueDetails = mustJSON(map[string]any{"issues": v.IssuesFound})
		}
		if err := e.ledger.RecordValidation(ctx, v); err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (e *Engine) checkCompleteness(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	src, err := p.src.Count(ctx, p.ent.SourceTable, p.where...)
	if err != nil {
		return store.ValidationResult{}, false, err
	}
	var mapped, failed int64
	err = e.pool.QueryRow(ctx, `SELECT `+mappedCount+`,
		(SELECT `+quarantinedRows+` FROM migration_errors WHERE entity_status_id = $3 AND NOT is_resolved)`,
		e.opt.MigrationID, p.ent.SourceTable, p.statusID).Scan(&mapped, &failed)
	if err != nil {
		return store.ValidationResult{}, false, err
	}
	present, err := e.mappedInTarget(ctx, p)
	if err != nil {
		return store.ValidationResult{}, false, err
	}
	unaccounted := src - mapped - failed
	missing := mapped - present
	// Quarantined rows are missing from the target: the check passes only without them, and
	// warns (naming the budget or the acceptance) when the migration may complete with them.
	q, err := e.quarantined(ctx)
	if err != nil {
		return store.ValidationResult{}, false, err
	}
	v := store.ValidationResult{ValidationType: model.ValidationCompleteness, RecordsValidated: src,
		IssuesFound: abs(unaccounted) + missing + failed,
		ValidationCriteria: mustJSON(map[string]any{"check": "counts",
			"rule": "source rows = mapped rows + quarantined rows; every mapping has its target row; " +
				"quarantined rows are missing (allowed only by error_budget or an acceptance)"})}
	details := map[string]any{"source_rows": src, "mapped": mapped, "quarantined": failed}
	switch {
	case unaccounted != 0 || missing > 0:
		v.Status = model.ValidationFailed
		details["in_target"], details["unaccounted"], details["mapped_missing_in_target"] = present, unaccounted, missing
	case failed > 0 && q.allowed():
		v.Status = model.ValidationWarning
	case failed > 0:
		v.Status = model.ValidationFailed
	}
	if failed > 0 {
		details["missing_from_target"] = failed
		q.details(details)
	}
	v.IssueDetails = mustJSON(details)
	return v, true, nil
}

// quarantineAllowed reports whether a validation result is the warning of a completeness
// check whose quarantined rows the error budget or an acceptance allows: it does not stop the
// migration (other warnings do unless allow_warnings).
func quarantineAllowed(v store.ValidationResult) bool {
	return v.ValidationType == model.ValidationCompleteness && v.Status == model.ValidationWarning
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// maxListedKeys bounds the keys a validation lists of each kind (its counts count them all).
const maxListedKeys = 20

// checkContent compares every source row (as the row filter selects it, quarantined keys
// aside) with its target row, value by value against what the source value says (verify.go),
// and finds the target rows no source row accounts for (a source row deleted since, a row
// another writer put there). It lists the first keys of each kind with their counts.
func (e *Engine) checkContent(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationCompleteness,
		ValidationCriteria: mustJSON(map[string]any{"check": "content", "columns": p.cols,
			"method": "every source row against its target row, each value compared with what the source value says " +
				"under the column's rule (not through the copy's conversion); target rows without a source row counted " +
				"and listed; every row, no sampling"})}
	errored, err := e.erroredKeys(ctx, p)
	if err != nil {
		return v, false, err
	}
	query, err := e.contentQuery(ctx, p)
	if err != nil {
		return v, false, err
	}
	var total comparison
	var missing, changed, broken int64
	pages, stop := e.readAhead(ctx, p)
	defer stop()
	for pg := range pages {
		if pg.err != nil {
			return v, false, pg.err
		}
		c, err := e.compareRows(ctx, p, query, pg.rows, nil, errored)
		if err != nil {
			return v, false, err
		}
		missing, changed, broken = missing+int64(len(c.missing)), changed+int64(len(c.changed)), broken+int64(len(c.broken))
		total.add(c, maxListedKeys)
	}
	var inTarget int64
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM "+p.target).Scan(&inTarget); err != nil {
		return v, false, err
	}
	extra := max(inTarget-total.matched, 0)
	var extraKeys []string
	if extra > 0 {
		if extraKeys, err = e.extraRows(ctx, p, errored, maxListedKeys); err != nil {
			return v, false, err
		}
	}
	v.RecordsValidated = total.validated + extra
	v.IssuesFound = missing + changed + broken + extra
	listed := func(n int64, keys []string) map[string]any {
		return map[string]any{"count": n, "keys": orEmptyList(keys)}
	}
	different := listed(changed, total.changed)
	different["columns"] = total.columns
	v.IssueDetails = mustJSON(map[string]any{"missing": listed(missing, total.missing), "extra": listed(extra, extraKeys),
		"different": different, "untransformable": listed(broken, total.broken), "samples": total.samples,
		"target_rows": inTarget, "skipped_quarantined_keys": len(errored)})
	return v, true, nil
}

// readAhead reads the entity's source rows (as the row filter selects them) page after page
// in key order, one page ahead of the caller: the content check compares a page with the
// target while the next one is read. A page with err is the last; stop ends the reading.
func (e *Engine) readAhead(ctx context.Context, p *entityPlan) (pages <-chan page, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan page, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		q := p.query()
		for {
			q.Limit = p.pageLimit() // bounded by bytes (maxPageBytes) once a page is measured
			rows, err := p.src.Read(ctx, q)
			if err == nil && len(rows) == 0 {
				return
			}
			p.measure(rows)
			select {
			case ch <- page{rows: rows, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(rows) < q.Limit {
				return
			}
			q.After = p.nextAfter(rows[len(rows)-1])
		}
	}()
	return ch, func() { cancel(); <-done }
}

func orEmptyList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// extraRows lists (at most n) target rows no source row accounts for: their legacy key is not
// in the source (under the row filter) or is quarantined, or (UUID keys) no mapping of this
// migration placed them.
func (e *Engine) extraRows(ctx context.Context, p *entityPlan, errored map[string]bool, n int) ([]string, error) {
	key := spec.QuoteIdent(p.ent.Key.Target)
	q, args := fmt.Sprintf(`SELECT t.%s::text, t.%s::text FROM %s t`, key, key, p.target), []any(nil)
	if p.ent.Key.Mode == spec.KeyModeUUID {
		q = fmt.Sprintf(`SELECT t.%s::text, m.source_id FROM %s t LEFT JOIN migration_mappings m
			ON m.migration_id = $1 AND m.source_table = $2 AND m.destination_id = t.%s`, key, p.target, key)
		args = []any{e.opt.MigrationID, p.ent.SourceTable}
	}
	rows, err := e.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("target rows of %s: %w", p.ent.Name, err)
	}
	defer rows.Close()
	var out []string
	type cand struct{ id, legacy string }
	var batch []cand
	flush := func() error {
		var in []any
		for _, c := range batch {
			if c.legacy == "" || errored[c.legacy] {
				continue
			}
			if v, err := p.keyArg(c.legacy); err == nil {
				in = append(in, v)
			}
		}
		present := map[string]bool{}
		if len(in) > 0 {
			sq := p.query()
			sq.Columns, sq.In = p.readCols[:p.nkey], in
			srcRows, err := p.src.Read(ctx, sq)
			if err != nil {
				return err
			}
			for _, r := range srcRows {
				k, _ := p.rowKey(r)
				present[k] = true
			}
		}
		for _, c := range batch {
			switch {
			case len(out) >= n:
			case c.legacy == "":
				out = append(out, "row "+c.id+" (not placed by this migration)")
			case !present[c.legacy] || errored[c.legacy]:
				out = append(out, c.legacy)
			}
		}
		batch = batch[:0]
		return nil
	}
	for rows.Next() && len(out) < n {
		var id string
		var legacy *string
		if err := rows.Scan(&id, &legacy); err != nil {
			return nil, err
		}
		c := cand{id: id}
		if legacy != nil {
			c.legacy = *legacy
		}
		if batch = append(batch, c); len(batch) == 500 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func appendSample(s []string, x string) []string {
	if len(s) < maxIssueSamples {
		return append(s, x)
	}
	return s
}

// erroredKeys are the legacy keys with unresolved errors (not expected in the target).
func (e *Engine) erroredKeys(ctx context.Context, p *entityPlan, codes ...string) (map[string]bool, error) {
	rows, err := e.pool.Query(ctx, `SELECT DISTINCT source_record_id FROM migration_errors
		WHERE entity_status_id = $1 AND NOT is_resolved AND source_record_id IS NOT NULL
		AND (coalesce(cardinality($2::text[]), 0) = 0 OR error_code = ANY($2))`, p.statusID, codes)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out[k] = true
	}
	return out, rows.Err()
}

func (e *Engine) checkRules(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationBusinessRule}
	if len(p.ent.Validation) == 0 {
		return v, false, nil
	}
	types := entityTypes(p.ent)
	var criteria []string
	details := map[string]any{}
	var errs, warns int64
	for _, r := range p.ent.Validation {
		pred := ruleSQL(r, types[r.Column])
		viol := "(" + pred + ") IS NOT TRUE"
		if r.Op != "not_null" {
			viol = "(" + pred + ") IS FALSE" // NULL passes, as in a CHECK constraint
		}
		var n, bad int64
		if err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE %s) FROM %s`, viol, p.target)).
			Scan(&n, &bad); err != nil {
			return v, false, fmt.Errorf("rule %s: %w", r.Label(), err)
		}
		v.RecordsValidated = max(v.RecordsValidated, n)
		criteria = append(criteria, r.Label())
		d := map[string]any{"violations": bad, "severity": orDefault(r.Severity, "error")}
		if bad > 0 {
			keys, err := e.violatingKeys(ctx, p, viol, maxListedKeys)
			if err != nil {
				return v, false, fmt.Errorf("rule %s: %w", r.Label(), err)
			}
			d["keys"] = keys
		}
		details[r.Label()] = d
		if r.Severity == "warning" {
			warns += bad
		} else {
			errs += bad
		}
	}
	v.IssuesFound = errs + warns
	switch {
	case errs > 0:
		v.Status = model.ValidationFailed
	case warns > 0:
		v.Status = model.ValidationWarning
	default:
		v.Status = model.ValidationPassed
	}
	v.ValidationCriteria = mustJSON(map[string]any{"check": "business rules", "rules": criteria})
	v.IssueDetails = mustJSON(details)
	return v, true, nil
}

// violatingKeys are the legacy keys of (at most n) target rows matching the predicate viol.
func (e *Engine) violatingKeys(ctx context.Context, p *entityPlan, viol string, n int) ([]string, error) {
	key := spec.QuoteIdent(p.ent.Key.Target)
	rows, err := e.pool.Query(ctx, fmt.Sprintf(`SELECT %s::text FROM %s WHERE %s ORDER BY 1 LIMIT %d`, key, p.target, viol, n))
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || p.ent.Key.Mode != spec.KeyModeUUID || len(ids) == 0 {
		return ids, err
	}
	// A UUID key names no row an operator knows: its mapping gives the legacy key.
	rows, err = e.pool.Query(ctx, `SELECT destination_id::text, source_id FROM migration_mappings
		WHERE migration_id = $1 AND source_table = $2 AND destination_id = ANY($3::uuid[])`, e.opt.MigrationID, p.ent.SourceTable, ids)
	if err != nil {
		return nil, err
	}
	legacy := map[string]string{}
	for rows.Next() {
		var id, k string
		if err := rows.Scan(&id, &k); err != nil {
			rows.Close()
			return nil, err
		}
		legacy[id] = k
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = legacy[id]
		if out[i] == "" {
			out[i] = "row " + id + " (not placed by this migration)"
		}
	}
	sort.Strings(out)
	return out, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Passed reports whether results allow completing: no failure, and warnings only if allowed
// (a performance warning is a measurement and never stops a migration).
func Passed(vs []store.ValidationResult, allowWarnings bool) bool {
	for _, v := range vs {
		if v.ValidationType == model.ValidationPerformance {
			continue
		}
		if v.Status == model.ValidationFailed || (v.Status == model.ValidationWarning && !allowWarnings && !quarantineAllowed(v)) {
			return false
		}
	}
	return true
}
