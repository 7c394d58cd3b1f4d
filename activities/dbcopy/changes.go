package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// entityDelta is what one drain applies to an entity: the source keys whose row is gone, and
// the rows of the other changed keys as they are now — already read (rows: a PostgreSQL
// stream carries them, a SQLite drain read them; or spool, a large SQLite drain's rows on disk)
// or still to read (keys, through the drain's fetch).
type entityDelta struct {
	gone  []any
	keys  []any
	rows  [][]any
	spool *rowSpool
}

// fetchFunc reads the current source rows of keys (the plan's read columns).
type fetchFunc func(ctx context.Context, p *entityPlan, keys []any) ([][]any, error)

// DrainStats is what a drain did.
type DrainStats struct {
	Changes  int64 `json:"changes"`  // change-log rows or stream changes consumed
	Upserted int64 `json:"upserted"` // rows written (new or updated)
	Inserted int64 `json:"inserted"` // of which new in the target
	Deleted  int64 `json:"deleted"`  // target rows deleted (gone in the source)
	Failed   int64 `json:"failed"`   // rows quarantined
	Resolved int64 `json:"resolved"` // earlier quarantined rows now loaded or gone
}

func (s *DrainStats) add(o DrainStats) {
	s.Changes += o.Changes
	s.Upserted += o.Upserted
	s.Inserted += o.Inserted
	s.Deleted += o.Deleted
	s.Failed += o.Failed
	s.Resolved += o.Resolved
}

// applyChunk bounds the rows read, transformed and written at once inside a drain.
const applyChunk = 5000

// applyDeltas writes a drain's changes in tx: the deletions first, children before parents (a
// unique value freed by a deleted row may be taken by a changed one), then the changed rows,
// parents before children. Foreign keys are deferred to the commit, so a parent deleted and
// its child re-pointed by the same drain commit together. Every changed key is noted with the
// drain number (changed_key_sets), for the validation inside the cutover freeze.
func (e *Engine) applyDeltas(ctx context.Context, tx pgx.Tx, drain int64, deltas map[string]*entityDelta,
	fetch fetchFunc) (DrainStats, error) {
	var st DrainStats
	order, err := e.spec.Order()
	if err != nil {
		return st, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	if _, err := tx.Exec(ctx, `SET CONSTRAINTS ALL DEFERRED`); err != nil {
		return st, err
	}
	for i := len(order) - 1; i >= 0; i-- {
		d := deltas[order[i]]
		if d == nil || len(d.gone) == 0 {
			continue
		}
		p, err := e.plan(ctx, order[i])
		if err != nil {
			return st, err
		}
		for start := 0; start < len(d.gone); start += applyChunk {
			s, err := e.deleteGone(ctx, tx, p, drain, d.gone[start:min(start+applyChunk, len(d.gone))])
			if err != nil {
				return st, fmt.Errorf("apply deletions of %s: %w", p.ent.Name, err)
			}
			st.add(s)
		}
	}
	for _, name := range order {
		d := deltas[name]
		if d == nil || (len(d.rows)+len(d.keys) == 0 && d.spool == nil) {
			continue
		}
		p, err := e.plan(ctx, name)
		if err != nil {
			return st, err
		}
		for start := 0; start < len(d.rows); start += applyChunk {
			s, err := e.upsertChanged(ctx, tx, p, drain, d.rows[start:min(start+applyChunk, len(d.rows))])
			if err != nil {
				return st, fmt.Errorf("apply changes of %s: %w", p.ent.Name, err)
			}
			st.add(s)
		}
		if err := e.applySpooled(ctx, tx, p, drain, d.spool, &st); err != nil {
			return st, err
		}
		for start := 0; start < len(d.keys); start += applyChunk {
			rows, err := fetch(ctx, p, d.keys[start:min(start+applyChunk, len(d.keys))])
			if err != nil {
				return st, fmt.Errorf("read changed rows of %s: %w", p.ent.Name, err)
			}
			s, err := e.upsertChanged(ctx, tx, p, drain, rows)
			if err != nil {
				return st, fmt.Errorf("apply changes of %s: %w", p.ent.Name, err)
			}
			st.add(s)
		}
	}
	return st, nil
}

// applySpooled writes the changed rows a large SQLite drain spooled to disk, chunk by chunk.
func (e *Engine) applySpooled(ctx context.Context, tx pgx.Tx, p *entityPlan, drain int64, sp *rowSpool, st *DrainStats) error {
	if sp == nil {
		return nil
	}
	if err := sp.rewind(); err != nil {
		return err
	}
	for {
		rows, err := sp.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s, err := e.upsertChanged(ctx, tx, p, drain, rows)
		if err != nil {
			return fmt.Errorf("apply changes of %s: %w", p.ent.Name, err)
		}
		st.add(s)
	}
}

// targetKeys renders legacy keys as the target key column's values, for `key = ANY($n::T[])`.
func targetKeys(p *entityPlan, texts []string) any {
	if p.ent.Key.Mode == spec.KeyModeUUID {
		out := make([]pgtype.UUID, len(texts)) // not uuid.UUID: see mapblocks.go
		for i, k := range texts {
			out[i] = pgtype.UUID{Bytes: p.keyUUID(k), Valid: true}
		}
		return out
	}
	return texts // cast by PostgreSQL from text
}

func keyTexts(keys []any) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if t, ok := keyText(k); ok && t != "" {
			out = append(out, t)
		}
	}
	return out
}

// keyMatch is the predicate selecting target rows by legacy key ($1: targetKeys).
func keyMatch(p *entityPlan) string {
	col := spec.QuoteIdent(p.ent.Key.Target)
	if p.ent.Key.Mode == spec.KeyModeUUID {
		return col + " = ANY($1::uuid[])"
	}
	return fmt.Sprintf("%s = ANY($1::text[]::%s[])", col, p.types[0])
}

// deleteGone removes the target rows, mappings and open errors of keys whose source row is gone.
func (e *Engine) deleteGone(ctx context.Context, tx pgx.Tx, p *entityPlan, drain int64, keys []any) (DrainStats, error) {
	var st DrainStats
	texts := keyTexts(keys)
	n, deleted, err := e.deleteTargetRows(ctx, tx, p, texts)
	if err != nil {
		return st, err
	}
	st.Deleted = n
	if err := e.forgetDeleted(ctx, tx, p, texts, deleted); err != nil {
		return st, err
	}
	if st.Resolved, err = e.resolveErrors(ctx, tx, p, texts, "the row was deleted in the source"); err != nil {
		return st, err
	}
	if err := e.noteChanged(ctx, tx, p, drain, texts); err != nil {
		return st, err
	}
	return st, e.countDelta(ctx, tx, p, -st.Deleted, -st.Resolved)
}

// deleteTargetRows deletes the target rows of legacy keys; it returns how many it deleted and
// their legacy keys (nil when a deleted row's key could not be told).
func (e *Engine) deleteTargetRows(ctx context.Context, tx pgx.Tx, p *entityPlan, texts []string) (int64, map[string]bool, error) {
	rs, err := tx.Query(ctx, fmt.Sprintf(`DELETE FROM %s WHERE %s RETURNING %s::text`, p.target, keyMatch(p),
		spec.QuoteIdent(p.ent.Key.Target)), targetKeys(p, texts))
	if err != nil {
		return 0, nil, err
	}
	gone, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		return 0, nil, err
	}
	byTarget := make(map[string]string, len(texts))
	for _, k := range texts {
		byTarget[targetKeyText(p, k)] = k
	}
	out := make(map[string]bool, len(gone))
	for _, t := range gone {
		k, ok := byTarget[t]
		if !ok {
			return int64(len(gone)), nil, nil // the mappings are then looked up
		}
		out[k] = true
	}
	return int64(len(gone)), out, nil
}

// resolveErrors closes the open errors of keys and returns how many rows they were.
func (e *Engine) resolveErrors(ctx context.Context, tx pgx.Tx, p *entityPlan, texts []string, why string) (int64, error) {
	if len(texts) == 0 {
		return 0, nil
	}
	var n int64
	err := tx.QueryRow(ctx, `WITH r AS (UPDATE migration_errors SET is_resolved = true, resolution_notes = $3
			WHERE entity_status_id = $1 AND NOT is_resolved AND source_record_id = ANY($2) RETURNING source_record_id)
		SELECT count(DISTINCT source_record_id) FROM r`, p.statusID, texts, why).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("resolve errors: %w", err)
	}
	return n, nil
}

// noteChanged records that a drain wrote these keys: one row of changed_key_sets for the lot
// (schema migration 0027 says why not a row per key).
func (e *Engine) noteChanged(ctx context.Context, tx pgx.Tx, p *entityPlan, drain int64, texts []string) error {
	if len(texts) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO changed_key_sets (migration_id, entity_name, drain, source_ids) VALUES ($1, $2, $3, $4)`,
		e.opt.MigrationID, p.ent.Name, drain, texts)
	if err != nil {
		return fmt.Errorf("note changed keys: %w", err)
	}
	return nil
}

// countDelta keeps the entity's counters true after a drain changed them.
func (e *Engine) countDelta(ctx context.Context, tx pgx.Tx, p *entityPlan, processed, failed int64) error {
	if processed == 0 && failed == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE entity_migration_status SET
		records_processed = greatest(records_processed + $2, 0), records_failed = greatest(records_failed + $3, 0),
		records_total = greatest(records_processed + $2, 0) + greatest(records_failed + $3, 0)
		WHERE id = $1`, p.statusID, processed, failed)
	return err
}

// upsertChanged writes the current source rows of changed keys: transformed as a batch would
// be, orphans and rows PostgreSQL refuses quarantined (an earlier version of such a row leaves
// the target with its mapping: the target holds no stale copy), the others inserted or updated
// and mapped, and earlier errors of the rows now loaded resolved.
func (e *Engine) upsertChanged(ctx context.Context, tx pgx.Tx, p *entityPlan, drain int64, rows [][]any) (DrainStats, error) {
	var st DrainStats
	var good []prepared
	var bad []failure
	seen := map[string]bool{}
	for _, r := range rows {
		pr, rerr := e.transform(p, r)
		if pr.key != "" && seen[pr.key] {
			continue // a duplicated legacy key: the first row wins, as in a batch
		}
		seen[pr.key] = true
		if rerr != nil {
			bad = append(bad, failure{pr, rerr})
			continue
		}
		good = append(good, pr)
	}
	if err := e.ensurePartitionsTx(ctx, tx, p, good); err != nil {
		return st, err
	}
	good, orphans, err := e.checkParents(ctx, tx, p, good)
	if err != nil {
		return st, err
	}
	bad = append(bad, orphans...)
	if err := e.createStage(ctx, tx, p); err != nil {
		return st, err
	}
	inserted := 0
	fresh := map[string]bool{} // keys whose target row the upserts created (nil: unknown)
	loaded, dbBad, err := bisect(ctx, tx, good, func(ctx context.Context, tx pgx.Tx, rows []prepared) error {
		n, keys, err := e.upsertRowsNew(ctx, tx, p, rows, true)
		inserted += n
		if keys == nil {
			fresh = nil
		}
		for k := range keys {
			if fresh != nil {
				fresh[k] = true
			}
		}
		return err
	})
	if err != nil {
		return st, err
	}
	bad = append(bad, dbBad...)
	if err := e.writeMappingRows(ctx, tx, p, loaded, fresh); err != nil {
		return st, fmt.Errorf("mappings: %w", err)
	}
	if err := e.countChanges(ctx, tx, p, loaded); err != nil {
		return st, err
	}
	loadedKeys := make([]string, len(loaded))
	for i, r := range loaded {
		loadedKeys[i] = r.key
	}
	st.Upserted, st.Inserted = int64(len(loaded)), int64(inserted)
	if st.Resolved, err = e.resolveErrors(ctx, tx, p, loadedKeys, "loaded by catch-up after a change in the source"); err != nil {
		return st, err
	}
	badKeys := make([]string, 0, len(bad))
	for _, f := range bad {
		if f.row.key != "" {
			badKeys = append(badKeys, f.row.key)
		}
	}
	var stale, open int64
	if len(badKeys) > 0 {
		n, deleted, err := e.deleteTargetRows(ctx, tx, p, badKeys)
		if err != nil {
			return st, fmt.Errorf("remove stale rows of quarantined changes: %w", err)
		}
		stale = n
		if err := e.forgetDeleted(ctx, tx, p, badKeys, deleted); err != nil {
			return st, err
		}
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT source_record_id) FROM migration_errors
			WHERE entity_status_id = $1 AND NOT is_resolved AND source_record_id = ANY($2)`, p.statusID, badKeys).Scan(&open); err != nil {
			return st, err
		}
	}
	if err := e.writeErrors(ctx, tx, p, nil, -1, bad); err != nil {
		return st, fmt.Errorf("errors: %w", err)
	}
	st.Failed = int64(len(bad))
	st.Deleted = stale
	if err := e.noteChanged(ctx, tx, p, drain, append(loadedKeys, badKeys...)); err != nil {
		return st, err
	}
	newBad := int64(len(bad)) - open
	return st, e.countDelta(ctx, tx, p, int64(inserted)-stale, newBad-st.Resolved)
}

// dropMovedPartitionRows deletes the target rows of changed keys whose partition column
// changed: an upsert keyed by (key, partition value) would otherwise add a second row. fresh
// are the staged rows' target keys (as text) that the target does not hold at their staged
// partition value: a key found there cannot be in another partition too (the key is unique
// across partitions), so only these are looked for elsewhere, which costs a probe of every
// partition's index per key (measured 68 ms for 1,728 changed emails, none of them moved, when
// every changed key was looked for). Of these, only keys that were ever mapped are looked for
// (movedCandidates): a row inserted in the source since the load has no target row anywhere.
func (e *Engine) dropMovedPartitionRows(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, fresh []string) error {
	if p.partIdx < 0 || len(fresh) == 0 {
		return nil
	}
	fresh, err := e.movedCandidates(ctx, tx, p, rows, fresh)
	if err != nil || len(fresh) == 0 {
		return err
	}
	key, part := spec.QuoteIdent(p.ent.Key.Target), spec.QuoteIdent(p.cols[p.partIdx])
	typ := p.types[0]
	if p.ent.Key.Mode == spec.KeyModeUUID {
		typ = "uuid"
	}
	// t.key = ANY(keys) as well: the planner then looks the keys up in each partition's index
	// instead of joining every row of every partition with the staged rows.
	_, err = tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %[1]s t USING pg_temp.%[2]s s
		WHERE t.%[3]s = ANY($1::text[]::%[5]s[]) AND t.%[3]s = s.%[3]s AND t.%[4]s IS DISTINCT FROM s.%[4]s`,
		p.target, spec.QuoteIdent(stageName(p)), key, part, typ), fresh)
	if err != nil {
		return fmt.Errorf("rows moved to another partition: %w", err)
	}
	return nil
}

// movedCandidates narrows fresh (target key texts of rows) to the keys that may have a target
// row at another partition value. With trustTargetRows every target row was written with its
// mapping, so a key that no mapping block's range holds and no mapping row names (a row
// inserted in the source since the load, the bulk of a drain's new keys) has no target row in
// any partition and is not looked for. A key in a block's range counts as mapped without
// reading the block.
func (e *Engine) movedCandidates(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, fresh []string) ([]string, error) {
	if !e.trustTargetRows() {
		return fresh, nil
	}
	legacy := legacyKeysOf(p, rows, fresh)
	if legacy == nil {
		return fresh, nil
	}
	keys := make([]string, 0, len(legacy))
	for k := range legacy {
		keys = append(keys, k)
	}
	_, inBlocks, err := e.blockPairs(ctx, tx, p, keys)
	if err != nil {
		return nil, err
	}
	mapped := make(map[string]bool, len(inBlocks))
	for _, k := range inBlocks {
		mapped[k] = true
	}
	var rest []string
	for _, k := range keys {
		if !mapped[k] {
			rest = append(rest, k)
		}
	}
	if len(rest) > 0 {
		rs, err := tx.Query(ctx, `SELECT m.source_id FROM unnest($3::text[]) AS k(id) JOIN migration_mapping_rows m
			ON m.source_table = $2::text COLLATE "C" AND length(m.source_id) = length(k.id)
			AND m.source_id = k.id COLLATE "C" AND m.migration_id = $1`, e.opt.MigrationID, p.ent.SourceTable, rest)
		if err != nil {
			return nil, fmt.Errorf("mapped keys: %w", err)
		}
		byRow, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("mapped keys: %w", err)
		}
		for _, k := range byRow {
			mapped[k] = true
		}
	}
	out := make([]string, 0, len(mapped))
	for _, k := range keys {
		if mapped[k] {
			out = append(out, targetKeyText(p, k))
		}
	}
	return out, nil
}

// ensurePartitionsTx creates, inside tx, the monthly partitions rows need (a drain cannot wait
// for another connection's DDL on a table it already wrote to).
func (e *Engine) ensurePartitionsTx(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) error {
	if p.partIdx < 0 {
		return nil
	}
	months := map[string]time.Time{}
	for _, r := range rows {
		if t, ok := r.part.(time.Time); ok {
			m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
			months[ident63(p.ent.TargetTable, m.Format("2006_01"))] = m
		}
	}
	for name, m := range months {
		e.mu.Lock()
		known := e.partitions[name]
		e.mu.Unlock()
		if known {
			continue
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, e.qualified(name)).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		_, err = sp.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
			e.qualified(name), p.target, m.Format("2006-01-02"), m.AddDate(0, 1, 0).Format("2006-01-02")))
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P17") { // overlaps an existing partition
			_ = sp.Rollback(ctx)
			return fmt.Errorf("create partition %s: %w", name, err)
		}
		if err != nil {
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}
