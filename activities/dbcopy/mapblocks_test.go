package dbcopy

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

func TestBlockKeyOrder(t *testing.T) {
	t.Parallel()
	// Integers in numeric order (negative first), then every other id bytewise.
	keys := []string{"-12", "-3", "0", "7", "10", "200", "9223372036854775807", "007", "A", "a", "ab"}
	for i := 1; i < len(keys); i++ {
		if string(blockKey(keys[i-1])) >= string(blockKey(keys[i])) {
			t.Errorf("blockKey(%q) is not below blockKey(%q)", keys[i-1], keys[i])
		}
	}
	for _, keys := range [][]string{{"10", "9", "x", "-1"}, {"-0", "0", "00", "5"}, {"9223372036854775808", "-9223372036854775808"},
		{"12", "3"}, {"b", "a", "c"}, {"+1", " 1", "1 ", "٣"}, {"-9223372036854775809", "-", ""}} {
		byKey := slices.SortedFunc(slices.Values(keys), func(a, b string) int { return bytes.Compare(blockKey(a), blockKey(b)) })
		lo, hi := keyRange(keys)
		if !bytes.Equal(lo, blockKey(byKey[0])) || !bytes.Equal(hi, blockKey(byKey[len(byKey)-1])) {
			t.Errorf("keyRange(%q) = %x..%x, want %x..%x", keys, lo, hi, blockKey(byKey[0]), blockKey(byKey[len(byKey)-1]))
		}
	}
	lo, hi := keyRange([]string{"10", "9", "x", "-1"})
	if string(lo) != string(blockKey("-1")) {
		t.Errorf("string(lo) = %v, want string(blockKey(\"-1\")); keyRange: %x..%x", string(lo), lo, hi)
	} else if string(hi) != string(blockKey("x")) {
		t.Errorf("string(hi) = %v, want string(blockKey(\"x\")); keyRange: %x..%x", string(hi), lo, hi)
	}
}

// TestKeyRangeAllocations: a batch's key range costs no allocation a key.
func TestKeyRangeAllocations(t *testing.T) {
	many := make([]string, 10000)
	for i := range many {
		many[i] = strconv.Itoa(i * 7)
	}
	if allocs := testing.AllocsPerRun(3, func() { keyRange(many) }); allocs > 4 {
		t.Errorf("keyRange of 10,000 keys made %.0f allocations, want at most 4", allocs)
	}
}

// TestMappingLedgerIsLean loads 20,000 rows in batches of 1,000 and checks the ledger: every
// loaded row has its mapping, read back through migration_mappings (legacy id, the UUID the
// target row holds), the mapping tables take at most 60 bytes a mapping (indexes and TOAST
// included), and forgetting some keys (a delete carried by change capture) removes exactly those
// mappings; a catch-up write of a key mapped in a block adds no second mapping.
func TestMappingLedgerIsLean(t *testing.T) {
	const n = 20000
	tbl := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= n; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, fmt.Sprintf("item %d", i)})
	}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: lean
batch_size: 1000
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: name, type: text}]}
`)
	ctx := ctxT(t)
	res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: "items"}, 0, nil)
	if err != nil {
		t.Fatalf("err: want nil; copy: %+v %v", res, err)
	}
	if !res.Done {
		t.Fatalf("res.Done is false; copy: %+v %v", res, err)
	}
	if res.Loaded != n {
		t.Fatalf("res.Loaded = %v, want %v (n); copy: %+v %v", res.Loaded, n, res, err)
	}
	// Read both sides: the target's own legacy_id column against the ledger's view.
	if bad := count(t, e, `SELECT count(*) FROM public.items t FULL JOIN migration_mappings m
		ON m.destination_id = t.id AND m.source_id = t.legacy_id::text AND m.migration_id = $1 AND m.source_table = 'item'
		WHERE t.id IS NULL OR m.destination_id IS NULL`, e.opt.MigrationID); bad != 0 {
		t.Errorf("%d rows without their mapping or mappings without their row", bad)
	}
	if ids := count(t, e, `SELECT count(DISTINCT id) FROM migration_mappings`); ids != n {
		t.Errorf("%d distinct mapping ids, want %d", ids, n)
	}
	var bytes int64
	if err := e.Pool().QueryRow(ctx, `SELECT pg_total_relation_size('migration_mapping_blocks')
		+ pg_total_relation_size('migration_mapping_rows')`).Scan(&bytes); err != nil {
		t.Fatal(err)
	}
	t.Logf("mapping ledger: %d bytes for %d mappings (%.1f a mapping)", bytes, n, float64(bytes)/n)
	if per := float64(bytes) / n; per > 60 {
		t.Errorf("%.1f bytes a mapping, want at most 60", per)
	}

	p, err := e.plan(ctx, "items")
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	err = pgx.BeginFunc(ctx, e.Pool(), func(tx pgx.Tx) error {
		gone, err = e.forgetMappingKeys(ctx, tx, p, []string{"1", "1000", "1001", "19999", "20001"})
		if err != nil {
			return err
		}
		// A catch-up pass writing a key a block maps, and a new one.
		return e.writeMappingRows(ctx, tx, p, []prepared{{key: "5", uuid: [16]byte(p.keyUUID("5"))}, {key: "20001", uuid: [16]byte(p.keyUUID("20001"))}}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1", "1000", "1001", "19999"}, slices.Sorted(slices.Values(gone))); diff != "" {
		t.Errorf("forgotten keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1", "1000", "1001", "19999"}, strings0(t, e, `SELECT t.legacy_id::text FROM public.items t
		WHERE NOT EXISTS (SELECT 1 FROM migration_mappings m WHERE m.destination_id = t.id)`)); diff != "" {
		t.Errorf("rows without a mapping (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"20001"}, strings0(t, e, `SELECT source_id FROM migration_mapping_rows`)); diff != "" {
		t.Errorf("per-row mappings (-want +got):\n%s", diff)
	}
	if m := count(t, e, `SELECT count(*) FROM migration_mappings WHERE source_id = '5'`); m != 1 {
		t.Errorf("key 5 mapped %d times", m)
	}
	if m := count(t, e, `SELECT count(*) FROM migration_mappings`); m != n-4+1 {
		t.Errorf("%d mappings, want %d", m, n-4+1)
	}
	// The blocks are written once: the forgotten mappings are noted beside them, and the count
	// the cutover freeze reads (blocks' mappings, less the forgotten, plus rows) is the view's.
	if m := count(t, e, `SELECT sum(mappings) FROM migration_mapping_blocks`); m != n {
		t.Errorf("the blocks hold %d mappings, want %d (written once)", m, n)
	}
	if diff := cmp.Diff([]string{"1", "1000", "1001", "19999"}, strings0(t, e,
		`SELECT source_id FROM migration_mapping_forgotten ORDER BY source_id`)); diff != "" {
		t.Errorf("noted forgotten (-want +got):\n%s", diff)
	}
	v, err := e.checkCounts(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if v.IssuesFound != 4-1 { // the source holds n rows: 4 forgotten, 1 mapped that it does not hold
		t.Errorf("count check: %d unaccounted, want 3: %s", v.IssuesFound, v.IssueDetails)
	}
	// A drain that deleted the target rows of 2 (a block's) and 20001 (a row's) forgets them
	// without reading the block.
	err = pgx.BeginFunc(ctx, e.Pool(), func(tx pgx.Tx) error {
		return e.forgetDeleted(ctx, tx, p, []string{"2", "20001"}, map[string]bool{"2": true, "20001": true})
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1", "1000", "1001", "19999", "2"}, strings0(t, e,
		`SELECT source_id FROM migration_mapping_forgotten ORDER BY source_id`)); diff != "" {
		t.Errorf("noted forgotten after the drain (-want +got):\n%s", diff)
	}
	if m := count(t, e, `SELECT count(*) FROM migration_mappings`); m != n-5 {
		t.Errorf("%d mappings, want %d", m, n-5)
	}
	if v, err = e.checkCounts(ctx, p); err != nil {
		t.Fatal(err)
	}
	if v.IssuesFound != 5 {
		t.Errorf("count check: %d unaccounted, want 5: %s", v.IssuesFound, v.IssueDetails)
	}
	// Deleting the blocks (a rollback) takes their forgotten keys along, as the foreign key's
	// ON DELETE CASCADE did (schema migration 0030).
	err = pgx.BeginFunc(ctx, e.Pool(), func(tx pgx.Tx) error {
		return e.forgetDeleted(ctx, tx, p, []string{"3"}, map[string]bool{"3": true})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RollbackEntity(ctx, "items"); err != nil {
		t.Fatal(err)
	}
	if m := count(t, e, `SELECT count(*) FROM migration_mapping_forgotten`); m != 0 {
		t.Errorf("%d forgotten keys left after the rollback deleted the blocks, want 0", m)
	}
}
