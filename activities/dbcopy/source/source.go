// Package source reads legacy tables for the copy engine: SQLite (modernc.org/sqlite, pure Go,
// the fastest of the drivers measured on a 1M-row scan and buildable with CGO_ENABLED=0; the
// batch reads use its SQLite directly, without the driver's per-call mutex, see rawConn) and
// PostgreSQL (pgx). Reads are keyset-paginated by the primary key (key > last processed key,
// ORDER BY key, LIMIT batch), so memory holds one batch whatever the table size, and a resumed
// copy starts exactly after its checkpoint.
package source

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Column is a source column and its declared type (lower-case, as the database reports it).
type Column struct {
	Name     string
	DeclType string
}

// Query selects one page of a table.
type Query struct {
	Table   string
	Columns []string // selected, in this order
	Key     string
	// After continues after this key (nil: from the start).
	After any
	// Equal selects every row whose key equals it (extends a page whose last key repeats).
	Equal any
	// In selects the rows whose key is one of these (re-driving recorded errors).
	In    []any
	Limit int
	// Mark switches to watermark order (Mark, Key): rows after (AfterMark, After). Rows with a
	// NULL mark are not selected.
	Mark      string
	AfterMark any
}

// Source is a legacy database.
type Source interface {
	Driver() string
	Columns(ctx context.Context, table string) ([]Column, error)
	Count(ctx context.Context, table string) (int64, error)
	Max(ctx context.Context, table, column string) (any, error)
	// Read returns the page's rows; values are int64, float64, string, []byte, bool, time.Time
	// or nil.
	Read(ctx context.Context, q Query) ([][]any, error)
	Close() error
}

// IsIntegerType reports whether a declared type holds integers (SQLite's affinity rule: the
// name contains INT).
func IsIntegerType(decl string) bool {
	d := strings.ToLower(decl)
	return strings.Contains(d, "int") || d == "serial" || d == "bigserial"
}

// KeyValue converts a checkpointed key (text) back to the type the key column compares as.
func KeyValue(s string, integer bool) (any, error) {
	if !integer {
		return s, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key %q is not an integer: %w", s, err)
	}
	return n, nil
}

// FormatKey renders a key value as checkpoint text.
func FormatKey(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

// buildSelect writes the page query with names quoted by quote and placeholders from ph(i)
// (1-based).
func buildSelect(q Query, quote func(string) string, selectExpr func(col string) string, ph func(int) string) (string, []any) {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range q.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		// Aliased: PostgreSQL resolves ORDER BY names to output columns first, and an output
		// column "id" that is id::text would sort as text.
		fmt.Fprintf(&b, "%s AS c%d", selectExpr(c), i)
	}
	b.WriteString(" FROM ")
	b.WriteString(quote(q.Table))
	key := quote(q.Key)
	var args []any
	switch {
	case len(q.In) > 0:
		phs := make([]string, len(q.In))
		for i, v := range q.In {
			args = append(args, v)
			phs[i] = ph(i + 1)
		}
		fmt.Fprintf(&b, " WHERE %s IN (%s) ORDER BY %s", key, strings.Join(phs, ", "), key)
		return b.String(), args
	case q.Equal != nil:
		args = append(args, q.Equal)
		fmt.Fprintf(&b, " WHERE %s = %s", key, ph(1))
		return b.String(), args
	case q.Mark != "":
		mark := quote(q.Mark)
		fmt.Fprintf(&b, " WHERE %s IS NOT NULL", mark)
		switch {
		case q.AfterMark != nil && q.After != nil:
			args = append(args, q.AfterMark, q.AfterMark, q.After)
			fmt.Fprintf(&b, " AND (%s > %s OR (%s = %s AND %s > %s))", mark, ph(1), mark, ph(2), key, ph(3))
		case q.AfterMark != nil:
			// A mark but no key yet: rows at the mark itself may be new (upserts are idempotent).
			args = append(args, q.AfterMark)
			fmt.Fprintf(&b, " AND %s >= %s", mark, ph(1))
		}
		fmt.Fprintf(&b, " ORDER BY %s, %s", mark, key)
	default:
		if q.After != nil {
			args = append(args, q.After)
			fmt.Fprintf(&b, " WHERE %s > %s", key, ph(1))
		}
		fmt.Fprintf(&b, " ORDER BY %s", key)
	}
	if q.Limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", q.Limit)
	}
	return b.String(), args
}
