package dbcopy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// TestSameRawAgreesWithDecoded: wherever the comparison on a target value's bytes answers, it
// answers what sameAsSource says of the decoded value, NULLs and lossy values included.
func TestSameRawAgreesWithDecoded(t *testing.T) {
	m := pgtype.NewMap()
	tests := []struct {
		typ string
		oid uint32
		raw any
		tv  any // what the target holds, nil: NULL
	}{
		{"text", pgtype.TextOID, "abc", "abc"},
		{"text", pgtype.TextOID, "abc", "abd"},
		{"text", pgtype.TextOID, "abc", "abc "},
		{"text", pgtype.TextOID, "", ""},
		{"text", pgtype.TextOID, "", nil},
		{"text", pgtype.TextOID, "abc", nil},
		{"text", pgtype.VarcharOID, "é", "é"},
		{"bigint", pgtype.Int8OID, int64(42), int64(42)},
		{"bigint", pgtype.Int8OID, int64(42), int64(43)},
		{"bigint", pgtype.Int8OID, int64(42), nil},
		{"integer", pgtype.Int4OID, int64(-7), int32(-7)},
		{"integer", pgtype.Int4OID, int64(1 << 40), int32(0)},
		{"smallint", pgtype.Int2OID, int64(70000), int16(4464)},
		{"smallint", pgtype.Int2OID, int64(3), int16(3)},
		{"double precision", pgtype.Float8OID, 0.1, 0.1},
		{"double precision", pgtype.Float8OID, 0.1, 0.1 + 1e-17},
		{"double precision", pgtype.Float8OID, 0.1, float64(float32(0.1))},
		{"double precision", pgtype.Float8OID, math.Copysign(0, -1), 0.0},
		{"double precision", pgtype.Float8OID, 1.5, math.NaN()},
		{"double precision", pgtype.Float8OID, 1.5, nil},
		{"json", pgtype.TextOID, `[1, 2]`, `[1, 2]`},
		{"json", pgtype.TextOID, `[1,2]`, `[1, 2]`},
		{"json", pgtype.TextOID, `[1, 2]`, `[1, 3]`},
		{"jsonb", pgtype.TextOID, `{"b":1,"a":[true]}`, `{"a": [true], "b": 1}`},
		{"jsonb", pgtype.TextOID, `{"a": 1}`, `{"a": 2}`},
		{"jsonb", pgtype.TextOID, `{"a": 1}`, nil},
		{"jsonb", pgtype.TextOID, ` `, nil},
	}
	for _, tc := range tests {
		for _, emptyAsNull := range []bool{false, true} {
			b := &builder{typ: tc.typ, opts: castOpts{emptyAsNull: emptyAsNull}}
			fd := &pgconn.FieldDescription{DataTypeOID: tc.oid, Format: pgx.BinaryFormatCode}
			var tb []byte
			if tc.tv != nil {
				var err error
				if tb, err = m.Encode(tc.oid, pgx.BinaryFormatCode, tc.tv, nil); err != nil {
					t.Fatalf("%s %v: %v", tc.typ, tc.tv, err)
				}
			}
			tv, err := decodeValue(m, fd, tb)
			if err != nil {
				t.Fatal(err)
			}
			want := sameAsSource(tc.raw, b, tv)
			if got, ok := sameRawAsSource(tc.raw, b, fd, tb); ok && got != want {
				t.Errorf("%s %#v vs %#v (empty_as_null %v): on bytes %v, sameAsSource %v", tc.typ, tc.raw, tc.tv, emptyAsNull, got, want)
			}
		}
	}
}

// TestRawTimestamptzAgreesWithTheCodec: a binary timestamptz read from its bytes is the
// instant pgx's codec reads; the infinities and what lies beyond year 9999 are left to the codec.
func TestRawTimestamptzAgreesWithTheCodec(t *testing.T) {
	m := pgtype.NewMap()
	fd := &pgconn.FieldDescription{DataTypeOID: pgtype.TimestamptzOID, Format: pgx.BinaryFormatCode}
	for _, in := range []time.Time{time.Unix(0, 0), time.Unix(1727784000, 123456000), time.Unix(-1, 999999000),
		time.Date(1969, 12, 31, 23, 59, 59, 1000, time.UTC), time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)} {
		tb, err := m.Encode(pgtype.TimestamptzOID, pgx.BinaryFormatCode, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		dt, _ := m.TypeForOID(pgtype.TimestamptzOID)
		want, err := dt.Codec.DecodeValue(m, pgtype.TimestamptzOID, pgx.BinaryFormatCode, tb)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := rawTimestamptz(fd, tb)
		if !ok {
			t.Errorf("%v: not read from its bytes", in)
			continue
		}
		if !got.Equal(want.(time.Time)) {
			t.Errorf("%v: read %v from its bytes, the codec %v", in, got, want)
		}
	}
	for _, in := range []any{pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true},
		pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true},
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		tb, err := m.Encode(pgtype.TimestamptzOID, pgx.BinaryFormatCode, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := rawTimestamptz(fd, tb); ok {
			t.Errorf("%v: read as %v from its bytes, want it left to the codec", in, got)
		}
	}
}

// TestContentCheckFindsOneChangedValue: the content check compares every column of every row.
// On a faithful copy it finds nothing; then one value changed per column (a text, an integer, a
// double, a time, a date, a boolean, a numeric, a JSON document, a reference moved to another
// parent or emptied, an expression's and a constant's result), one target row deleted and one
// row more (a copy of a loaded row under another key) are each found, named by key and column.
func TestContentCheckFindsOneChangedValue(t *testing.T) {
	owner := &dbcopytest.Table{Name: "owner", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= 3; i++ {
		owner.Rows = append(owner.Rows, []any{i, fmt.Sprintf("owner %d", i)})
	}
	thing := &dbcopytest.Table{Name: "thing", PK: true,
		Columns: []string{"id", "owner_id", "name", "qty", "weight", "seen_at", "born", "active", "price", "doc"},
		Types:   []string{"INTEGER", "INTEGER", "TEXT", "INTEGER", "REAL", "TEXT", "TEXT", "INTEGER", "TEXT", "TEXT"}}
	for i := int64(1); i <= 20; i++ {
		thing.Rows = append(thing.Rows, []any{i, i%3 + 1, fmt.Sprintf("thing %d", i), i * 10, float64(i) + 0.25,
			time.Unix(1704067200+i*3607, 0).UTC().Format(time.RFC3339), "2020-01-02", i % 2, fmt.Sprintf("%d.50", i),
			fmt.Sprintf(`{"n": %d, "tags": ["a", "b"]}`, i)})
	}
	e := openEngine(t, []*dbcopytest.Table{owner, thing}, `name: onechange
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: owners, source_table: owner, target_table: owners, key: {source: id},
     columns: [{source: name, type: text}]}
  - {name: things, source_table: thing, target_table: things, key: {source: id},
     columns: [{source: owner_id, references: owners}, {source: name, type: text}, {source: qty, type: bigint},
       {source: weight, type: double precision}, {source: seen_at, type: timestamptz}, {source: born, type: date},
       {source: active, type: boolean}, {source: price, type: numeric}, {source: doc, type: jsonb},
       {target: label, expr: "concat(name, '!')", type: text}, {target: origin, constant: legacy, type: text}]}
`)
	copyAll(t, e)
	d, status, _ := contentCheck(t, e, "things")
	if status != model.ValidationPassed {
		t.Fatalf("status = %s, want passed; a faithful copy: %+v", status, d)
	}
	if n := d.Missing.Count + d.Extra.Count + d.Different.Count; n != 0 {
		t.Fatalf("missing + extra + different = %d, want 0; a faithful copy: %+v", n, d)
	}
	row := func(k int) string {
		return fmt.Sprintf(`(SELECT destination_id FROM migration_mappings WHERE source_table = 'thing' AND source_id = '%d')`, k)
	}
	owner1 := `(SELECT destination_id FROM migration_mappings WHERE source_table = 'owner' AND source_id = '1')`
	changes := map[string]string{ // column → its change, each on its own row (key: index + 1)
		"owner_id": "owner_id = " + owner1, "name": "name = name || ' '", "qty": "qty = qty + 1",
		"weight": "weight = weight + 1e-9", "seen_at": "seen_at = seen_at + interval '1 microsecond'",
		"born": "born = born + 1", "active": "active = NOT active", "price": "price = price + 0.001",
		"doc": `doc = jsonb_set(doc, '{n}', '0')`, "label": "label = NULL", "origin": "origin = 'Legacy'",
	}
	cols := []string{"owner_id", "name", "qty", "weight", "seen_at", "born", "active", "price", "doc", "label", "origin"}
	ctx := context.Background()
	wantKeys, wantCols := []string{}, map[string]int64{}
	for i, col := range cols {
		k := i + 2 // row 1's owner is owner 2: its reference changes to another parent
		if _, err := e.Pool().Exec(ctx, `UPDATE public.things SET `+changes[col]+` WHERE id = `+row(k)); err != nil {
			t.Fatalf("%s: %v", col, err)
		}
		wantKeys, wantCols[col] = append(wantKeys, fmt.Sprint(k)), 1
	}
	for _, q := range []string{
		`UPDATE public.things SET owner_id = NULL WHERE id = ` + row(1),
		`DELETE FROM public.things WHERE id = ` + row(19),
		`INSERT INTO public.things SELECT '00000000-0000-0000-0000-00000000000b', owner_id, name, qty, weight, seen_at, born,
			active, price, doc, label, origin FROM public.things WHERE id = ` + row(20),
	} {
		if _, err := e.Pool().Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	wantKeys, wantCols["owner_id"] = append([]string{"1"}, wantKeys...), 2
	d, status, _ = contentCheck(t, e, "things")
	got := map[string]any{"status": status, "missing": d.Missing, "extra": d.Extra,
		"different": d.Different.Count, "columns": d.Different.Columns}
	want := map[string]any{"status": model.ValidationFailed, "missing": listedKeys{Count: 1, Keys: []string{"19"}},
		"extra":     listedKeys{Count: 1, Keys: []string{"row 00000000-0000-0000-0000-00000000000b (not placed by this migration)"}},
		"different": int64(len(wantKeys)), "columns": wantCols}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("content check (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedCopy(wantKeys), sortedCopy(d.Different.Keys)); diff != "" {
		t.Errorf("different keys (-want +got):\n%s", diff)
	}
}

// TestContentCheckNamesARefusedRowNotQuarantined: a source row the transformation refuses
// whose error was resolved without loading it is neither quarantined nor in the target: the
// check, which transforms only the rows it finds missing or different, names it untransformable
// (not merely missing), and a faithful row beside it passes.
func TestContentCheckNamesARefusedRowNotQuarantined(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "item", PK: true, Columns: []string{"id", "qty"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(1), "10"}, {int64(2), "not a number"}, {int64(3), "30"}}}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: refused
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: items, source_table: item, target_table: items, key: {source: id}, columns: [{source: qty, type: bigint}]}
`)
	copyAll(t, e)
	if _, err := e.Pool().Exec(context.Background(), `UPDATE migration_errors SET is_resolved = true`); err != nil {
		t.Fatal(err)
	}
	vs, err := e.Validate(ctxT(t), "items")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Missing         listedKeys `json:"missing"`
		Untransformable listedKeys `json:"untransformable"`
	}
	for _, v := range vs {
		if strings.Contains(string(v.ValidationCriteria), `"check":"content"`) {
			if err := json.Unmarshal(v.IssueDetails, &d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diff := cmp.Diff(listedKeys{Count: 1, Keys: []string{"2"}}, d.Untransformable); diff != "" {
		t.Errorf("untransformable (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(listedKeys{Count: 0, Keys: []string{}}, d.Missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
}
