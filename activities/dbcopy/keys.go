package dbcopy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/internal/model"
)

// A row's legacy key is readCols[0:nkey] of the row: one column, or a composite key's columns
// in key order. Its text (mappings, checkpoints, errors, the UUID's name) is the value of a
// one-column key as keyText renders it, or a composite key's values as a JSON array: numbers
// for integers and other numbers, strings for the rest ([10248,11], ["ALFKI","x"]), which
// reads back with each value's type.

// keyColumns names the entity's source key column(s) (for errors).
func (p *entityPlan) keyColumns() string { return strings.Join(p.ent.Key.SourceColumns(), ", ") }

// query is a page query on the entity's source table, selecting the read columns by key.
func (p *entityPlan) query() source.Query {
	q := source.Query{Table: p.ent.SourceTable, Columns: p.readCols, Key: p.ent.Key.Source, Where: p.where}
	if p.ent.Key.Composite() {
		q.Key, q.Keys = "", p.ent.Key.Columns
	}
	return q
}

// rowKey is a source row's legacy key as text; ok is false when a key column is NULL.
func (p *entityPlan) rowKey(row []any) (string, bool) {
	if p.nkey <= 1 {
		return keyText(row[0])
	}
	k, rerr := compositeKeyText(row[:p.nkey], p.keyInts)
	return k, rerr == nil
}

// rowKeyValue is a source row's key as a query compares it: the value, or a composite key's
// values (a copy: rows are windows on shared arrays).
func (p *entityPlan) rowKeyValue(row []any) any {
	if p.nkey <= 1 {
		return row[0]
	}
	return append([]any(nil), row[:p.nkey]...)
}

// nextAfter is where a page read continues after row: its key as the query compares it (a
// PostgreSQL source reads integers as text).
func (p *entityPlan) nextAfter(row []any) any {
	if p.nkey > 1 {
		k, _ := p.rowKey(row)
		v, _ := p.keyArg(k)
		return v
	}
	if s, ok := row[0].(string); ok && p.keyInt {
		if v, err := source.KeyValue(s, true); err == nil {
			return v
		}
	}
	return row[0]
}

// sqliteKeyArg is keyArg's value of a one-column SQLite key: the text as the declared type
// reads it (an integer for an INT column), or source.OneOf the classes it may be held under.
func sqliteKeyArg(text string, integer bool) any {
	n, err := strconv.ParseInt(text, 10, 64)
	isInt := err == nil && strconv.FormatInt(n, 10) == text
	switch {
	case integer && isInt:
		return n
	case integer:
		return text // INTEGER affinity keeps text that is no number as text
	}
	if v, ok := numberOf(text); ok {
		return source.OneOf{text, v}
	}
	return text
}

// numberOf is the integer or real number text spells as keyText renders it (no other text).
func numberOf(text string) (any, bool) {
	if n, err := strconv.ParseInt(text, 10, 64); err == nil && strconv.FormatInt(n, 10) == text {
		return n, true
	}
	if f, err := strconv.ParseFloat(text, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		if t, _ := keyText(f); t == text {
			return f, true
		}
	}
	return nil, false
}

// keyClass is the SQLite storage class of a row's one-column key when keyArg would not read
// its text back as a value of that class (BatchRequest.AfterType says why it matters); "".
func (p *entityPlan) keyClass(row []any) string {
	if p.nkey != 1 || p.src.Driver() != "sqlite" {
		return ""
	}
	if s, ok := row[0].(string); ok && !p.keyInt {
		if _, num := numberOf(s); num {
			return keyClassText // "" would read back as the number in a catch-up (syncCursorArg)
		}
	}
	return storageClass(row[0], p.keyInt)
}

// markClass is the SQLite storage class of a watermark value (a row's, or the column's
// high-water) when its text would not read back as a value of that class by the column's
// declared type (BatchRequest.MarkType); "".
func (p *entityPlan) markClass(v any) string {
	if p.markIdx < 0 || p.src.Driver() != "sqlite" {
		return ""
	}
	if s, ok := v.(string); ok && !p.markInt {
		if _, num := numberOf(s); num {
			return keyClassText // "" would read back as the number (markArg)
		}
	}
	return storageClass(v, p.markInt)
}

// storageClass is the SQLite storage class of v when its text would not read back as a value
// of that class by a column's declared type (integer: the type reads as INT, else as text); "".
func storageClass(v any, integer bool) string {
	switch v.(type) {
	case int64:
		if !integer {
			return keyClassInteger
		}
	case float64:
		return keyClassReal
	case string:
		if integer {
			return keyClassText
		}
	case []byte:
		return keyClassBlob
	}
	return ""
}

// The SQLite storage classes a cursor names (BatchRequest.AfterType and MarkType).
const (
	keyClassInteger = "integer"
	keyClassReal    = "real"
	keyClassText    = "text"
	keyClassBlob    = "blob"
)

// cursorArg is the value a page read continues after: the key's text read back as a value of
// class (keyClass), or by the column's declared type when class is "".
func (p *entityPlan) cursorArg(text, class string) (any, error) {
	if class != "" {
		return classValue(text, class)
	}
	if p.nkey <= 1 {
		return source.KeyValue(text, p.keyInt) // as cursors were read before they carried a class
	}
	return p.keyArg(text)
}

// syncCursorArg is cursorArg of a catch-up cursor (rows after it are upserted). A one-column
// SQLite key of a type other than INT whose text spells a number and that has no class was
// checkpointed before cursors carried one (keyClass names text that spells a number): it reads
// back as the number, which SQLite sorts before any text, so the pass re-reads rows after the
// number rather than skip the integers and reals after it (markArg does the same for marks).
func (p *entityPlan) syncCursorArg(text, class string) (any, error) {
	if class == "" && p.nkey == 1 && !p.keyInt && p.src.Driver() == "sqlite" {
		if v, num := numberOf(text); num {
			return v, nil
		}
	}
	return p.cursorArg(text, class)
}

// classValue is a cursor's text (a key or a watermark) read back as a value of a SQLite
// storage class (storageClass).
func classValue(text, class string) (any, error) {
	switch class {
	case keyClassInteger:
		return source.KeyValue(text, true)
	case keyClassReal:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("checkpoint value %q is not a real number: %w", text, err)
		}
		return f, nil
	case keyClassText:
		return text, nil
	case keyClassBlob:
		return []byte(text), nil
	}
	return nil, fmt.Errorf("checkpoint value %q: unknown storage class %q", text, class)
}

// keyArg turns a key's text (an error's source_record_id, a mapping's source_id) back into the
// value a query compares the key column(s) with. The text does not say a SQLite value's storage
// class: an INT column may hold text that is no number, and a column of another type an integer
// or a real number whose text this is; such a key matches either (source.OneOf).
func (p *entityPlan) keyArg(text string) (any, error) {
	if p.nkey <= 1 && p.src.Driver() == "sqlite" {
		return sqliteKeyArg(text, p.keyInt), nil
	}
	if p.nkey <= 1 {
		return source.KeyValue(text, p.keyInt)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var vals []any
	if err := dec.Decode(&vals); err != nil || len(vals) != p.nkey {
		return nil, fmt.Errorf("key %q is not a JSON array of %d values", text, p.nkey)
	}
	for i, v := range vals {
		n, ok := v.(json.Number)
		if !ok {
			continue
		}
		if x, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			vals[i] = x
		} else if f, err := n.Float64(); err == nil {
			vals[i] = f
		}
	}
	return vals, nil
}

// compositeKeyText renders a composite key's values as a JSON array; ints says which columns
// hold integers (a PostgreSQL source reads them as text: they are numbers all the same). A
// NULL value or text PostgreSQL cannot hold is an error.
func compositeKeyText(vals []any, ints []bool) (string, *rowError) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		switch x := v.(type) {
		case nil:
			return "", &rowError{Type: model.ErrDataValidation, Code: "null_key", Message: "a key column is NULL"}
		case int64:
			b.WriteString(strconv.FormatInt(x, 10))
		case float64:
			t, _ := keyText(x)
			b.WriteString(t)
		default:
			t, _ := keyText(x)
			if i < len(ints) && ints[i] {
				if n, err := strconv.ParseInt(t, 10, 64); err == nil {
					b.WriteString(strconv.FormatInt(n, 10))
					continue
				}
			}
			if rerr := badKey(t); rerr != nil {
				return "", rerr
			}
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(t); err != nil {
				return "", &rowError{Type: model.ErrDataValidation, Code: "bad_key", Message: err.Error()}
			}
			b.Truncate(b.Len() - 1) // Encode's newline
		}
	}
	b.WriteByte(']')
	return b.String(), nil
}
