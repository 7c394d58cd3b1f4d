package dbcopy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// The mapping ledger (schema migration 0023): a first load records each batch's mappings as one
// migration_mapping_blocks row (the batch's legacy ids and their UUIDs as two arrays, ~25 bytes
// a mapping instead of ~280 for a row with its indexes); mappings written one at a time
// (catch-up passes) go to migration_mapping_rows; the view migration_mappings shows both. A block
// is written once: a mapping forgotten later is noted beside it (migration_mapping_forgotten).

// UUID parameters are sent as pgtype.UUID: pgx encodes a uuid.UUID through its driver.Valuer
// (a string it parses back), which measured ~75 times slower for a batch's 10,000 keys.

// errAlreadyMapped: a batch holds a legacy id an earlier batch of the migration already mapped.
var errAlreadyMapped = errors.New("a key of the batch is already mapped")

// blockKey is a legacy id in the blocks' key order: an integer as 0x01 and its 64 bits with the
// sign flipped (big-endian, so bytes compare as numbers), any other id as 0x02 and its bytes.
func blockKey(k string) []byte {
	if n, err := strconv.ParseInt(k, 10, 64); err == nil && strconv.FormatInt(n, 10) == k {
		b := make([]byte, 9)
		b[0] = 1
		binary.BigEndian.PutUint64(b[1:], uint64(n)^1<<63)
		return b
	}
	return append([]byte{2}, k...)
}

// keyRange is the smallest and the largest of keys in the blocks' key order. Keys are
// compared without building their blockKeys (two allocations a key of every batch, profiled).
func keyRange(keys []string) (lo, hi []byte) {
	var ints, others bool
	var minInt, maxInt int64
	var minOther, maxOther string
	for _, k := range keys {
		if n, ok := decimalInt(k); ok {
			if !ints || n < minInt {
				minInt = n
			}
			if !ints || n > maxInt {
				maxInt = n
			}
			ints = true
			continue
		}
		if !others || k < minOther {
			minOther = k
		}
		if !others || k > maxOther {
			maxOther = k
		}
		others = true
	}
	switch {
	case ints && others:
		return blockKey(strconv.FormatInt(minInt, 10)), blockKey(maxOther)
	case ints:
		return blockKey(strconv.FormatInt(minInt, 10)), blockKey(strconv.FormatInt(maxInt, 10))
	case others:
		return blockKey(minOther), blockKey(maxOther)
	}
	return nil, nil
}

// decimalInt is k's integer when k is one as strconv.FormatInt writes it (what blockKey orders
// as a number), without allocating for a k that is not.
func decimalInt(k string) (int64, bool) {
	digits := strings.TrimPrefix(k, "-")
	if digits == "" || len(digits) > 19 || (digits[0] == '0' && (len(digits) > 1 || len(k) > 1)) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(k, 10, 64)
	return n, err == nil
}

// insertBlockSQL records a batch's mappings as one block unless one of its legacy ids is
// mapped already (in a block whose range may hold it and has not forgotten it, or in the
// per-row table).
const insertBlockSQL = `INSERT INTO migration_mapping_blocks
	(id, migration_id, source_table, destination_table, entity_type, lo, hi, source_ids, destination_ids)
	SELECT $1::uuid, $2::uuid, $3::text, $4::text, $5::text, $6::bytea, $7::bytea, $8::text[], $9::uuid[]
	WHERE NOT EXISTS (SELECT 1 FROM migration_mapping_blocks b, unnest(b.source_ids) AS s(id)
		WHERE b.migration_id = $2::uuid AND b.source_table = $3::text COLLATE "C" AND b.hi >= $6::bytea AND b.lo <= $7::bytea
		AND s.id IN (SELECT unnest($8::text[]))
		AND NOT EXISTS (SELECT 1 FROM migration_mapping_forgotten f WHERE f.block_id = b.id AND f.source_id = s.id))
	AND NOT EXISTS (SELECT 1 FROM migration_mapping_rows m JOIN unnest($8::text[]) AS k(id)
		ON m.source_table = $3::text COLLATE "C" AND length(m.source_id) = length(k.id) AND m.source_id = k.id COLLATE "C"
		AND m.migration_id = $2::uuid)`

// writeMappingBlock records a first load's batch of mappings as block id; errAlreadyMapped
// when a key was mapped before. Concurrent writers never wait on each other here: two of them
// writing the same key at once (a key the source holds twice, split by a page boundary) both
// pass the check, and the target's own key (a UUID key is always its primary key) is what
// refuses the second row.
func (e *Engine) writeMappingBlock(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, id [16]byte) error {
	keys, dests := make([]string, len(rows)), make([]pgtype.UUID, len(rows))
	for i := range rows {
		keys[i], dests[i] = rows[i].key, pgtype.UUID{Bytes: rows[i].uuid, Valid: true}
	}
	lo, hi := keyRange(keys)
	tag, err := tx.Exec(ctx, insertBlockSQL, pgtype.UUID{Bytes: id, Valid: true}, e.opt.MigrationID, p.ent.SourceTable,
		p.ent.TargetTable, p.ent.EntityType, lo, hi, textArray(keys), uuidArray(dests))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errAlreadyMapped
	}
	return nil
}

// errMappedMeanwhile: a key of a first-load batch was mapped by an earlier batch written
// alongside it, which committed after this batch's mapping check (mappedMeanwhile).
var errMappedMeanwhile = errors.New("a key of the batch was mapped by an earlier batch meanwhile")

// mappedMeanwhile reports whether a key of a first-load batch's block (block, already written
// in tx) is also in another block. Concurrent writers check their keys against the committed
// blocks before their turn: two batches holding the same legacy key (a key the source holds
// twice, split by a page boundary) both pass that check, and when the target has no unique key
// on it nothing else refuses the second row. Checked after the turn, when every earlier batch
// committed; the block ranges keep it to the other blocks that may hold the keys (a batch's own
// block, which holds each of its keys once, is not read: unnesting it was most of the check's
// cost, and a first load's batches have ranges apart, so mostly no block is read at all).
func (e *Engine) mappedMeanwhile(ctx context.Context, tx pgx.Tx, p *entityPlan, block [16]byte) (bool, error) {
	// The block's keys and range are read from the block itself: sending its 10,000 keys again
	// cost their encoding here and their decoding there.
	var twice bool
	err := tx.QueryRow(ctx, `WITH own AS (SELECT lo, hi FROM migration_mapping_blocks WHERE id = $3),
		keys AS (SELECT unnest(source_ids) AS id FROM migration_mapping_blocks WHERE id = $3)
		SELECT EXISTS (SELECT 1 FROM own, migration_mapping_blocks b, unnest(b.source_ids) AS s(id)
		WHERE b.migration_id = $1 AND b.source_table = $2::text COLLATE "C" AND b.hi >= own.lo AND b.lo <= own.hi
		AND b.id <> $3 AND s.id IN (SELECT id FROM keys)
		AND NOT EXISTS (SELECT 1 FROM migration_mapping_forgotten f WHERE f.block_id = b.id AND f.source_id = s.id))`,
		e.opt.MigrationID, p.ent.SourceTable, pgtype.UUID{Bytes: block, Valid: true}).Scan(&twice)
	if err != nil {
		return false, fmt.Errorf("keys mapped meanwhile: %w", err)
	}
	return twice, nil
}

// Mappings forgotten after a block was written are noted in migration_mapping_forgotten
// (schema migration 0024) instead of rewriting the block: a block is written once. liveCellsSQL
// is the cells of the blocks paired with keys ($P: the pairs' block ids, $K: their keys) that
// hold their key and have not forgotten it; it reads only the blocks a key's range points at.
const liveCellsSQL = `pairs AS (SELECT p.b, p.k COLLATE "C" AS k FROM unnest($P::uuid[], $K::text[]) AS p(b, k)),
	live AS (SELECT c.id, c.s FROM (
			SELECT b.id, u.s FROM migration_mapping_blocks b, unnest(b.source_ids) AS u(s)
			WHERE b.id IN (SELECT DISTINCT pairs.b FROM pairs)) c
		JOIN pairs ON pairs.b = c.id AND pairs.k = c.s
		WHERE NOT EXISTS (SELECT 1 FROM migration_mapping_forgotten f WHERE f.block_id = c.id AND f.source_id = c.s))`

func liveCells(pairsArg, keysArg int) string {
	return strings.NewReplacer("$P", "$"+strconv.Itoa(pairsArg), "$K", "$"+strconv.Itoa(keysArg)).Replace(liveCellsSQL)
}

// blockPairs pairs each key with every block of the entity whose key range holds it (first
// loads write blocks whose ranges do not overlap, so mostly one). The blocks' ranges are read
// without their arrays: some 40 bytes a block of thousands of mappings.
func (e *Engine) blockPairs(ctx context.Context, tx pgx.Tx, p *entityPlan, keys []string) ([]pgtype.UUID, []string, error) {
	type block struct {
		id     pgtype.UUID
		lo, hi []byte
	}
	rs, err := tx.Query(ctx, `SELECT id, lo, hi FROM migration_mapping_blocks WHERE migration_id = $1 AND source_table = $2::text COLLATE "C"`,
		e.opt.MigrationID, p.ent.SourceTable)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping blocks: %w", err)
	}
	blocks, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (block, error) {
		var b block
		return b, r.Scan(&b.id, &b.lo, &b.hi)
	})
	if err != nil || len(blocks) == 0 {
		return nil, nil, err
	}
	slices.SortFunc(blocks, func(a, b block) int { return bytes.Compare(a.lo, b.lo) })
	reach := make([][]byte, len(blocks)) // the highest hi of the blocks up to i
	for i, b := range blocks {
		reach[i] = b.hi
		if i > 0 && bytes.Compare(reach[i-1], b.hi) > 0 {
			reach[i] = reach[i-1]
		}
	}
	var ids []pgtype.UUID
	var pk []string
	for _, k := range keys {
		sk := blockKey(k)
		i := sort.Search(len(blocks), func(i int) bool { return bytes.Compare(blocks[i].lo, sk) > 0 }) - 1
		for ; i >= 0 && bytes.Compare(reach[i], sk) >= 0; i-- {
			if bytes.Compare(blocks[i].hi, sk) >= 0 {
				ids, pk = append(ids, blocks[i].id), append(pk, k)
			}
		}
	}
	return ids, pk, nil
}

// trustTargetRows reports whether every row of the entity's target table was written by this
// migration with its mapping (in the same transaction), so a key with a target row is mapped:
// true unless target.on_existing is resume (the load went over rows it did not write). Drains
// then skip the ledger's lookups for keys whose target row they found; the count check inside
// the cutover freeze (source rows = mapped + quarantined) is what would see the rule broken.
func (e *Engine) trustTargetRows() bool { return !e.upsertOnExisting() }

// targetKeyText is a legacy key as the target key column's text.
func targetKeyText(p *entityPlan, k string) string {
	if p.ent.Key.Mode == spec.KeyModeUUID {
		return p.keyUUID(k).String()
	}
	return k
}

// writeMappingRows records mappings one row each, skipping the legacy ids already mapped (in a
// block or a row): catch-up passes. fresh (nil: unknown) are the keys whose target row the
// write created; with trustTargetRows the others are mapped already and not looked up.
func (e *Engine) writeMappingRows(ctx context.Context, tx pgx.Tx, p *entityPlan, rows []prepared, fresh map[string]bool) error {
	if fresh != nil && e.trustTargetRows() {
		kept := make([]prepared, 0, len(fresh))
		for _, r := range rows {
			if fresh[r.key] {
				kept = append(kept, r)
			}
		}
		if rows = kept; len(rows) == 0 {
			return nil
		}
	}
	n := len(rows)
	ids, keys, dests := make([]pgtype.UUID, n), make([]string, n), make([]pgtype.UUID, n)
	for i := range rows {
		ids[i], dests[i] = pgtype.UUID{Bytes: e.mapIDs.next(), Valid: true}, pgtype.UUID{Bytes: rows[i].uuid, Valid: true}
		keys[i] = rows[i].key
	}
	bids, bkeys, err := e.blockPairs(ctx, tx, p, keys)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `WITH `+liveCells(8, 9)+`
		INSERT INTO migration_mapping_rows
		(id, migration_id, source_table, source_id, destination_table, destination_id, entity_type)
		SELECT u.id, $1, $2, u.k, $3, u.d, $4 FROM unnest($5::uuid[], $6::text[], $7::uuid[]) AS u(id, k, d)
		WHERE NOT EXISTS (SELECT 1 FROM live WHERE live.s = u.k COLLATE "C")
		ON CONFLICT (migration_id, source_table, (length(source_id)), source_id) DO NOTHING`,
		e.opt.MigrationID, p.ent.SourceTable, p.ent.TargetTable, p.ent.EntityType, ids, keys, dests, nonNil(bids), nonNil(bkeys))
	return err
}

// nonNil is s, or an empty slice for nil (pgx sends a nil slice as NULL).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// forgetMappingKeys deletes the mappings of legacy keys of the entity; it returns the keys
// it found mapped.
func (e *Engine) forgetMappingKeys(ctx context.Context, tx pgx.Tx, p *entityPlan, keys []string) ([]string, error) {
	bids, bkeys, err := e.blockPairs(ctx, tx, p, keys)
	if err != nil {
		return nil, err
	}
	rs, err := tx.Query(ctx, `WITH gone_rows AS (
			DELETE FROM migration_mapping_rows m USING unnest($3::text[]) AS k(id)
			WHERE m.source_table = $2::text COLLATE "C" AND length(m.source_id) = length(k.id)
			AND m.source_id = k.id COLLATE "C" AND m.migration_id = $1
			RETURNING m.source_id),
		`+liveCells(4, 5)+`,
		noted AS (INSERT INTO migration_mapping_forgotten (block_id, source_id) SELECT id, s FROM live ON CONFLICT DO NOTHING)
		SELECT source_id FROM gone_rows UNION ALL SELECT s FROM live`,
		e.opt.MigrationID, p.ent.SourceTable, keys, nonNil(bids), nonNil(bkeys))
	return collectForgotten(rs, err)
}

// forgetDeleted deletes the mappings of legacy keys whose source row is gone; deleted (nil:
// unknown) are those whose target row was just deleted. With trustTargetRows each of those is
// mapped: by a row, or else by the one block whose range holds it, where it is noted forgotten
// without reading the block. The other keys (and a key that two blocks' ranges hold) are
// looked up as forgetMappingKeys does.
func (e *Engine) forgetDeleted(ctx context.Context, tx pgx.Tx, p *entityPlan, keys []string, deleted map[string]bool) error {
	if deleted == nil || !e.trustTargetRows() {
		_, err := e.forgetMappingKeys(ctx, tx, p, keys)
		return err
	}
	rs, err := tx.Query(ctx, `DELETE FROM migration_mapping_rows m USING unnest($3::text[]) AS k(id)
		WHERE m.source_table = $2::text COLLATE "C" AND length(m.source_id) = length(k.id)
		AND m.source_id = k.id COLLATE "C" AND m.migration_id = $1 RETURNING m.source_id`,
		e.opt.MigrationID, p.ent.SourceTable, keys)
	rowMapped, err := collectForgotten(rs, err)
	if err != nil {
		return err
	}
	inRows := make(map[string]bool, len(rowMapped))
	for _, k := range rowMapped {
		inRows[k] = true
	}
	var inBlocks []string
	for _, k := range keys {
		if deleted[k] && !inRows[k] {
			inBlocks = append(inBlocks, k)
		}
	}
	bids, bkeys, err := e.blockPairs(ctx, tx, p, inBlocks)
	if err != nil {
		return err
	}
	holders := map[string]int{}
	for _, k := range bkeys {
		holders[k]++
	}
	var noteIDs []pgtype.UUID
	var noteKeys, lookUp []string
	for i, k := range bkeys {
		switch {
		case holders[k] == 1:
			noteIDs, noteKeys = append(noteIDs, bids[i]), append(noteKeys, k)
		case holders[k] > 1:
			lookUp = append(lookUp, k)
			holders[k] = 0 // once
		}
	}
	if len(noteIDs) > 0 {
		// The blocks are locked as a foreign key would, once for the statement (schema
		// migration 0030: a key's own check cost a statement per key).
		if _, err := tx.Exec(ctx, `INSERT INTO migration_mapping_forgotten (block_id, source_id)
			SELECT u.b, u.k FROM unnest($1::uuid[], $2::text[]) AS u(b, k)
			WHERE u.b IN (SELECT id FROM migration_mapping_blocks WHERE id = ANY($1::uuid[]) FOR KEY SHARE)
			ON CONFLICT DO NOTHING`, noteIDs, noteKeys); err != nil {
			return fmt.Errorf("forget mappings: %w", err)
		}
	}
	if len(lookUp) > 0 {
		if _, err := e.forgetMappingKeys(ctx, tx, p, lookUp); err != nil {
			return err
		}
	}
	return nil
}

// forgetMappingDests deletes the mappings of the entity whose UUIDs are dests; it returns
// their legacy keys. It reads every block of the entity (a UUID says nothing of a block's
// range): self references left orphaned, which are rare.
func (e *Engine) forgetMappingDests(ctx context.Context, tx pgx.Tx, p *entityPlan, dests []pgtype.UUID) ([]string, error) {
	rs, err := tx.Query(ctx, `WITH gone_rows AS (
			DELETE FROM migration_mapping_rows m
			WHERE m.migration_id = $1 AND m.source_table = $2::text COLLATE "C" AND m.destination_id = ANY ($3::uuid[])
			RETURNING m.source_id),
		live AS (SELECT b.id, u.s FROM migration_mapping_blocks b, unnest(b.source_ids, b.destination_ids) AS u(s, d)
			WHERE b.migration_id = $1 AND b.source_table = $2::text COLLATE "C" AND u.d = ANY ($3::uuid[])
			AND NOT EXISTS (SELECT 1 FROM migration_mapping_forgotten f WHERE f.block_id = b.id AND f.source_id = u.s)),
		noted AS (INSERT INTO migration_mapping_forgotten (block_id, source_id) SELECT id, s FROM live ON CONFLICT DO NOTHING)
		SELECT source_id FROM gone_rows UNION ALL SELECT s FROM live`,
		e.opt.MigrationID, p.ent.SourceTable, dests)
	return collectForgotten(rs, err)
}

func collectForgotten(rs pgx.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, fmt.Errorf("forget mappings: %w", err)
	}
	gone, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("forget mappings: %w", err)
	}
	return gone, nil
}
