package datasets

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// The comparison below reads both sides itself — the SQLite file with database/sql, the
// target with its own queries — and writes every value in one canonical form chosen by the
// target column's declared type. It shares no code with the copy engine, so a conversion the
// engine gets wrong (or a value it silently changes) shows as a difference.

// Rows is a table as read for comparison: the row's key (its key columns' values joined by
// " | ") → column → value in canonical form.
type Rows map[string]map[string]string

// TargetTable reads schema.table from a PostgreSQL target: every column but skip (the key
// columns named by keyCols), and the declared type of each column.
func TargetTable(t testing.TB, pool *pgxpool.Pool, schema, table string, keyCols []string, skip ...string) (Rows, map[string]string) {
	t.Helper()
	ctx := context.Background()
	types := map[string]string{}
	var cols []string
	rs, err := pool.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, table)
	if err != nil {
		t.Fatalf("columns of %s: %v", table, err)
	}
	for rs.Next() {
		var c, typ string
		if err := rs.Scan(&c, &typ); err != nil {
			t.Fatal(err)
		}
		if contains(skip, c) {
			continue
		}
		types[c] = typ
		cols = append(cols, c)
	}
	rs.Close()
	if len(cols) == 0 {
		t.Fatalf("target table %s.%s has no columns", schema, table)
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = ident(c) + "::text"
	}
	q := fmt.Sprintf(`SELECT %s FROM %s.%s`, strings.Join(sel, ", "), ident(schema), ident(table))
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET TimeZone = 'UTC'`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	out := Rows{}
	for rows.Next() {
		raw := rows.RawValues()
		row := map[string]string{}
		for i, c := range cols {
			if raw[i] == nil {
				row[c] = "NULL"
				continue
			}
			row[c] = targetCanon(types[c], string(raw[i]))
		}
		out.add(rowKey(row, keyCols), row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, types
}

// SourceTable reads table from the SQLite file at path, the columns of types (a target's
// columns and their declared types: the form each value is compared in), keyed by keyCols.
func SourceTable(t testing.TB, path, table string, keyCols []string, types map[string]string) Rows {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cols := make([]string, 0, len(types))
	for c := range types {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	sel := make([]string, len(cols))
	for i, c := range cols {
		// Unary + is a no-op in SQLite; it hides the declared type, which the driver would use
		// to turn DATETIME text into time.Time by its own rules.
		sel[i] = "+" + ident(c)
	}
	q := fmt.Sprintf(`SELECT %s FROM %s`, strings.Join(sel, ", "), ident(table))
	rs, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	out := Rows{}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = sourceCanon(types[c], vals[i])
		}
		out.add(rowKey(row, keyCols), row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Diff lists (at most max) the differences between the source and the target rows: rows on
// one side only, and values that differ, by key and column.
func Diff(src, tgt Rows, max int) []string {
	var out []string
	add := func(s string) {
		if len(out) < max {
			out = append(out, s)
		}
	}
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t, ok := tgt[k]
		if !ok {
			add(fmt.Sprintf("key %q: missing in the target", k))
			continue
		}
		cols := make([]string, 0, len(src[k]))
		for c := range src[k] {
			cols = append(cols, c)
		}
		sort.Strings(cols)
		for _, c := range cols {
			if src[k][c] != t[c] {
				add(fmt.Sprintf("key %q column %s: source %q, target %q", k, c, src[k][c], t[c]))
			}
		}
	}
	for k := range tgt {
		if _, ok := src[k]; !ok {
			add(fmt.Sprintf("key %q: in the target only", k))
		}
	}
	return out
}

// add keeps a row under its key; a key read again is kept as "key (again)", so a row held twice
// on one side shows as a difference instead of hiding behind its first copy.
func (r Rows) add(key string, row map[string]string) {
	for {
		if _, seen := r[key]; !seen {
			break
		}
		key += " (again)"
	}
	r[key] = row
}

func rowKey(row map[string]string, keyCols []string) string {
	parts := make([]string, len(keyCols))
	for i, c := range keyCols {
		parts[i] = row[c]
	}
	return strings.Join(parts, " | ")
}

func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// targetCanon is PostgreSQL's text of a value of type typ in canonical form.
func targetCanon(typ, s string) string {
	switch typ {
	case "numeric":
		return ratCanon(s)
	case "double precision":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "!" + s
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	case "real":
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return "!" + s
		}
		return strconv.FormatFloat(f, 'g', -1, 32)
	case "text", "character varying":
		return "t:" + s
	case "bytea":
		return strings.ToLower(strings.TrimPrefix(s, `\x`))
	case "timestamp without time zone", "timestamp with time zone":
		for _, l := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999"} {
			if ts, err := time.Parse(l, s); err == nil {
				return ts.UTC().Format(time.RFC3339Nano)
			}
		}
		return "!" + s
	}
	return s // integers, date (ISO), boolean, uuid
}

// sourceCanon is a SQLite value (int64, float64, string, []byte or nil) in the canonical form
// of target type typ: what the value says, not what a cast would make of it.
func sourceCanon(typ string, v any) string {
	if v == nil {
		return "NULL"
	}
	if b, ok := v.([]byte); ok && typ != "bytea" {
		v = string(b)
	}
	switch typ {
	case "bigint", "integer", "smallint":
		switch x := v.(type) {
		case int64:
			return strconv.FormatInt(x, 10)
		case string:
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return strconv.FormatInt(n, 10)
			}
		}
	case "numeric":
		switch x := v.(type) {
		case int64:
			return ratCanon(strconv.FormatInt(x, 10))
		case float64:
			return ratCanon(strconv.FormatFloat(x, 'g', -1, 64))
		case string:
			return ratCanon(x)
		}
	case "double precision":
		switch x := v.(type) {
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64)
		case int64:
			return strconv.FormatFloat(float64(x), 'g', -1, 64)
		}
	case "text", "character varying":
		switch x := v.(type) {
		case string:
			return "t:" + x
		case int64:
			return "t:" + strconv.FormatInt(x, 10)
		case float64:
			return "t:" + strconv.FormatFloat(x, 'g', -1, 64)
		}
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return hex.EncodeToString(x)
		case string:
			return hex.EncodeToString([]byte(x))
		}
	case "date":
		if s, ok := v.(string); ok {
			for _, l := range []string{"2006-01-02", "2006-01-02 15:04:05"} {
				if d, err := time.Parse(l, s); err == nil && d.Equal(d.Truncate(24*time.Hour)) {
					return d.Format("2006-01-02")
				}
			}
		}
	case "timestamp without time zone", "timestamp with time zone":
		switch x := v.(type) {
		case string:
			for _, l := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
				if ts, err := time.Parse(l, x); err == nil {
					return ts.UTC().Format(time.RFC3339Nano)
				}
			}
		case int64:
			// Epoch milliseconds (beyond 1e11) or seconds.
			if x > 1e11 || x < -1e11 {
				return time.UnixMilli(x).UTC().Format(time.RFC3339Nano)
			}
			return time.Unix(x, 0).UTC().Format(time.RFC3339Nano)
		}
	}
	return fmt.Sprintf("!%T:%v", v, v) // not a value this type can hold as it is
}

// ratCanon is a decimal number's exact value, as a fraction in lowest terms.
func ratCanon(s string) string {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "!" + s
	}
	return r.RatString()
}
