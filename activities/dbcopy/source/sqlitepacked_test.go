package source

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/packed"
)

// TestSQLitePackedRead: a packed read returns the values an unpacked one does (every storage
// class, numbers either side of the runtime's static boxes, texts either side of
// packed.MaxText, with pages read meanwhile), and carves them from shared arrays instead of
// allocating each.
func TestSQLitePackedRead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "legacy.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, n, r, s, b)`); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", packed.MaxText)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		var s any = fmt.Sprintf("text %d", i)
		switch i % 5 {
		case 1:
			s = ""
		case 2:
			s = long + fmt.Sprint(i)
		case 3:
			s = nil
		}
		n := []any{int64(i) - 1500, int64(i % 256), int64(1) << 62, 3.5, "7"}[i%5]
		if _, err := tx.Exec(`INSERT INTO t VALUES (?, ?, ?, ?, ?)`, i+1, n, float64(i)/7, s, []byte{byte(i), 0, 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	src, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Columns(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	read := func(pack bool) [][]any {
		var all [][]any
		var after any
		for {
			q := Query{Table: "t", Columns: []string{"id", "n", "r", "s", "b"}, Key: "id", After: after, Limit: 700,
				Packed: pack}
			rows, err := src.Read(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, rows...)
			if len(rows) < q.Limit {
				return all
			}
			after = rows[len(rows)-1][0]
		}
	}
	plain, carved := read(false), read(true)
	if len(plain) != 3000 {
		t.Fatalf("read %d rows unpacked, want 3000", len(plain))
	}
	if len(carved) != 3000 {
		t.Fatalf("read %d rows packed, want 3000", len(carved))
	}
	for i := range plain {
		if !reflect.DeepEqual(plain[i], carved[i]) {
			t.Fatalf("row %d: packed %#v, want %#v", i, carved[i], plain[i])
		}
	}

	// Short texts only (a long one is two allocations of its own).
	q := Query{Table: "t", Columns: []string{"id", "n", "r", "s"}, Key: "id", Where: []Cond{{Column: "s", Op: "max_length", Values: []string{"100"}}},
		Limit: 3000, Packed: true}
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := src.Read(ctx, q); err != nil {
			t.Fatal(err)
		}
	})
	// Unpacked, some 3 allocations a row; packed, a few dozen a read (the arrays).
	if allocs > 200 {
		t.Fatalf("a packed read of the short-text rows made %.0f allocations, want at most 200", allocs)
	}
}
