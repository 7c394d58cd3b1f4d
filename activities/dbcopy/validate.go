package dbcopy

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/activities/dbcopy/spec"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
)

// maxIssueSamples bounds the examples kept in issue_details.
const maxIssueSamples = 20

// Validate proves an entity's copy and records each check in data_validation_results:
// completeness (source rows = loaded + quarantined, every mapping has its target row), a full
// content check (per-row hashes over the mapped columns, compared per key range and drilled
// into on mismatch), referential integrity of reference columns in the target, and the spec's
// business rules.
func (e *Engine) Validate(ctx context.Context, entity string) ([]store.ValidationResult, error) {
	p, err := e.plan(ctx, entity)
	if err != nil {
		return nil, err
	}
	var out []store.ValidationResult
	for _, check := range []func(context.Context, *entityPlan) (store.ValidationResult, bool, error){
		e.checkCompleteness, e.checkContent, e.checkReferences, e.checkRules,
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
	src, err := p.src.Count(ctx, p.ent.SourceTable)
	if err != nil {
		return store.ValidationResult{}, false, err
	}
	var mapped, present, failed int64
	keyCmp := "t." + spec.QuoteIdent(p.ent.Key.Target) + " = m.destination_id"
	if p.ent.Key.Mode == spec.KeyModeKeep {
		keyCmp = "t." + spec.QuoteIdent(p.ent.Key.Target) + "::text = m.source_id"
	}
	err = e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT
		(SELECT count(*) FROM migration_mappings WHERE migration_id = $1 AND source_table = $2),
		(SELECT count(*) FROM migration_mappings m JOIN %s t ON %s WHERE m.migration_id = $1 AND m.source_table = $2),
		(SELECT count(DISTINCT source_record_id) + count(*) FILTER (WHERE source_record_id IS NULL)
		   FROM migration_errors WHERE entity_status_id = $3 AND NOT is_resolved)`, p.target, keyCmp),
		e.opt.MigrationID, p.ent.SourceTable, p.statusID).Scan(&mapped, &present, &failed)
	if err != nil {
		return store.ValidationResult{}, false, err
	}
	unaccounted := src - mapped - failed
	missing := mapped - present
	v := store.ValidationResult{ValidationType: model.ValidationCompleteness, RecordsValidated: src,
		IssuesFound: abs(unaccounted) + missing,
		ValidationCriteria: mustJSON(map[string]any{"check": "counts",
			"rule": "source rows = mapped rows + quarantined rows; every mapping has its target row"})}
	if v.IssuesFound > 0 {
		v.IssueDetails = mustJSON(map[string]any{"source_rows": src, "mapped": mapped, "in_target": present,
			"quarantined": failed, "unaccounted": unaccounted, "mapped_missing_in_target": missing})
	} else {
		v.IssueDetails = mustJSON(map[string]any{"source_rows": src, "mapped": mapped, "quarantined": failed})
	}
	return v, true, nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// rowHash hashes a row's target values canonically.
func rowHash(types []string, vals []any) uint64 {
	h := fnv.New64a()
	for i, v := range vals {
		h.Write([]byte(canon(types[i], v)))
		h.Write([]byte{0x1f})
	}
	return h.Sum64()
}

func (e *Engine) checkContent(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationCompleteness,
		ValidationCriteria: mustJSON(map[string]any{"check": "content_hash", "columns": p.cols,
			"method": "FNV-64a per row over canonical column values; sums compared per key range of one batch, rows compared on mismatch; every row, no sampling"})}
	errored, err := e.erroredKeys(ctx, p)
	if err != nil {
		return v, false, err
	}
	sel := make([]string, len(p.cols))
	for i, c := range p.cols {
		sel[i] = spec.QuoteIdent(c)
		switch p.types[i] {
		case "numeric", "json", "jsonb":
			sel[i] += "::text"
		}
	}
	keyCol := spec.QuoteIdent(p.ent.Key.Target)
	targetQ := fmt.Sprintf(`SELECT %s FROM %s WHERE %s = ANY($1::%s[])`, strings.Join(sel, ", "), p.target, keyCol, p.types[0])
	var samples []string
	var ranges, drilled int
	q := source.Query{Table: p.ent.SourceTable, Columns: p.readCols, Key: p.ent.Key.Source, Limit: p.ent.BatchSize}
	for {
		rows, err := p.src.Read(ctx, q)
		if err != nil {
			return v, false, err
		}
		if len(rows) == 0 {
			break
		}
		want := map[string]uint64{}
		legacy := map[string]string{} // target key → legacy key, for readable samples
		var keys []any
		var sum uint64
		for _, r := range rows {
			k, _ := keyText(r[0])
			if errored[k] {
				continue
			}
			pr, rerr := e.transform(p, r)
			if rerr != nil {
				v.IssuesFound++
				samples = appendSample(samples, fmt.Sprintf("key %s: fails to transform (%v) but is not quarantined", k, rerr))
				continue
			}
			ck := canon(p.types[0], pr.values[0])
			if _, dup := want[ck]; dup {
				continue
			}
			h := rowHash(p.types, pr.values)
			want[ck] = h
			legacy[ck] = k
			sum += h
			keys = append(keys, pr.values[0])
		}
		v.RecordsValidated += int64(len(want))
		ranges++
		got := map[string]uint64{}
		var gotSum uint64
		if len(keys) > 0 {
			trs, err := e.pool.Query(ctx, targetQ, keys)
			if err != nil {
				return v, false, err
			}
			for trs.Next() {
				vals, err := trs.Values()
				if err != nil {
					trs.Close()
					return v, false, err
				}
				h := rowHash(p.types, vals)
				got[canon(p.types[0], vals[0])] = h
				gotSum += h
			}
			trs.Close()
			if err := trs.Err(); err != nil {
				return v, false, err
			}
		}
		if gotSum != sum || len(got) != len(want) {
			drilled++
			for k, h := range want {
				g, ok := got[k]
				switch {
				case !ok:
					v.IssuesFound++
					samples = appendSample(samples, "key "+legacy[k]+": missing in target")
				case g != h:
					v.IssuesFound++
					samples = appendSample(samples, "key "+legacy[k]+": content differs")
				}
			}
		}
		if len(rows) < q.Limit {
			break
		}
		q.After = rows[len(rows)-1][0]
		if s, ok := q.After.(string); ok && p.keyInt {
			q.After, _ = source.KeyValue(s, true)
		}
	}
	v.IssueDetails = mustJSON(map[string]any{"key_ranges": ranges, "ranges_drilled": drilled, "samples": samples,
		"skipped_quarantined_keys": len(errored)})
	return v, true, nil
}

func appendSample(s []string, x string) []string {
	if len(s) < maxIssueSamples {
		return append(s, x)
	}
	return s
}

// erroredKeys are the legacy keys with unresolved errors (not expected in the target).
func (e *Engine) erroredKeys(ctx context.Context, p *entityPlan) (map[string]bool, error) {
	rows, err := e.pool.Query(ctx, `SELECT DISTINCT source_record_id FROM migration_errors
		WHERE entity_status_id = $1 AND NOT is_resolved AND source_record_id IS NOT NULL`, p.statusID)
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

func (e *Engine) checkReferences(ctx context.Context, p *entityPlan) (store.ValidationResult, bool, error) {
	v := store.ValidationResult{ValidationType: model.ValidationReferential}
	var checked []string
	details := map[string]any{}
	for _, b := range p.build {
		if b.parent == nil {
			continue
		}
		col := spec.QuoteIdent(b.column)
		parent := spec.QuoteQualified(e.spec.Target.Schema, b.parent.TargetTable)
		var n, dangling int64
		err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FILTER (WHERE c.%[1]s IS NOT NULL),
			count(*) FILTER (WHERE c.%[1]s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %[2]s p WHERE p.%[3]s = c.%[1]s))
			FROM %[4]s c`, col, parent, spec.QuoteIdent(b.parent.Key.Target), p.target)).Scan(&n, &dangling)
		if err != nil {
			return v, false, err
		}
		checked = append(checked, b.column+" → "+b.parent.TargetTable)
		v.RecordsValidated += n
		v.IssuesFound += dangling
		details[b.column] = map[string]int64{"references": n, "dangling": dangling}
	}
	if len(checked) == 0 {
		return v, false, nil
	}
	v.ValidationCriteria = mustJSON(map[string]any{"check": "every reference resolves to a parent row", "references": checked})
	v.IssueDetails = mustJSON(details)
	return v, true, nil
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
		details[r.Label()] = map[string]any{"violations": bad, "severity": orDefault(r.Severity, "error")}
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

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Passed reports whether results allow completing: no failure, and warnings only if allowed.
func Passed(vs []store.ValidationResult, allowWarnings bool) bool {
	for _, v := range vs {
		if v.Status == model.ValidationFailed || (v.Status == model.ValidationWarning && !allowWarnings) {
			return false
		}
	}
	return true
}
