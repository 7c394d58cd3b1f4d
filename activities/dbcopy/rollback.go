package dbcopy

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// RollbackEntity removes what this migration wrote for an entity: its target rows (found
// through its mappings), the mappings, batches and checkpoints; its errors are resolved as
// rolled back and its status returns to pending with zero counters, so a later run starts
// over. Children must be rolled back first (reverse dependency order). It returns the number of
// target rows deleted. Idempotent.
func (e *Engine) RollbackEntity(ctx context.Context, entity string) (int64, error) {
	ent, ok := e.spec.Entity(entity)
	if !ok {
		return 0, fmt.Errorf("%w: no entity %q", ErrSpec, entity)
	}
	statusID := e.EntityStatusID(entity)
	key := "t." + spec.QuoteIdent(ent.Key.Target)
	match := key + " = m.destination_id"
	if ent.Key.Mode == spec.KeyModeKeep {
		match = key + "::text = m.source_id"
	}
	var deleted int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s t USING migration_mappings m
			WHERE m.migration_id = $1 AND m.source_table = $2 AND %s`, e.qualified(ent.TargetTable), match),
			e.opt.MigrationID, ent.SourceTable)
		if err != nil {
			return fmt.Errorf("delete rows: %w", err)
		}
		deleted = tag.RowsAffected()
		for _, st := range []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM migration_mapping_rows WHERE migration_id = $1 AND source_table = $2`, []any{e.opt.MigrationID, ent.SourceTable}},
			{`DELETE FROM migration_mapping_blocks WHERE migration_id = $1 AND source_table = $2`, []any{e.opt.MigrationID, ent.SourceTable}},
			{`DELETE FROM migration_checkpoints WHERE migration_id = $1 AND entity_name = $2`, []any{e.opt.MigrationID, entity}},
			{`DELETE FROM transformation_counts WHERE migration_id = $1 AND entity_name = $2`, []any{e.opt.MigrationID, entity}},
			{`DELETE FROM batch_processing_status WHERE entity_status_id = $1`, []any{statusID}},
			{`UPDATE migration_errors SET is_resolved = true, resolution_notes = 'rolled back with the migration'
				WHERE entity_status_id = $1 AND NOT is_resolved`, []any{statusID}},
			{`UPDATE entity_migration_status SET status = 'pending', records_processed = 0, records_failed = 0,
				last_processed_id = NULL, throughput_per_second = 0, started_at = NULL, completed_at = NULL WHERE id = $1`, []any{statusID}},
		} {
			if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("roll back %s: %w", entity, err)
	}
	// Indexes dropped for the first load are the table's own: it gets them back, emptied.
	if err := e.restoreIndexes(ctx, entity); err != nil {
		return 0, fmt.Errorf("roll back %s: %w", entity, err)
	}
	return deleted, nil
}

// RetryResult is what re-driving recorded errors did.
type RetryResult struct {
	Entity  string `json:"entity"`
	Retried int    `json:"retried"`
	Loaded  int    `json:"loaded"`
	Failed  int    `json:"failed"`
}

// RetryFailed re-reads the rows behind an entity's unresolved errors and loads them again with
// the current spec (after a fix): rows that now load are upserted and mapped, their errors
// resolved; rows that still fail get their current error. Counters stay true.
func (e *Engine) RetryFailed(ctx context.Context, entity string) (RetryResult, error) {
	return e.retryErrors(ctx, entity)
}

// RetryOrphans re-drives the rows of an entity quarantined for a missing parent (orphan_fk),
// once the parent may have arrived: after the parent's entity finished, at the end of the load
// and after each catch-up pass.
func (e *Engine) RetryOrphans(ctx context.Context, entity string) (RetryResult, error) {
	return e.retryErrors(ctx, entity, codeOrphan)
}

// codeOrphan is the error code of a row whose referenced parent is not in the target.
const codeOrphan = "orphan_fk"

// retryErrors re-drives the rows behind an entity's unresolved errors with one of codes (any
// code when none is given).
func (e *Engine) retryErrors(ctx context.Context, entity string, codes ...string) (RetryResult, error) {
	p, err := e.plan(ctx, entity)
	if err != nil {
		return RetryResult{}, err
	}
	out := RetryResult{Entity: entity}
	keys, err := e.erroredKeys(ctx, p, codes...)
	if err != nil {
		return out, err
	}
	var all []any
	for k := range keys {
		v, err := p.keyArg(k)
		if err != nil {
			continue
		}
		all = append(all, v)
	}
	const chunk = 500
	for start := 0; start < len(all); start += chunk {
		part := all[start:min(start+chunk, len(all))]
		q := p.query()
		q.In = part
		rows, err := p.src.Read(ctx, q)
		if err != nil {
			return out, err
		}
		r, err := e.retryRows(ctx, p, rows)
		if err != nil {
			return out, err
		}
		out.Retried += r.Retried
		out.Loaded += r.Loaded
		out.Failed += r.Failed
	}
	return out, nil
}

func (e *Engine) retryRows(ctx context.Context, p *entityPlan, rows [][]any) (RetryResult, error) {
	var res RetryResult
	var good []prepared
	var bad []failure
	retriedKeys := map[string]bool{}
	for _, r := range rows {
		pr, rerr := e.transform(p, r)
		retriedKeys[pr.key] = true
		if rerr != nil {
			bad = append(bad, failure{pr, rerr})
			continue
		}
		good = append(good, pr)
	}
	good, bad = splitDuplicates(p, good, bad)
	keys := make([]string, 0, len(retriedKeys))
	for k := range retriedKeys {
		keys = append(keys, k)
	}
	res.Retried = len(keys)
	if err := e.ensurePartitions(ctx, p, good); err != nil {
		return res, err
	}
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var before int64
		if err := tx.QueryRow(ctx, `WITH r AS (UPDATE migration_errors SET is_resolved = true,
				resolution_notes = 're-driven by retry_failed'
				WHERE entity_status_id = $1 AND NOT is_resolved AND source_record_id = ANY($2)
				RETURNING source_record_id, error_code, context)
			SELECT `+quarantinedRows+` FROM r`, p.statusID, keys).Scan(&before); err != nil {
			return err
		}
		ok, orphans, err := e.checkParents(ctx, tx, p, good)
		if err != nil {
			return err
		}
		bad = append(bad, orphans...)
		if err := e.createStage(ctx, tx, p); err != nil {
			return err
		}
		inserted := 0
		loaded, dbBad, err := bisect(ctx, tx, ok, func(ctx context.Context, tx pgx.Tx, rows []prepared) error {
			n, err := e.upsertRows(ctx, tx, p, rows)
			inserted += n
			return err
		})
		if err != nil {
			return err
		}
		bad = append(bad, dbBad...)
		if err := e.writeMappings(ctx, tx, p, loaded, true, [16]byte{}); err != nil {
			return err
		}
		if err := e.countChanges(ctx, tx, p, loaded); err != nil {
			return err
		}
		var recovery int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM migration_checkpoints WHERE migration_id = $1 AND entity_name = $2
			AND checkpoint_type = 'error_recovery'`, e.opt.MigrationID, p.ent.Name).Scan(&recovery); err != nil {
			return err
		}
		if err := e.writeErrors(ctx, tx, p, nil, -1, bad); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE entity_migration_status SET records_processed = records_processed + $2,
			records_failed = greatest(records_failed - $3 + $4, 0) WHERE id = $1`,
			p.statusID, inserted, before, len(bad)); err != nil {
			return err
		}
		res.Loaded, res.Failed = len(loaded), len(bad)
		_, err = tx.Exec(ctx, `INSERT INTO migration_checkpoints
			(id, migration_id, entity_name, checkpoint_type, batch_number, records_processed, system_state)
			SELECT $1, $2, $3, 'error_recovery', $4, records_processed, $5 FROM entity_migration_status WHERE id = $6`,
			uuid.New(), e.opt.MigrationID, p.ent.Name, recovery, mustJSON(map[string]any{"retried": res.Retried,
				"loaded": res.Loaded, "failed": res.Failed}), p.statusID)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("retry %s: %w", p.ent.Name, err)
	}
	return res, nil
}
