package dbcopy

import (
	"context"
	"fmt"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// testHookMappingProbe runs when mappedInTarget probes the target key by key (tests check the
// sums spare a faithful copy the probes).
var testHookMappingProbe func()

// mappedInTarget counts the entity's mappings whose target row exists (the completeness
// check's "every mapping has its target row").
//
// It first compares the two sets whole: the mappings' target keys and the target table's keys,
// each as its count and two sums of 64-bit hashes of the key (two seeds), one sequential scan
// of each side. Equal counts and sums mean equal sets but for a collision of 128 bits of hash
// sums, so every mapping has its row. Anything else (a row missing, a row the migration did
// not place, a key twice) is counted exactly, one probe of the target's key per mapping: on
// the clinic's 65,000 profiles the probes took about 1 s of PostgreSQL's time and the sums
// about 0.15 s.
func (e *Engine) mappedInTarget(ctx context.Context, p *entityPlan) (int64, error) {
	key := "t." + spec.QuoteIdent(p.ent.Key.Target)
	// The same key equality as the probe below: a UUID key against the mapping's destination,
	// a kept key by its text against the legacy id.
	tHash, mKey, tKey, keyCmp := "uuid_hash_extended(%s, %d)", "m.destination_id", key, key+" = m.destination_id"
	if p.ent.Key.Mode == spec.KeyModeKeep {
		tHash, mKey, tKey, keyCmp = "hashtextextended(%s, %d)", "m.source_id", key+"::text", key+"::text = m.source_id"
	}
	sums := func(k string) string {
		return fmt.Sprintf("count(*), coalesce(sum("+tHash+"::numeric), 0)::text, coalesce(sum("+tHash+"::numeric), 0)::text", k, 0, k, 1)
	}
	var mn, tn int64
	var m0, m1, t0, t1 string
	if err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT * FROM
		(SELECT %s FROM migration_mappings m WHERE m.migration_id = $1 AND m.source_table = $2) m,
		(SELECT %s FROM %s t) t`, sums(mKey), sums(tKey), p.target),
		e.opt.MigrationID, p.ent.SourceTable).Scan(&mn, &m0, &m1, &tn, &t0, &t1); err != nil {
		return 0, fmt.Errorf("mappings against %s: %w", p.target, err)
	}
	if mn == tn && m0 == t0 && m1 == t1 {
		return mn, nil
	}
	if testHookMappingProbe != nil {
		testHookMappingProbe()
	}
	var present int64
	if err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM migration_mappings m JOIN %s t ON %s
		WHERE m.migration_id = $1 AND m.source_table = $2`, p.target, keyCmp),
		e.opt.MigrationID, p.ent.SourceTable).Scan(&present); err != nil {
		return 0, fmt.Errorf("mappings against %s: %w", p.target, err)
	}
	return present, nil
}
