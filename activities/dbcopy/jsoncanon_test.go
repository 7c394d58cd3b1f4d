package dbcopy

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// jsonbDocs are source documents: the ones jsonbText rewrites and the ones it declines.
var jsonbDocs = []string{
	`{"plan": "p3", "score": 42, "tags": ["a", "b"]}`,
	`{"plan":"p3","score":42,"tags":["a","b"]}`,
	` { "b" : 1 , "a" : [ ] , "aa" : { } , "ab" : [1,2 , {"z":null,"y":true,"x":false}] } `,
	`{"a": 1, "a": 2, "b": 3, "a": 4}`,
	`{"k": 1.50, "n": -7, "m": 0, "o": 0.0, "p": 12345678901234567890123, "q": -0.25}`,
	`{"é": "ünïcødé ✓", "e": "plain", "ee": "/slash/"}`,
	`[1, "two", null, [3, [4, {}]], {"b": {"d": 1, "c": 2}}]`,
	`"just a string"`,
	`42`,
	`true`,
	`null`,
	`[]`,
	`{}`,
	// declined: escapes, exponents, negative zero, odd numbers, not JSON
	`{"a": "line\nbreak"}`,
	`{"a": "quote \" inside"}`,
	`{"a": "\u00e9"}`,
	`{"a": 1e3}`,
	`{"a": 1E-2}`,
	`{"a": -0}`,
	`{"a": -0.00}`,
	`{"a": 01}`,
	`{"a": 1.}`,
	`{"a": .5}`,
	`{bad`,
	`{"a": 1,}`,
	`[1 2]`,
	`{"a": 1} x`,
	``,
	`{"a": tru}`,
}

// TestJSONBTextIsPostgresText: for every document jsonbText rewrites, the rewriting is what
// PostgreSQL prints for the document stored as jsonb (so the fast comparison finds it); the
// documents with escapes, exponents, a negative zero or no JSON at all are declined.
func TestJSONBTextIsPostgresText(t *testing.T) {
	conn := pgConn(t)
	declined := map[string]bool{}
	for _, doc := range jsonbDocs {
		got, ok := jsonbText(doc)
		if !ok {
			declined[doc] = true
			continue
		}
		var want string
		if err := conn.QueryRow(context.Background(), `SELECT $1::jsonb::text`, doc).Scan(&want); err != nil {
			t.Errorf("PostgreSQL refuses %q, which jsonbText rewrote as %q: %v", doc, got, err)
			continue
		}
		if got != want {
			t.Errorf("jsonbText(%q) = %q, PostgreSQL prints %q", doc, got, want)
		}
	}
	if len(declined) != 16 {
		t.Errorf("declined %d documents, want the 16 listed as declined: %v", len(declined), declined)
	}
}

// TestJSONBComparisonAgreesWithTheRules: for each source document and a target that holds it,
// holds it differently written, or holds something else (a value changed, a key dropped or
// added, a number's digits changed, another type), the comparison (sameAsSource, with its fast
// path) answers what decoding both and comparing them answers. A changed document never
// passes.
func TestJSONBComparisonAgreesWithTheRules(t *testing.T) {
	conn := pgConn(t)
	b := &builder{typ: "jsonb"}
	for _, doc := range jsonbDocs {
		var stored string
		if err := conn.QueryRow(context.Background(), `SELECT $1::jsonb::text`, doc).Scan(&stored); err != nil {
			continue // not a document PostgreSQL stores: such a row is quarantined, never compared
		}
		targets := []string{stored, doc, `{"plan": "p3", "score": 43, "tags": ["a", "b"]}`,
			`{"plan": "p3", "tags": ["a", "b"]}`, `{"plan": "p3", "score": 42, "tags": ["a", "b"], "x": 1}`,
			`{"k": 1.5, "m": 0, "n": -7, "o": 0, "p": 12345678901234567890123, "q": -0.25}`,
			`{"a": 2, "b": 3}`, `{"a": 4, "b": 3}`, `"just a string "`, `43`, `false`, `[]`, `{}`}
		for _, tv := range targets {
			var a, c any
			rules := json.Unmarshal([]byte(doc), &a) == nil && json.Unmarshal([]byte(tv), &c) == nil && reflect.DeepEqual(a, c)
			if got := sameAsSource(doc, b, tv); got != rules {
				t.Errorf("source %q, target %q: sameAsSource %v, decoding both %v", doc, tv, got, rules)
			}
		}
		if !sameAsSource(doc, b, stored) {
			t.Errorf("source %q: the target holding it as PostgreSQL prints it (%q) is found different", doc, stored)
		}
	}
}

// TestContentCheckFindsChangedJSONB: a jsonb column copied faithfully passes the content check;
// changing a value, dropping a key or adding one in the target fails it, naming the rows and
// the column; a target holding the same document written otherwise (1.0 for 1) passes.
func TestContentCheckFindsChangedJSONB(t *testing.T) {
	tbl := &dbcopytest.Table{Name: "account", PK: true, Columns: []string{"id", "meta"}, Types: []string{"INTEGER", "TEXT"}}
	for i := int64(1); i <= 6; i++ {
		tbl.Rows = append(tbl.Rows, []any{i, `{"plan":"p1","score":` + string(rune('0'+i)) + `,"tags":["a","b"]}`})
	}
	e := openEngine(t, []*dbcopytest.Table{tbl}, `name: jsonb
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: accounts, source_table: account, target_table: accounts, key: {source: id},
     columns: [{source: meta, type: jsonb}]}
`)
	copyAll(t, e)
	d, status, _ := contentCheck(t, e, "accounts")
	if status != model.ValidationPassed {
		t.Fatalf("status: want model.ValidationPassed; a faithful copy: %s %+v", status, d)
	}
	ctx := context.Background()
	row := `(SELECT destination_id FROM migration_mappings WHERE source_id = $1)`
	for _, c := range []struct{ key, set string }{
		{"2", `meta || '{"score": 9}'`},
		{"3", `meta - 'tags'`},
		{"4", `meta || '{"extra": true}'`},
		{"5", `'{"plan": "p1", "score": 5.0, "tags": ["a", "b"]}'`},
	} {
		if _, err := e.Pool().Exec(ctx, `UPDATE public.accounts SET meta = `+c.set+` WHERE id = `+row, c.key); err != nil {
			t.Fatal(err)
		}
	}
	d, status, _ = contentCheck(t, e, "accounts")
	sort.Strings(d.Different.Keys)
	got := map[string]any{"status": status, "different": d.Different.listedKeys, "columns": d.Different.Columns,
		"missing": d.Missing.Count, "extra": d.Extra.Count}
	want := map[string]any{"status": model.ValidationFailed, "different": listedKeys{Count: 3, Keys: []string{"2", "3", "4"}},
		"columns": map[string]int64{"meta": 3}, "missing": int64(0), "extra": int64(0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("content check (-want +got):\n%s", diff)
	}
}

func pgConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctxT(t), newTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
