package schema_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/schema"
)

// catalog is what the schema made of a database: tables' columns, constraints, indexes,
// triggers and functions, one line each, sorted.
func catalog(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
			CASE WHEN a.attnotnull THEN ' not null' ELSE '' END || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL SELECT 'constraint ' || k.conrelid::regclass || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
		FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = 'public'
		UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
		UNION ALL SELECT 'trigger ' || pg_get_triggerdef(g.oid) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND NOT g.tgisinternal
		UNION ALL SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'public'
		UNION ALL SELECT 'sequence ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'S'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLedgerLeavesOutTheMailTables: a database migration's ledger has every table of the
// database migration model and none of the email domain's.
func TestLedgerLeavesOutTheMailTables(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if _, err := schema.ApplyLedger(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []string{"migration_orchestrations", "entity_migration_status", "migration_mappings",
		"migration_mapping_blocks", "migration_mapping_forgotten", "migration_errors", "data_validation_results",
		"migration_phase_log", "change_capture", "changed_key_sets", "cutover_windows", "transformation_counts",
		"migration_error_acceptances", "migration_operator_requests", "deferred_indexes"} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+tbl).Scan(&ok); err != nil {
			t.Fatal(err)
		} else if !ok {
			t.Errorf("ledger table %s missing", tbl)
		}
	}
	for _, tbl := range []string{"migration_jobs", "migration_mailboxes", "migration_runs", "migration_credentials",
		"mail_folders", "mail_messages", "notification_deliveries"} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+tbl).Scan(&ok); err != nil {
			t.Fatal(err)
		} else if ok {
			t.Errorf("mail table %s in a database migration's ledger", tbl)
		}
	}
	again, err := schema.ApplyLedger(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Applied) != 0 {
		t.Errorf("the ledger applied again: %v", again.Applied)
	}
}

// TestLedgerThenWholeSchemaIsTheWholeSchema: a database given the ledger, then the whole
// schema (the email migrations after later ones), ends as one given the whole schema at once.
func TestLedgerThenWholeSchemaIsTheWholeSchema(t *testing.T) {
	ctx := context.Background()
	whole, split := newPool(t), newPool(t)
	if _, err := schema.Apply(ctx, whole); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.ApplyLedger(ctx, split); err != nil {
		t.Fatal(err)
	}
	res, err := schema.Apply(ctx, split)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) == 0 {
		t.Fatal("the whole schema after the ledger applied nothing")
	}
	if diff := cmp.Diff(catalog(t, whole), catalog(t, split)); diff != "" {
		t.Errorf("catalog (-whole +ledger then whole):\n%s", strings.TrimSpace(diff))
	}
}

// TestLedgerStoresMappingUUIDsUncompressed: a mapping block's UUIDs are stored without trying
// to compress them (random bytes never compress; the attempt cost each block's write).
func TestLedgerStoresMappingUUIDsUncompressed(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if _, err := schema.ApplyLedger(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var storage string
	if err := pool.QueryRow(ctx, `SELECT attstorage::text FROM pg_attribute
		WHERE attrelid = 'migration_mapping_blocks'::regclass AND attname = 'destination_ids'`).Scan(&storage); err != nil {
		t.Fatal(err)
	}
	if storage != "e" {
		t.Errorf("migration_mapping_blocks.destination_ids storage = %q, want \"e\" (external, uncompressed)", storage)
	}
}
