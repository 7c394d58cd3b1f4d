package source

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestSQLiteMissingNamesAreErrors: a column or key the table does not have (dropped by the
// legacy application mid-migration, or a hostile name) is an error, never SQLite's fallback
// of reading a double-quoted unknown name as a string literal; names with quotes of every kind
// are one identifier.
func TestSQLiteMissingNamesAreErrors(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "legacy.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, \"we`i\"\"rd\" TEXT); INSERT INTO t VALUES (1, 'a', 'w1'), (2, 'b', 'w2')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	rows, err := s.Read(ctx, Query{Table: "t", Columns: []string{"id", "we`i\"rd"}, Key: "id", After: int64(1), Limit: 10})
	if err != nil {
		t.Fatalf("err: want nil; read of a column named with both quotes: %v, %v", rows, err)
	}
	if len(rows) != 1 {
		t.Fatalf("len(rows) = %v, want 1; read of a column named with both quotes: %v, %v", len(rows), rows, err)
	}
	if fmt.Sprint(rows[0]...) != "2w2" {
		t.Fatalf("fmt.Sprint(rows[0]...) = %v, want \"2w2\"; read of a column named with both quotes: %v, %v",
			fmt.Sprint(rows[0]...), rows, err)
	}
	for _, q := range []Query{
		{Table: "t", Columns: []string{"id", "gone"}, Key: "id", Limit: 10},
		{Table: "t", Columns: []string{"id", "v"}, Key: "gone", After: int64(0), Limit: 10},
		{Table: "t", Columns: []string{"id", "v"}, Key: "id", Mark: "gone", Limit: 10},
		{Table: "t", Columns: []string{"id", `v"; DELETE FROM t; --`}, Key: "id", Limit: 10},
	} {
		if rows, err := s.Read(ctx, q); err == nil || !strings.Contains(err.Error(), "no such column") {
			t.Errorf("read %+v = %v, %v; want a no such column error", q, rows, err)
		}
	}
	if v, err := s.Max(ctx, "t", "gone"); err == nil {
		t.Errorf("max of a missing column = %v, want an error", v)
	}
	if n, err := s.Count(ctx, "t"); err != nil {
		t.Fatalf("err: want nil; count = %d, %v", n, err)
	} else if n != 2 {
		t.Fatalf("n: want 2; count = %d, %v", n, err)
	}
}

// TestSQLiteReadMatchesTheDriver: Read, on its own connections, returns what the database/sql
// driver returns for every storage class (including invalid UTF-8, an empty blob, NULL, NaN
// stored as NULL, huge integers), and pages by text and blob keys.
func TestSQLiteReadMatchesTheDriver(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "legacy.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE v (k TEXT PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, d DATETIME);
		INSERT INTO v VALUES ('a', 9223372036854775807, 1.5, 'plain', x'00ff', '2024-01-02 03:04:05'),
			('b', -1, -0.0, CAST(x'c328' AS TEXT), x'', 1700000000),
			('c', NULL, NULL, '', NULL, NULL),
			('d', 0, 1e308, 'ünïcödé ✓', x'deadbeef', '2024-13-45'),
			('e', 42, 0.1, 'mixed', 'text in a blob column', 3.25);
		CREATE TABLE bk (k BLOB PRIMARY KEY, n INTEGER); INSERT INTO bk VALUES (x'01', 1), (x'0102', 2), (x'02', 3);`); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cols := []string{"k", "i", "r", "t", "b", "d"}
	if _, err := s.Columns(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(ctx, Query{Table: "v", Columns: cols, Key: "k", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// The driver, with the same unary + that hides the DATETIME declaration.
	rows, err := db.Query(`SELECT k, i, r, t, b, +d FROM v ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		want = append(want, vals)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, the driver %d", len(got), len(want))
	}
	for r := range want {
		for c := range cols {
			w, g := want[r][c], got[r][c]
			if wb, ok := w.([]byte); ok && len(wb) == 0 {
				w = []byte{} // the driver returns nil for an empty blob; Read keeps it a blob
			}
			if fmt.Sprintf("%T %#v", g, g) != fmt.Sprintf("%T %#v", w, w) {
				t.Errorf("row %d column %s: %T %#v, the driver %T %#v", r, cols[c], g, g, w, w)
			}
		}
	}
	// Keyset pages by a text key and by a blob key.
	page, err := s.Read(ctx, Query{Table: "v", Columns: []string{"k"}, Key: "k", After: "b", Limit: 2})
	if err != nil {
		t.Errorf("err: want nil; page after 'b': %v, %v", page, err)
	} else if fmt.Sprint(page) != "[[c] [d]]" {
		t.Errorf("fmt.Sprint(page) = %v, want \"[[c] [d]]\"; page after 'b': %v, %v", fmt.Sprint(page), page, err)
	}
	page, err = s.Read(ctx, Query{Table: "bk", Columns: []string{"n"}, Key: "k", After: []byte{1}, Limit: 10})
	if err != nil {
		t.Errorf("err: want nil; page after x'01': %v, %v", page, err)
	} else if fmt.Sprint(page) != "[[2] [3]]" {
		t.Errorf("fmt.Sprint(page) = %v, want \"[[2] [3]]\"; page after x'01': %v, %v", fmt.Sprint(page), page, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Read(cancelled, Query{Table: "v", Columns: cols, Key: "k"}); err == nil {
		t.Error("a read with a cancelled context succeeded")
	}
}

// TestSQLiteOneOfMatchesEveryClass: a key given as OneOf matches a row holding it under any of
// its storage classes, in In and in Equal; a plain value matches its own class only (a column
// without a type compares 5 and '5' as different values).
func TestSQLiteOneOfMatchesEveryClass(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "legacy.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (id PRIMARY KEY, v TEXT); INSERT INTO t VALUES (5, 'int'), ('6', 'text'), (2.5, 'real'), ('x', 'word')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	read := func(q Query) string {
		t.Helper()
		q.Table, q.Columns, q.Key = "t", []string{"v"}, "id"
		rows, err := s.Read(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rows {
			out = append(out, fmt.Sprint(r[0]))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		q    Query
		want string
	}{
		{Query{In: []any{"5", "6", "2.5", "x"}}, "text,word"},
		{Query{In: []any{OneOf{"5", int64(5)}, OneOf{"6", int64(6)}, OneOf{"2.5", 2.5}, "x"}}, "real,int,text,word"},
		{Query{Equal: "5"}, ""},
		{Query{Equal: OneOf{"5", int64(5)}}, "int"},
		{Query{Equal: OneOf{"6", int64(6)}}, "text"},
	} {
		if got := read(c.q); got != c.want {
			t.Errorf("read %+v = %q, want %q", c.q, got, c.want)
		}
	}
}
