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
	// Keys are a composite key's columns, in key order, instead of Key: After and Equal are
	// then []any of one value per column, and so is each element of In.
	Keys []string
	// After continues after this key (nil: from the start).
	After any
	// Equal selects every row whose key equals it (extends a page whose last key repeats).
	Equal any
	// In selects the rows whose key is one of these (re-driving recorded errors).
	In []any
	// Where keeps only the rows matching every condition (the entity's row filter).
	Where []Cond
	Limit int
	// Mark switches to watermark order (Mark, Key): rows after (AfterMark, After). Rows with a
	// NULL mark are not selected.
	Mark      string
	AfterMark any
	// Packed lets the rows' values share memory (a SQLite source carves numbers and short
	// texts from arrays shared by many rows): one value kept beyond the page keeps its
	// neighbours' memory too, so only for a reader that lets go of its pages whole.
	Packed bool
}

// OneOf is a one-column key value a SQLite column may hold under any of several storage
// classes (the text '5' or the integer 5: a column holds values of any class, and they never
// compare equal): In and Equal match a row holding any of them. The key's text alone (an
// error's or a mapping's) does not say which.
type OneOf []any

// Cond is a condition on a source column (a row filter): Op is not_null, eq, ne, gt, ge, lt,
// le, in or max_length, Values its operands, bound as parameters (text, which both databases
// compare with the column under its own type).
type Cond struct {
	Column string
	Op     string
	Values []string
}

// condSQL renders conditions joined with AND, adding their operands to args.
func condSQL(where []Cond, quote func(string) string, ph func(int) string, args *[]any) string {
	var parts []string
	bind := func(v any) string {
		*args = append(*args, v)
		return ph(len(*args))
	}
	for _, c := range where {
		col := quote(c.Column)
		ops := map[string]string{"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
		switch c.Op {
		case "not_null":
			parts = append(parts, col+" IS NOT NULL")
		case "in":
			phs := make([]string, len(c.Values))
			for i, v := range c.Values {
				phs[i] = bind(v)
			}
			parts = append(parts, fmt.Sprintf("%s IN (%s)", col, strings.Join(phs, ", ")))
		case "max_length":
			n, _ := strconv.ParseInt(firstOf(c.Values), 10, 64)
			parts = append(parts, fmt.Sprintf("length(%s) <= %s", col, bind(n)))
		default:
			op, ok := ops[c.Op]
			if !ok {
				op = "=" // Validate refuses other ops; never reached
			}
			parts = append(parts, fmt.Sprintf("%s %s %s", col, op, bind(firstOf(c.Values))))
		}
	}
	return strings.Join(parts, " AND ")
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Source is a legacy database. Count and Max take the entity's row filter.
type Source interface {
	Driver() string
	// Tables lists the source's tables (not the ones the migration itself creates in it, named
	// with OwnPrefix, nor the database's own).
	Tables(ctx context.Context) ([]string, error)
	Columns(ctx context.Context, table string) ([]Column, error)
	Count(ctx context.Context, table string, where ...Cond) (int64, error)
	Max(ctx context.Context, table, column string, where ...Cond) (any, error)
	// Read returns the page's rows; values are int64, float64, string, []byte, bool, time.Time
	// or nil.
	Read(ctx context.Context, q Query) ([][]any, error)
	Close() error
}

// OwnPrefix starts the names of the tables a migration creates in a source (change capture,
// the reverse flow).
const OwnPrefix = "_cutover_"

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
	keyCols := q.Keys
	if len(keyCols) == 0 {
		keyCols = []string{q.Key}
	}
	keys := make([]string, len(keyCols))
	for i, k := range keyCols {
		keys[i] = quote(k)
	}
	var args []any
	// param adds a key value (a tuple for a composite key) and returns its placeholders.
	param := func(v any) []string {
		vals := []any{v}
		if t, ok := v.([]any); ok && len(q.Keys) > 0 {
			vals = t
		}
		out := make([]string, len(vals))
		for i, x := range vals {
			args = append(args, x)
			out[i] = ph(len(args))
		}
		return out
	}
	// equal is "key = v" (every column of a composite key equal).
	equal := func(v any) string {
		if alts, ok := v.(OneOf); ok && len(keys) == 1 {
			terms := make([]string, len(alts))
			for i, a := range alts {
				terms[i] = keys[0] + " = " + param(a)[0]
			}
			return "(" + strings.Join(terms, " OR ") + ")"
		}
		phs := param(v)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + " = " + phs[i]
		}
		return strings.Join(parts, " AND ")
	}
	// after is "key > v" (a row-value comparison for a composite key).
	after := func(v any) string {
		phs := param(v)
		if len(keys) == 1 {
			return keys[0] + " > " + phs[0]
		}
		return "(" + strings.Join(keys, ", ") + ") > (" + strings.Join(phs, ", ") + ")"
	}
	order := strings.Join(keys, ", ")
	// The row filter comes first: its placeholders are numbered before the key's.
	filter := condSQL(q.Where, quote, ph, &args)
	where := func(cond string) string {
		switch {
		case filter == "":
			return " WHERE " + cond
		case cond == "":
			return " WHERE " + filter
		}
		return " WHERE (" + filter + ") AND " + cond
	}
	switch {
	case len(q.In) > 0:
		if len(keys) == 1 {
			var phs []string
			for _, v := range q.In {
				if alts, ok := v.(OneOf); ok {
					for _, a := range alts {
						phs = append(phs, param(a)[0])
					}
					continue
				}
				phs = append(phs, param(v)[0])
			}
			fmt.Fprintf(&b, "%s ORDER BY %s", where(fmt.Sprintf("%s IN (%s)", keys[0], strings.Join(phs, ", "))), order)
			return b.String(), args
		}
		terms := make([]string, len(q.In))
		for i, v := range q.In {
			terms[i] = "(" + equal(v) + ")"
		}
		fmt.Fprintf(&b, "%s ORDER BY %s", where("("+strings.Join(terms, " OR ")+")"), order)
		return b.String(), args
	case q.Equal != nil:
		b.WriteString(where(equal(q.Equal)))
		return b.String(), args
	case q.Mark != "":
		mark := quote(q.Mark)
		b.WriteString(where(mark + " IS NOT NULL"))
		switch {
		case q.AfterMark != nil && q.After != nil:
			m1, m2 := param(q.AfterMark)[0], param(q.AfterMark)[0]
			fmt.Fprintf(&b, " AND (%s > %s OR (%s = %s AND %s))", mark, m1, mark, m2, after(q.After))
		case q.AfterMark != nil:
			// A mark but no key yet: rows at the mark itself may be new (upserts are idempotent).
			fmt.Fprintf(&b, " AND %s >= %s", mark, param(q.AfterMark)[0])
		}
		fmt.Fprintf(&b, " ORDER BY %s, %s", mark, order)
	default:
		if q.After != nil {
			b.WriteString(where(after(q.After)))
		} else if filter != "" {
			b.WriteString(where(""))
		}
		fmt.Fprintf(&b, " ORDER BY %s", order)
	}
	if q.Limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", q.Limit)
	}
	return b.String(), args
}
