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
	if err != nil || len(rows) != 1 || fmt.Sprint(rows[0]...) != "2w2" {
		t.Fatalf("read of a column named with both quotes: %v, %v", rows, err)
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
	if n, err := s.Count(ctx, "t"); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
}
