package dbcopy

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The batch writer streams PostgreSQL's binary COPY format itself instead of going through
// pgx.CopyFrom: pgx describes the table on every COPY (a round trip) and plans the encoding of
// every value through its type map (a third of the writer's CPU, profiled). Here the column
// OIDs are resolved once when the entity is compiled, the values the transformation produces
// (int64, float64, string, bool, time.Time, [16]byte, []byte) are written by a type switch,
// and anything else falls back to pgx's encoder for the column's OID.

// pgEpochMicros is 2000-01-01 00:00:00 UTC (PostgreSQL's timestamp epoch) in Unix microseconds.
const pgEpochMicros = 946_684_800 * 1_000_000

var copyHeader = []byte("PGCOPY\n\377\r\n\000\000\000\000\000\000\000\000\000")

// copyStatement is the COPY … FROM STDIN BINARY of table's columns.
func copyStatement(table pgx.Identifier, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN BINARY", table.Sanitize(), strings.Join(q, ", "))
}

// appendField appends one field (length + value, or -1 for NULL) of a column of type oid.
func appendField(buf []byte, m *pgtype.Map, oid uint32, v any) ([]byte, error) {
	if v == nil {
		return binary.BigEndian.AppendUint32(buf, math.MaxUint32), nil
	}
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.JSONOID:
		if s, ok := v.(string); ok {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			return append(buf, s...), nil
		}
	case pgtype.JSONBOID:
		if s, ok := v.(string); ok {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)+1))
			buf = append(buf, 1) // jsonb binary format version
			return append(buf, s...), nil
		}
	case pgtype.UUIDOID:
		if u, ok := v.([16]byte); ok {
			buf = binary.BigEndian.AppendUint32(buf, 16)
			return append(buf, u[:]...), nil
		}
	case pgtype.Int8OID:
		if n, ok := v.(int64); ok {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, uint64(n)), nil
		}
	case pgtype.Int4OID:
		if n, ok := v.(int64); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
			buf = binary.BigEndian.AppendUint32(buf, 4)
			return binary.BigEndian.AppendUint32(buf, uint32(int32(n))), nil
		}
	case pgtype.Int2OID:
		if n, ok := v.(int64); ok && n >= math.MinInt16 && n <= math.MaxInt16 {
			buf = binary.BigEndian.AppendUint32(buf, 2)
			return binary.BigEndian.AppendUint16(buf, uint16(int16(n))), nil
		}
	case pgtype.Float8OID:
		if f, ok := v.(float64); ok {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, math.Float64bits(f)), nil
		}
	case pgtype.Float4OID:
		if f, ok := v.(float64); ok {
			buf = binary.BigEndian.AppendUint32(buf, 4)
			return binary.BigEndian.AppendUint32(buf, math.Float32bits(float32(f))), nil
		}
	case pgtype.BoolOID:
		if b, ok := v.(bool); ok {
			buf = binary.BigEndian.AppendUint32(buf, 1)
			if b {
				return append(buf, 1), nil
			}
			return append(buf, 0), nil
		}
	case pgtype.TimestamptzOID, pgtype.TimestampOID:
		// The transformation yields UTC times, so timestamp (wall clock) and timestamptz
		// (instant) encode alike, as pgx does: microseconds since 2000-01-01.
		if t, ok := v.(time.Time); ok && t.Location() == time.UTC {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, uint64(t.Unix()*1_000_000+int64(t.Nanosecond())/1000-pgEpochMicros)), nil
		}
	case pgtype.DateOID:
		if t, ok := v.(time.Time); ok {
			days := (time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix() - pgEpochMicros/1_000_000) / 86400
			buf = binary.BigEndian.AppendUint32(buf, 4)
			return binary.BigEndian.AppendUint32(buf, uint32(int32(days))), nil
		}
	case pgtype.ByteaOID:
		if b, ok := v.([]byte); ok {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
			return append(buf, b...), nil
		}
	}
	// Anything else (numeric, a value of an unexpected Go type): pgx's encoder for the OID.
	sp := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32)
	out, err := m.Encode(oid, pgtype.BinaryFormatCode, v, buf)
	if err != nil {
		return nil, fmt.Errorf("encode %T for type oid %d: %w", v, oid, err)
	}
	if out == nil { // encoded as NULL
		return buf, nil
	}
	binary.BigEndian.PutUint32(out[sp:], uint32(len(out)-sp-4))
	return out, nil
}

// appendTuple appends one row of values (aligned with oids) as a COPY tuple.
func appendTuple(buf []byte, m *pgtype.Map, oids []uint32, vals []any) ([]byte, error) {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(vals)))
	var err error
	for i, v := range vals {
		if buf, err = appendField(buf, m, oids[i], v); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// copyReader is the COPY data stream of n tuples, encoded a chunk at a time as pgconn reads
// it (memory stays at one chunk, whatever the batch size).
type copyReader struct {
	n, next int
	tuple   func(buf []byte, i int) ([]byte, error)
	buf     []byte
	off     int
	started bool
	done    bool
}

func newCopyReader(n int, tuple func(buf []byte, i int) ([]byte, error)) *copyReader {
	return &copyReader{n: n, tuple: tuple, buf: make([]byte, 0, 80<<10)}
}

func (r *copyReader) Read(p []byte) (int, error) {
	if r.off > 0 { // keep what the last read left (less than a tuple) at the front
		r.buf, r.off = r.buf[:copy(r.buf, r.buf[r.off:])], 0
	}
	if !r.started {
		r.buf = append(r.buf, copyHeader...)
		r.started = true
	}
	var err error
	for len(r.buf)-r.off < len(p) && !r.done {
		if r.next < r.n {
			if r.buf, err = r.tuple(r.buf, r.next); err != nil {
				return 0, err
			}
			r.next++
			continue
		}
		r.buf = binary.BigEndian.AppendUint16(r.buf, math.MaxUint16) // trailer: -1
		r.done = true
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	if n == 0 && r.done {
		return 0, io.EOF
	}
	return n, nil
}

// copyTuples runs one binary COPY of n tuples into table in tx.
func copyTuples(ctx context.Context, tx pgx.Tx, stmt string, n int, tuple func(buf []byte, m *pgtype.Map, i int) ([]byte, error)) error {
	m := tx.Conn().TypeMap()
	r := newCopyReader(n, func(buf []byte, i int) ([]byte, error) { return tuple(buf, m, i) })
	_, err := tx.Conn().PgConn().CopyFrom(ctx, r, stmt)
	return err
}
