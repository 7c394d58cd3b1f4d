package source

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkSQLiteRead reads a 100K-row table shaped like the clinic's orders (integer key and
// reference, a real, two texts) in pages of 10,000 rows, as a load's reader does: the reader's
// own CPU and allocations per row.
func BenchmarkSQLiteRead(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "legacy.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	if _, err := db.Exec(fmt.Sprintf(`CREATE TABLE orders (id INTEGER PRIMARY KEY, patient_id INTEGER, amount REAL,
		status TEXT, created_at TEXT);
		WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d)
		INSERT INTO orders SELECT i, 1000 + i / 3, i * 1.25, 'shipped', '2024-01-02 03:04:05' FROM s`, n)); err != nil {
		b.Fatal(err)
	}
	db.Close()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Columns(ctx, "orders"); err != nil {
		b.Fatal(err)
	}
	for _, pack := range []bool{false, true} {
		b.Run(fmt.Sprintf("packed=%v", pack), func(b *testing.B) { benchRead(b, s, pack) })
	}
}

func benchRead(b *testing.B, s *SQLite, pack bool) {
	ctx := context.Background()
	const n = 100_000
	b.ReportAllocs()
	for range b.N {
		var after any
		read := 0
		for {
			q := Query{Table: "orders", Columns: []string{"id", "patient_id", "amount", "status", "created_at"},
				Key: "id", After: after, Limit: 10_000, Packed: pack}
			rows, err := s.Read(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			read += len(rows)
			if len(rows) < q.Limit {
				break
			}
			after = rows[len(rows)-1][0]
		}
		if read != n {
			b.Fatalf("read %d rows, want %d", read, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}
