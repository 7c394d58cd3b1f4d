package dbcopy

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// The content check's first comparison reads a target row's column bytes as PostgreSQL sent
// them, without decoding them into values: for the common pairs of a source value and a column
// (text, integers, a double, a reference's UUID) it answers what sameAsSource or sameDerived
// would answer of the decoded value, and it decodes the others one by one. A row it finds
// different is compared again by compareRows' value-by-value path, which names the columns.

// contentKey is the target key of source row r (k: its legacy key's text, p.rowKey) as the
// transformation makes it, without the rest of the row; ok is false where the transformation
// would refuse the key (it then says why).
func (p *entityPlan) contentKey(r []any, k string) (rowKey, bool) {
	if k == "" || badKey(k) != nil {
		return rowKey{}, false
	}
	if p.ent.Key.Mode == spec.KeyModeUUID {
		return rowKey{uuid: p.keyUUID(k)}, true
	}
	v, rerr := convert(r[0], p.types[0], castOpts{})
	if rerr != nil {
		return rowKey{}, false
	}
	return keyOf(p.types[0], v), true
}

// targetRowKey is the key of a target row as read by contentQuery (column 0).
func (p *entityPlan) targetRowKey(m *pgtype.Map, fds []pgconn.FieldDescription, raw [][]byte) (rowKey, error) {
	if u, ok := rawUUID(&fds[0], raw[0]); ok && p.types[0] == "uuid" {
		return rowKey{uuid: u}, nil
	}
	v, err := decodeValue(m, &fds[0], raw[0])
	if err != nil {
		return rowKey{}, err
	}
	return keyOf(p.types[0], v), nil
}

// sameRow reports whether the target row raw (as contentQuery reads it) holds in every column
// but the key what source row src says (values: the row transformed, or nil: the derived
// columns are computed here alone). False also where it cannot tell (a derived value the
// transformation refuses).
func (p *entityPlan) sameRow(m *pgtype.Map, fds []pgconn.FieldDescription, src, values []any, raw [][]byte) bool {
	for i := 1; i < len(p.cols); i++ {
		b, fd, tb := &p.build[i], &fds[i], raw[i]
		if b.srcIdx >= 0 && b.expr == nil && b.konst == nil && b.parent == nil {
			same, ok := sameRawAsSource(src[b.srcIdx], b, fd, tb)
			if !ok {
				tv, err := decodeValue(m, fd, tb)
				same = err == nil && sameAsSource(src[b.srcIdx], b, tv)
			}
			if !same {
				return false
			}
			continue
		}
		var want any
		if values != nil {
			want = values[i]
		} else {
			v, rerr := p.derivedValue(b, src)
			if rerr != nil {
				return false
			}
			want = v
		}
		if want == nil || tb == nil {
			if want == nil && tb == nil {
				continue
			}
		} else if u, ok := rawUUID(fd, tb); ok && p.types[i] == "uuid" {
			if w, wok := uuidBytes(want); wok {
				if w != u {
					return false
				}
				continue
			}
		} else if w, wok := want.(string); wok && p.types[i] == "text" && isTextOID(fd.DataTypeOID) {
			if string(tb) != w { // sameDerived: canon of two texts is the texts
				return false
			}
			continue
		}
		tv, err := decodeValue(m, fd, tb)
		if err != nil || !sameDerived(p.types[i], want, tv) {
			return false
		}
	}
	return true
}

// derivedValue is the value the transformation makes for a derived column (a reference, an
// expression, a constant) of source row src, as transformInto computes it.
func (p *entityPlan) derivedValue(b *builder, src []any) (any, *rowError) {
	raw, _ := p.sourceRaw(b, src)
	if b.parent != nil {
		if raw == nil {
			return nil, nil
		}
		v, _, rerr := b.parentKey(raw)
		return v, rerr
	}
	v, _, rerr := convertChange(raw, b.typ, b.opts)
	return v, rerr
}

// sameRawAsSource is sameAsSource on a target value's bytes, for the pairs it answers without
// decoding (ok false: decode and ask sameAsSource): a text column and a text source value, an
// integer column and an integer, a double precision column and a finite double.
func sameRawAsSource(raw any, b *builder, fd *pgconn.FieldDescription, tb []byte) (same, ok bool) {
	switch b.typ {
	case "text":
		s, sok := raw.(string)
		if !sok || (b.opts.emptyAsNull && strings.TrimSpace(s) == "") || !isTextOID(fd.DataTypeOID) {
			return false, false
		}
		return tb != nil && string(tb) == s, true
	case "json", "jsonb":
		// Read as text (contentSelect): the same text is the same document (sameFast), and so is
		// a jsonb column's text that is the source's document as PostgreSQL prints it (sameJSONB).
		s, sok := raw.(string)
		if !sok || (b.opts.emptyAsNull && strings.TrimSpace(s) == "") || !isTextOID(fd.DataTypeOID) {
			return false, false
		}
		if tb == nil {
			return false, true
		}
		if string(tb) == s {
			return true, true
		}
		if w, wok := jsonbText(s); wok && b.typ == "jsonb" && w == string(tb) {
			return true, true
		}
	case "smallint", "integer", "bigint":
		x, xok := raw.(int64)
		if !xok || fd.Format != pgx.BinaryFormatCode {
			return false, false
		}
		if tb == nil {
			return false, true
		}
		switch {
		case fd.DataTypeOID == pgtype.Int8OID && len(tb) == 8:
			return x == int64(binary.BigEndian.Uint64(tb)), true
		case fd.DataTypeOID == pgtype.Int4OID && len(tb) == 4:
			return x == int64(int32(binary.BigEndian.Uint32(tb))), true
		case fd.DataTypeOID == pgtype.Int2OID && len(tb) == 2:
			return x == int64(int16(binary.BigEndian.Uint16(tb))), true
		}
	case "double precision":
		x, xok := raw.(float64)
		if !xok || math.IsNaN(x) || math.IsInf(x, 0) || fd.Format != pgx.BinaryFormatCode || fd.DataTypeOID != pgtype.Float8OID {
			return false, false
		}
		if tb == nil {
			return false, true
		}
		if len(tb) == 8 {
			return x == math.Float64frombits(binary.BigEndian.Uint64(tb)), true
		}
	}
	return false, false
}

func isTextOID(oid uint32) bool { return oid == pgtype.TextOID || oid == pgtype.VarcharOID }

// rawUUID reads a uuid column's bytes in binary format.
func rawUUID(fd *pgconn.FieldDescription, tb []byte) ([16]byte, bool) {
	if fd.DataTypeOID != pgtype.UUIDOID || fd.Format != pgx.BinaryFormatCode || len(tb) != 16 {
		return [16]byte{}, false
	}
	return [16]byte(tb), true
}

// decodeValue decodes one column of a row as pgx's Rows.Values does.
func decodeValue(m *pgtype.Map, fd *pgconn.FieldDescription, tb []byte) (any, error) {
	if tb == nil {
		return nil, nil
	}
	if t, ok := rawTimestamptz(fd, tb); ok {
		return t, nil
	}
	if dt, ok := m.TypeForOID(fd.DataTypeOID); ok {
		return dt.Codec.DecodeValue(m, fd.DataTypeOID, fd.Format, tb)
	}
	switch fd.Format {
	case pgx.TextFormatCode:
		return string(tb), nil
	case pgx.BinaryFormatCode:
		return append([]byte(nil), tb...), nil
	}
	return nil, errors.New("unknown format code")
}

// decodeRow decodes a whole row (decodeValue).
func decodeRow(m *pgtype.Map, fds []pgconn.FieldDescription, raw [][]byte) ([]any, error) {
	out := make([]any, len(raw))
	for i := range raw {
		v, err := decodeValue(m, &fds[i], raw[i])
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// rawTimestamptz reads a timestamptz in binary format (microseconds since 2000-01-01 UTC) as
// pgx's codec does, without its allocations, for years 1 to 9999 (ok false: ask the codec,
// which also reads the infinities and refuses what is out of its range).
func rawTimestamptz(fd *pgconn.FieldDescription, tb []byte) (time.Time, bool) {
	if fd.DataTypeOID != pgtype.TimestamptzOID || fd.Format != pgx.BinaryFormatCode || len(tb) != 8 {
		return time.Time{}, false
	}
	const y2k = 946_684_800 // 2000-01-01 in Unix seconds
	us := int64(binary.BigEndian.Uint64(tb))
	t := time.Unix(y2k+us/1_000_000, us%1_000_000*1_000)
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// keyIndex finds a row by its target key (rowKey): UUID keys in a map of their bytes.
type keyIndex struct {
	uuids map[[16]byte]int32
	other map[rowKey]int32
}

func newKeyIndex(n int) keyIndex {
	return keyIndex{uuids: make(map[[16]byte]int32, n), other: map[rowKey]int32{}}
}

func (x keyIndex) get(k rowKey) (int32, bool) {
	if k.text == "" {
		i, ok := x.uuids[k.uuid]
		return i, ok
	}
	i, ok := x.other[k]
	return i, ok
}

func (x keyIndex) put(k rowKey, i int32) {
	if k.text == "" {
		x.uuids[k.uuid] = i
	} else {
		x.other[k] = i
	}
}
