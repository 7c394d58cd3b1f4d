package dbcopy

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestBinaryCopyMatchesPgx writes the same values of every type the engine casts to with the
// engine's own binary COPY and with pgx.CopyFrom, then has PostgreSQL compare both tables.
func TestBinaryCopyMatchesPgx(t *testing.T) {
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, newTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const cols = `n int, t text, v varchar(20), i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
		num numeric, b boolean, j json, jb jsonb, ts timestamp, tz timestamptz, d date, u uuid, ba bytea`
	for _, tbl := range []string{"ours", "theirs"} {
		if _, err := conn.Exec(ctx, "CREATE TABLE "+tbl+" ("+cols+")"); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"n", "t", "v", "i2", "i4", "i8", "f4", "f8", "num", "b", "j", "jb", "ts", "tz", "d", "u", "ba"}
	var oids []uint32
	for _, c := range names {
		var oid uint32
		if err := conn.QueryRow(ctx, `SELECT atttypid FROM pg_attribute WHERE attrelid = 'ours'::regclass AND attname = $1`, c).Scan(&oid); err != nil {
			t.Fatal(err)
		}
		oids = append(oids, oid)
	}
	num := func(s string) any {
		v, rerr := convert(s, "numeric", castOpts{})
		if rerr != nil {
			t.Fatal(rerr)
		}
		return v
	}
	when := time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC)
	rows := [][]any{
		{int64(1), "plain", "short", int64(-32768), int64(math.MaxInt32), int64(math.MinInt64), 1.5, math.Pi,
			num("12345678901234567890.000123"), true, `{"a": [1, 2]}`, `{"b": {"c": null}}`, when, when,
			time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), [16]byte(uuid.New()), []byte{0, 1, 2, 255}},
		{int64(2), "ünïcødé ✓ " + strings.Repeat("x", 300), "", int64(32767), int64(math.MinInt32), int64(math.MaxInt64), -0.25, math.Inf(-1),
			num("-0.5"), false, `[]`, `"s"`, time.Date(2262, 4, 11, 23, 47, 16, 854775000, time.UTC),
			time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC), time.Date(4000, 2, 29, 0, 0, 0, 0, time.UTC), [16]byte{}, []byte{}},
		{int64(3), nil, nil, nil, nil, nil, math.NaN(), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		// A value of an unexpected Go type goes through pgx's encoder.
		{int64(4), "x", "y", int64(1), int64(2), int64(3), 1.0, 2.0, num("1"), true, "1", "2",
			time.Date(2024, 1, 1, 12, 0, 0, 0, time.FixedZone("x", 3600)), time.Date(2024, 1, 1, 12, 0, 0, 0, time.FixedZone("x", 3600)),
			time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), uuid.New(), []byte("z")},
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := copyTuples(ctx, tx, copyStatement(pgx.Identifier{"ours"}, names), len(rows), func(buf []byte, m *pgtype.Map, i int) ([]byte, error) {
		return appendTuple(buf, m, oids, rows[i])
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"theirs"}, names, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	// Rows compared as text (json has no equality operator).
	var diffs []string
	rs, err := conn.Query(ctx, `(SELECT 'ours ' || ra::text FROM ours ra EXCEPT SELECT 'ours ' || rb::text FROM theirs rb)
		UNION ALL (SELECT 'theirs ' || rb::text FROM theirs rb EXCEPT SELECT 'theirs ' || ra::text FROM ours ra)`)
	if err != nil {
		t.Fatal(err)
	}
	if diffs, err = pgx.CollectRows(rs, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM ours`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(rows) {
		t.Fatalf("n: want len(rows); rows %d (want %d), differing:\n%s", n, len(rows), strings.Join(diffs, "\n"))
	}
	if len(diffs) != 0 {
		t.Fatalf("len(diffs) = %v, want 0; rows %d (want %d), differing:\n%s",
			len(diffs), n, len(rows), strings.Join(diffs, "\n"))
	}
}

// TestBinaryCopyStreamsInChunks checks the COPY stream across many reads: a batch larger than
// pgconn's 64 KiB chunks arrives whole and in order.
func TestBinaryCopyStreamsInChunks(t *testing.T) {
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, newTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE s (i bigint, t text)`); err != nil {
		t.Fatal(err)
	}
	const n = 50_000
	pad := strings.Repeat("p", 97)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := copyTuples(ctx, tx, copyStatement(pgx.Identifier{"s"}, []string{"i", "t"}), n, func(buf []byte, m *pgtype.Map, i int) ([]byte, error) {
		return appendTuple(buf, m, []uint32{pgtype.Int8OID, pgtype.TextOID}, []any{int64(i), pad})
	}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var cnt, sum int64
	var bad int
	if err := conn.QueryRow(ctx, `SELECT count(*), sum(i), count(*) FILTER (WHERE t <> $1) FROM s`, pad).Scan(&cnt, &sum, &bad); err != nil {
		t.Fatal(err)
	}
	if cnt != n {
		t.Fatalf("cnt: want n; count %d sum %d bad %d", cnt, sum, bad)
	}
	if sum != int64(n)*(n-1)/2 {
		t.Fatalf("sum: want int64(n)*(n-1)/2; count %d sum %d bad %d", cnt, sum, bad)
	}
	if bad != 0 {
		t.Fatalf("bad: want 0; count %d sum %d bad %d", cnt, sum, bad)
	}
}
