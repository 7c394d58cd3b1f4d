package dbcopy

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// spacedKeys are text keys that differ only in spaces, as real data has them (Northwind's
// customer 'Val2 ' beside 'VALON').
var spacedKeys = []string{"A", "A ", " A", "Val2 ", "Val2", "a\tb", "Zé "}

// openEngine opens an engine for specYAML (its %q is the SQLite path of tables) on a fresh
// target and prepares it.
func openEngine(t *testing.T, tables []*dbcopytest.Table, specYAML string) *Engine {
	t.Helper()
	return openEngineAt(t, tables, newTarget(t), "", specYAML)
}

// strings0 reads a one-column query as sorted strings.
func strings0(t *testing.T, e *Engine, q string, args ...any) []string {
	t.Helper()
	rows, err := e.Pool().Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
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
	slices.Sort(out)
	return out
}

// assertValidated runs the entity's validation and fails on any check that did not pass (the
// completeness warning of quarantined rows the spec's error budget allows aside).
func assertValidated(t *testing.T, e *Engine, entity string) {
	t.Helper()
	vs, err := e.Validate(ctxT(t), entity)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Status != model.ValidationPassed && !quarantineAllowed(v) {
			t.Errorf("%s: %s check %s: %s", entity, v.ValidationType, v.Status, v.IssueDetails)
		}
	}
}

// TestTextKeysAreBytes migrates text keys that differ only in spaces, with the key kept and
// with UUID keys, and a child table referencing them: every key arrives byte for byte in the
// target, the mappings and the references, the validation passes, and a rollback removes
// every row.
func TestTextKeysAreBytes(t *testing.T) {
	customers := &dbcopytest.Table{Name: "customer", Columns: []string{"id", "name"}, Types: []string{"TEXT", "TEXT"}, PK: true}
	orders := &dbcopytest.Table{Name: "orders", Columns: []string{"id", "customer_id"}, Types: []string{"INTEGER", "TEXT"}, PK: true}
	for i, k := range spacedKeys {
		customers.Rows = append(customers.Rows, []any{k, fmt.Sprintf("customer %q", k)})
		orders.Rows = append(orders.Rows, []any{int64(i + 1), k})
	}
	for _, mode := range []string{"keep", "uuid"} {
		t.Run(mode, func(t *testing.T) {
			key, legacy, ref := "{source: id, target: id, mode: keep, type: text}", "", "text"
			if mode == "uuid" {
				key, legacy, ref = "{source: id}", "{source: id, target: code, type: text},", "uuid"
			}
			e := openEngine(t, []*dbcopytest.Table{customers, orders}, `name: spaced-keys
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: customers, source_table: customer, target_table: customers, key: `+key+`,
     columns: [`+legacy+` {source: name, type: text}]}
  - {name: orders, source_table: orders, target_table: orders, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: customer_id, references: customers, type: `+ref+`}]}
`)
			copyAll(t, e)
			want := slices.Sorted(slices.Values(spacedKeys))
			col := "id"
			if mode == "uuid" {
				col = "code"
			}
			if diff := cmp.Diff(want, strings0(t, e, "SELECT "+col+" FROM public.customers")); diff != "" {
				t.Errorf("target keys (-source +target):\n%s", diff)
			}
			if diff := cmp.Diff(want, strings0(t, e, `SELECT source_id FROM migration_mappings WHERE source_table = 'customer'`)); diff != "" {
				t.Errorf("mapped keys (-source +mappings):\n%s", diff)
			}
			// Each order points at the customer with its exact key.
			var joined []string
			for i, k := range spacedKeys {
				joined = append(joined, fmt.Sprintf("%d→%q", i+1, k))
			}
			slices.Sort(joined)
			got := strings0(t, e, `SELECT o.legacy_id || '→' || to_json(c.`+col+`)::text FROM public.orders o
				JOIN public.customers c ON c.id = o.customer_id`)
			if diff := cmp.Diff(joined, got); diff != "" {
				t.Errorf("order → customer (-source +target):\n%s", diff)
			}
			assertValidated(t, e, "customers")
			assertValidated(t, e, "orders")
			for _, ent := range []string{"orders", "customers"} {
				if _, err := e.RollbackEntity(ctxT(t), ent); err != nil {
					t.Fatal(err)
				}
			}
			if n := count(t, e, `SELECT count(*) FROM public.customers`); n != 0 {
				t.Errorf("%d customers survive the rollback", n)
			}
		})
	}
}
