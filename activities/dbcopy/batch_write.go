package dbcopy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// typeMaps are pgx type maps for the values the COPY encoder leaves to pgx (a map is not safe
// for concurrent use).
var typeMaps = sync.Pool{New: func() any { return pgtype.NewMap() }}

// appendRowTuple appends a row's COPY tuple: the one its batch encoded, or encoded now.
func appendRowTuple(buf []byte, m *pgtype.Map, p *entityPlan, r *prepared) ([]byte, error) {
	if r.tuple != nil {
		return append(buf, r.tuple...), nil
	}
	return appendTuple(buf, m, p.oids, r.values)
}

// keyOrder is the order to COPY rows idx (indexes into rows, in read order) in: by their UUID
// key when the key is a UUID. Random (UUIDv5) keys inserted in sorted order descend the primary
// key index along neighbouring pages, which costs PostgreSQL about a fifth less than scattered
// inserts (measured); ordered keys are already sorted and cost one pass to check.
func keyOrder(p *entityPlan, rows []prepared, idx []int32) []int32 {
	order := slices.Clone(idx)
	if p.ent.Key.Mode != spec.KeyModeUUID {
		return order
	}
	// Sorted as two big-endian halves beside the index, in one array: comparing the rows'
	// UUIDs as bytes through the index was 6% of the load's CPU in the worker (profiled).
	keys := make([]uuidOrder, len(idx))
	for j, i := range idx {
		u := &rows[i].uuid
		keys[j] = uuidOrder{binary.BigEndian.Uint64(u[:8]), binary.BigEndian.Uint64(u[8:]), i}
	}
	if !slices.IsSortedFunc(keys, compareUUIDOrder) {
		sortUUIDOrder(keys)
		for j := range keys {
			order[j] = keys[j].i
		}
	}
	return order
}

// sortUUIDOrder sorts keys by compareUUIDOrder: a radix sort of the high halves (a quarter of
// a comparison sort's time for a batch's 10,000 keys, measured), then the few runs of equal high
// halves (a key read twice) by the rest, the index breaking ties (of rows with one key, the
// first read wins).
func sortUUIDOrder(keys []uuidOrder) {
	tmp := make([]uuidOrder, len(keys))
	src, dst := keys, tmp
	for shift := 0; shift < 64; shift += 8 {
		var count [256]int
		for _, k := range src {
			count[byte(k.hi>>shift)]++
		}
		if count[byte(src[0].hi>>shift)] == len(src) {
			continue // one value of this byte (ordered UUIDs share their high bytes)
		}
		pos := 0
		for b, c := range count {
			count[b], pos = pos, pos+c
		}
		for _, k := range src {
			b := byte(k.hi >> shift)
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
	for start := 0; start < len(keys); {
		end := start + 1
		for end < len(keys) && keys[end].hi == keys[start].hi {
			end++
		}
		if end-start > 1 {
			slices.SortFunc(keys[start:end], compareUUIDOrder)
		}
		start = end
	}
}

// uuidOrder is a row's UUID key as two numbers that compare as its bytes do, and its index.
type uuidOrder struct {
	hi, lo uint64
	i      int32
}

func compareUUIDOrder(a, b uuidOrder) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	if c := cmp.Compare(a.lo, b.lo); c != 0 {
		return c
	}
	return cmp.Compare(a.i, b.i)
}

func stageName(p *entityPlan) string { return "cutover_stage_" + p.ent.Name }

func (e *Engine) createStage(ctx context.Context, tx pgx.Tx, p *entityPlan) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s INCLUDING DEFAULTS) ON COMMIT DROP`,
		spec.QuoteIdent(stageName(p)), p.target))
	if err != nil {
		return fmt.Errorf("staging table for %s: %w", p.ent.Name, err)
	}
	return nil
}

// upsertRows writes rows through the staging table as INSERT … ON CONFLICT DO UPDATE and
// returns how many were new.
func (e *Engine) upsertRows(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) (int, error) {
	n, _, err := e.upsertRowsNew(ctx, tx, p, rows, false)
	return n, err
}

// upsertRowsNew is upsertRows; it also returns the legacy keys of the rows that were new, or nil
// when it could not tell them (a key column whose text is not the legacy key's). With moved, a
// new row whose key the target holds in another partition (its partition column changed in the
// source) replaces that row (dropMovedPartitionRows).
func (e *Engine) upsertRowsNew(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, moved bool) (int, map[string]bool, error) {
	stage := spec.QuoteIdent(stageName(p))
	if _, err := tx.Exec(ctx, "DELETE FROM pg_temp."+stage); err != nil {
		return 0, nil, err
	}
	if err := copyTuples(ctx, tx, copyStatement(pgx.Identifier{"pg_temp", stageName(p)}, p.cols), len(rows),
		func(buf []byte, m *pgtype.Map, i int) ([]byte, error) {
			return appendRowTuple(buf, m, p, &rows[i])
		}); err != nil {
		return 0, nil, err
	}
	// Statistics for the staged rows: without them the planner guesses the temporary table
	// large and compares it with the whole target (a hash join over every row) instead of
	// looking each key up.
	if _, err := tx.Exec(ctx, "ANALYZE pg_temp."+stage); err != nil {
		return 0, nil, err
	}
	cols := make([]string, len(p.cols))
	for i, c := range p.cols {
		cols[i] = spec.QuoteIdent(c)
	}
	conflict := []string{cols[0]}
	if p.partIdx > 0 {
		conflict = append(conflict, cols[p.partIdx])
	}
	var sets []string
	for i, c := range cols {
		if i == 0 || i == p.partIdx {
			continue
		}
		sets = append(sets, c+" = EXCLUDED."+c)
	}
	action := "DO NOTHING"
	if len(sets) > 0 {
		action = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	list := strings.Join(cols, ", ")
	// New rows are counted before the upsert: RETURNING xmax is not allowed on partitioned tables.
	// OFFSET 0 keeps the NOT EXISTS a lookup of each staged key in the target's key index: as an
	// anti-join the planner hashes the whole target table instead (measured: 88 ms against 2 ms
	// for 660 staged rows and a target of 100K rows), a cost that grows with the table.
	match := make([]string, len(conflict))
	for i, c := range conflict {
		match[i] = "t." + c + " = s." + c
	}
	rs, err := tx.Query(ctx, fmt.Sprintf(`SELECT s.%s::text FROM pg_temp.%s s WHERE NOT EXISTS (SELECT 1 FROM %s t WHERE %s OFFSET 0)`,
		cols[0], stage, p.target, strings.Join(match, " AND ")))
	if err != nil {
		return 0, nil, err
	}
	fresh, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		return 0, nil, err
	}
	if moved {
		if err := e.dropMovedPartitionRows(ctx, tx, p, rows, fresh); err != nil {
			return 0, nil, err
		}
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM pg_temp.%s ON CONFLICT (%s) %s`,
		p.target, list, list, stage, strings.Join(conflict, ", "), action)); err != nil {
		return 0, nil, err
	}
	return len(fresh), legacyKeysOf(p, rows, fresh), nil
}

// legacyKeysOf maps target key texts of rows back to their legacy keys; nil when one is not
// among rows.
func legacyKeysOf(p *entityPlan, rows []prepared, texts []string) map[string]bool {
	byTarget := make(map[string]string, len(rows))
	for _, r := range rows {
		byTarget[targetKeyText(p, r.key)] = r.key
	}
	out := make(map[string]bool, len(texts))
	for _, t := range texts {
		k, ok := byTarget[t]
		if !ok {
			return nil
		}
		out[k] = true
	}
	return out
}

// writeRows writes a batch's good rows (COPY, or upserts for a catch-up batch) and their
// mappings under a savepoint, rows PostgreSQL refuses split off by bisect. A key an earlier
// batch already mapped (the source holds it twice, in two pages: a duplicated key the page
// could not see whole) fails the mapping block's check (errAlreadyMapped): those rows are
// taken out as duplicate_key and the rest written again, once. block is the id of a first load's
// block of mappings. It returns the rows loaded, the rows refused, and how many rows were new.
func (e *Engine) writeRows(ctx context.Context, tx pgx.Tx, p *entityPlan, good []prepared, sync bool, block [16]byte) (
	[]prepared, []failure, int, error) {
	var refused []failure
	for attempt := 0; ; attempt++ {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return nil, nil, 0, err
		}
		inserted := 0
		var loaded []prepared
		var dbBad []failure
		if sync {
			if err = e.createStage(ctx, sp, p); err == nil {
				loaded, dbBad, err = bisect(ctx, sp, good, func(ctx context.Context, tx pgx.Tx, rows []prepared) error {
					n, err := e.upsertRows(ctx, tx, p, rows)
					inserted += n
					return err
				})
			}
		} else {
			loaded, dbBad, err = e.copyIsolating(ctx, sp, p, good)
			inserted = len(loaded)
		}
		if err == nil {
			if err = e.writeMappings(ctx, sp, p, loaded, sync, block); err != nil {
				err = fmt.Errorf("mappings: %w", err)
			}
		}
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return nil, nil, 0, err
			}
			return loaded, append(refused, dbBad...), inserted, nil
		}
		if rerr := sp.Rollback(ctx); rerr != nil {
			return nil, nil, 0, errors.Join(err, rerr)
		}
		if attempt > 0 || (pgCode(err) != "23505" && !errors.Is(err, errAlreadyMapped)) {
			return nil, nil, 0, err
		}
		mapped, qerr := e.mappedKeys(ctx, tx, p, loaded)
		if qerr != nil {
			return nil, nil, 0, errors.Join(err, qerr)
		}
		if len(mapped) == 0 {
			return nil, nil, 0, err
		}
		kept := good[:0:0]
		for _, r := range good {
			if !mapped[r.key] {
				kept = append(kept, r)
				continue
			}
			refused = append(refused, failure{r, &rowError{Type: model.ErrConstraintViolation, Code: codeDuplicateKey,
				Column: p.keyColumns(), Message: fmt.Sprintf("key %s was already loaded from another row of %s by an earlier "+
					"batch: the spec's key must be unique (declare the table's real key)", r.key, p.ent.SourceTable)}})
		}
		good = kept
	}
}

// mappedKeys are the keys of rows this migration already mapped for the entity.
func (e *Engine) mappedKeys(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) (map[string]bool, error) {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.key
	}
	rs, err := tx.Query(ctx, `SELECT m.source_id FROM unnest($3::text[]) AS k(id) JOIN migration_mappings m
		ON m.source_table = $2 AND length(m.source_id) = length(k.id) AND m.source_id = k.id AND m.migration_id = $1`,
		e.opt.MigrationID, p.ent.SourceTable, keys)
	if err != nil {
		return nil, fmt.Errorf("keys already mapped: %w", err)
	}
	found, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("keys already mapped: %w", err)
	}
	out := make(map[string]bool, len(found))
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}

// writeMappings records legacy id → UUID for the loaded rows: one block (whose id is block) for
// a first load (the batch claim makes them new), rows skipping those already mapped for catch-up
// passes.
func (e *Engine) writeMappings(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, upsert bool, block [16]byte) error {
	if len(rows) == 0 {
		return nil
	}
	if !upsert {
		return e.writeMappingBlock(ctx, tx, p, rows, block)
	}
	return e.writeMappingRows(ctx, tx, p, rows, nil)
}

// checkParents splits rows whose references point at a parent row absent from the target
// (orphans: constraint_violation, not loaded). A row of the entity itself (a self reference:
// an employee's manager, a reply's comment) may also be among rows.
func (e *Engine) checkParents(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared) ([]prepared, []failure, error) {
	return e.checkParentsIn(ctx, tx, p, rows, false)
}

// checkParentsIn is checkParents; with later set (a first load, before Finalize adds the
// foreign key) a self reference may also point at a row of the source that a later batch
// loads: rows are read in key order, and a manager's id may be above his report's. Keys are
// compared as rowKeys (a UUID by its bytes): formatting every reference as text, and copying
// every row that passes, cost as much as the rest of the batch's work in the engine (profiled).
func (e *Engine) checkParentsIn(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, later bool) (
	[]prepared, []failure, error) {
	type parentSet struct {
		ent   *spec.Entity
		typ   string
		vals  []any
		found map[rowKey]bool // the parent keys asked for, true once found in the target
	}
	var sets []*parentSet
	setOf := func(parent *spec.Entity) *parentSet {
		for _, s := range sets {
			if s.ent == parent {
				return s
			}
		}
		s := &parentSet{ent: parent, typ: keyTypeOf(parent), found: make(map[rowKey]bool, len(rows))}
		sets = append(sets, s)
		return s
	}
	for _, r := range rows {
		for _, fk := range r.fks {
			s := setOf(fk.parent)
			k := keyOf(s.typ, fk.value)
			if _, seen := s.found[k]; !seen {
				s.found[k] = false
				s.vals = append(s.vals, fk.value)
			}
		}
	}
	if len(sets) == 0 {
		return rows, nil, nil
	}
	for _, s := range sets {
		parent := spec.QuoteQualified(e.spec.Target.Schema, s.ent.TargetTable)
		indexed, err := keyIndexed(ctx, tx, parent, s.ent.Key.Target)
		if err != nil {
			return nil, nil, err
		}
		rs, err := tx.Query(ctx, parentCheckSQL(parent, s.ent.Key.Target, s.typ, indexed), queryKeys(s.vals))
		if err != nil {
			return nil, nil, fmt.Errorf("check parents in %s: %w", s.ent.TargetTable, err)
		}
		for rs.Next() {
			var k rowKey
			if s.typ == "uuid" {
				var u pgtype.UUID
				err = rs.Scan(&u)
				k = rowKey{uuid: u.Bytes}
			} else {
				var v any
				err = rs.Scan(&v)
				k = keyOf(s.typ, v)
			}
			if err != nil {
				rs.Close()
				return nil, nil, err
			}
			s.found[k] = true
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, nil, err
		}
		if s.ent == p.ent {
			if err := e.selfParents(ctx, p, rows, s.found, later); err != nil {
				return nil, nil, err
			}
		}
	}
	// The first reference of a row whose parent is missing, if any.
	missing := func(r *prepared) *fkValue {
		for i := range r.fks {
			fk := &r.fks[i]
			if s := setOf(fk.parent); !s.found[keyOf(s.typ, fk.value)] {
				return fk
			}
		}
		return nil
	}
	orphans := 0
	for i := range rows {
		if missing(&rows[i]) != nil {
			orphans++
		}
	}
	if orphans == 0 {
		return rows, nil, nil
	}
	ok := make([]prepared, 0, len(rows)-orphans)
	var bad []failure
	for _, r := range rows {
		m := missing(&r)
		if m == nil {
			ok = append(ok, r)
			continue
		}
		col := ""
		for _, b := range p.build {
			if b.parent == m.parent {
				col = b.column
			}
		}
		bad = append(bad, failure{r, &rowError{Type: model.ErrConstraintViolation, Code: "orphan_fk", Column: col,
			Message: fmt.Sprintf("references a %s row that is not in %s (missing or failed parent)", m.parent.Name, m.parent.TargetTable)}})
	}
	return ok, bad, nil
}

// parentCheckSQL is the statement returning which of $1 (keys of type typ) the parent table
// holds in its key column. When the key leads an index (indexed), each key is looked up in it:
// OFFSET 0 keeps the EXISTS a subplan run per key, neither a join nor a hashed subplan. Asked
// as "key = ANY($1)", the planner, costing random page reads for a batch's thousands of keys,
// scanned the whole parent table on every batch instead: 270 ms a batch against a parent of
// 325K wide rows, where the lookups cost 25 ms (measured), a gap that grows with the parent.
// Without such an index (a user's table whose key index was deferred, say) a probe per key
// would scan the table per key: there "key = ANY($1)" stays, one scan per batch.
func parentCheckSQL(table, key, typ string, indexed bool) string {
	if !indexed {
		return fmt.Sprintf(`SELECT %s FROM %s WHERE %s = ANY($1::%s[])`, spec.QuoteIdent(key), table, spec.QuoteIdent(key), typ)
	}
	return fmt.Sprintf(`SELECT k.id FROM unnest($1::%s[]) AS k(id) WHERE EXISTS (SELECT 1 FROM %s t WHERE t.%s = k.id OFFSET 0)`,
		typ, table, spec.QuoteIdent(key))
}

// queryKeys is a parent lookup's keys as pgx encodes them fastest: UUIDs as pgtype.UUID (four
// times faster than [16]byte values in an []any, measured), anything else as it is. UUIDs are
// sorted: looked up in order, they walk the key index, and the parent's rows (each batch COPYs
// its rows in key order, keyOrder), from page to page (half the PostgreSQL CPU of the same
// lookups in random order, measured on a parent of 325K rows).
func queryKeys(vals []any) any {
	out := make([]pgtype.UUID, len(vals))
	for i, v := range vals {
		u, ok := v.([16]byte)
		if !ok {
			return vals
		}
		out[i] = pgtype.UUID{Bytes: u, Valid: true}
	}
	slices.SortFunc(out, func(a, b pgtype.UUID) int { return bytes.Compare(a.Bytes[:], b.Bytes[:]) })
	return uuidArray(out)
}

// selfParents marks found (target keys) the entity's own rows that a self reference may point
// at besides those in the target: the rows being written, and with later set the source rows a
// later batch reads (any still missing then is an orphan).
func (e *Engine) selfParents(ctx context.Context, p *entityPlan, rows []prepared, found map[rowKey]bool, later bool) error {
	typ := keyTypeOf(p.ent)
	for _, r := range rows {
		found[keyOf(typ, selfKeyValue(p, r))] = true
	}
	if !later || p.nkey > 1 {
		return nil
	}
	var keys []any
	want := map[rowKey]bool{}
	for _, r := range rows {
		for _, fk := range r.fks {
			if k := keyOf(typ, fk.value); fk.parent == p.ent && !found[k] && !want[k] {
				want[k] = true
				v, err := p.keyArg(fk.legacy)
				if err != nil {
					continue // an id the key column cannot hold: no such row
				}
				keys = append(keys, v)
			}
		}
	}
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		q := p.query()
		q.Columns, q.In = p.readCols[:p.nkey], keys[start:min(start+chunk, len(keys))]
		srcRows, err := p.src.Read(ctx, q)
		if err != nil {
			return fmt.Errorf("self references of %s in the source: %w", p.ent.Name, err)
		}
		for _, sr := range srcRows {
			k, _ := p.rowKey(sr)
			pr := prepared{key: k, uuid: [16]byte(p.keyUUID(k))}
			found[keyOf(typ, selfKeyValue(p, pr))] = true
		}
	}
	return nil
}

// selfKeyValue is a row's target key as a reference to it holds it.
func selfKeyValue(p *entityPlan, r prepared) any {
	if p.ent.Key.Mode == spec.KeyModeUUID {
		return r.uuid
	}
	v, rerr := convert(r.key, p.types[0], castOpts{})
	if rerr != nil {
		return r.key
	}
	return v
}

// keyTypeOf is the target type of an entity's key.
func keyTypeOf(ent *spec.Entity) string {
	if ent.Key.Mode == spec.KeyModeKeep {
		return ent.Key.Type
	}
	return "uuid"
}
