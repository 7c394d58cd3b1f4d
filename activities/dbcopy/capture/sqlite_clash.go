package capture

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// Rows REPLACE deletes. When an INSERT OR REPLACE, REPLACE INTO or UPDATE OR REPLACE (or a
// plain INSERT/UPDATE on a constraint declared ON CONFLICT REPLACE) clashes with existing rows
// on a UNIQUE index, SQLite deletes those rows without firing their DELETE triggers (unless the
// writer's connection turned on recursive_triggers), so the AFTER DELETE trigger never logs
// them and the target would keep them. The clash triggers close that hole: BEFORE each INSERT,
// and BEFORE each UPDATE of an indexed column, they log the key of every existing row whose
// values on a unique index equal the new row's — the rows the statement will delete if it
// resolves the clash by REPLACE. A drain re-reads those keys, finds the deleted rows gone and
// deletes them in the target.
//
// The triggers log conservatively: a key logged for a row that is not deleted after all (the
// statement aborts, or ignores the row, or the partial index's WHERE leaves one of the rows out
// of the index) only makes the drain re-read a row and find it unchanged; a key not logged
// loses a delete. What they cannot see: a unique index on an expression (its expression is not
// known from the pragmas), and an index created after the capture was installed. The freeze's
// count of the whole source table still finds a row missed that way (it fails the cutover).

// uniqueIndex is one UNIQUE index (or PRIMARY KEY/UNIQUE constraint) of a table: the columns of
// its key and the collation each is compared with.
type uniqueIndex struct {
	name  string
	cols  []string // "rowid" for the rowid of a rowid table
	colls []string
}

// clashIndexes reads the unique indexes of t that a new row can clash with on something other
// than its own key: every UNIQUE index and constraint, and the rowid of a rowid table whose
// capture key is not the rowid. Expression indexes are left out (see above).
func clashIndexes(ctx context.Context, tx *sql.Tx, t Table) ([]uniqueIndex, error) {
	var out []uniqueIndex
	names, err := queryStrings(ctx, tx, `SELECT name FROM pragma_index_list(?) WHERE "unique" = 1 ORDER BY name`, t.Name)
	if err != nil {
		return nil, fmt.Errorf("unique indexes of %s: %w", t.Name, err)
	}
	for _, name := range names {
		ix := uniqueIndex{name: name}
		rows, err := tx.QueryContext(ctx, `SELECT cid, coalesce(name, ''), coalesce(coll, 'BINARY')
			FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno`, name)
		if err != nil {
			return nil, fmt.Errorf("columns of index %s: %w", name, err)
		}
		expr := false
		for rows.Next() {
			var cid int64
			var col, coll string
			if err := rows.Scan(&cid, &col, &coll); err != nil {
				rows.Close()
				return nil, err
			}
			switch cid {
			case -2:
				expr = true
			case -1:
				col = "rowid"
			}
			ix.cols = append(ix.cols, col)
			ix.colls = append(ix.colls, coll)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("columns of index %s: %w", name, err)
		}
		// An index on the key alone clashes only with the row of the same key, which the
		// AFTER trigger logs anyway.
		if expr || len(ix.cols) == 0 || (len(ix.cols) == 1 && ix.cols[0] == t.Key) {
			continue
		}
		out = append(out, ix)
	}
	rowidAlias, withRowid, err := rowidOf(ctx, tx, t.Name)
	if err != nil {
		return nil, err
	}
	if withRowid && rowidAlias != t.Key {
		col := "rowid"
		if rowidAlias != "" {
			col = rowidAlias
		}
		out = append(out, uniqueIndex{name: "rowid", cols: []string{col}, colls: []string{"BINARY"}})
	}
	return out, nil
}

// rowidOf reports whether table has a rowid and which column, if any, is its alias (a lone
// INTEGER PRIMARY KEY).
func rowidOf(ctx context.Context, tx *sql.Tx, table string) (alias string, withRowid bool, err error) {
	var wr int64
	if err := tx.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?`, table).Scan(&wr); err != nil {
		return "", false, fmt.Errorf("table %s: %w", table, err)
	}
	if wr != 0 {
		return "", false, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT name, upper(type) FROM pragma_table_info(?) WHERE pk > 0`, table)
	if err != nil {
		return "", true, fmt.Errorf("primary key of %s: %w", table, err)
	}
	defer rows.Close()
	var pk, typ []string
	for rows.Next() {
		var n, ty string
		if err := rows.Scan(&n, &ty); err != nil {
			return "", true, err
		}
		pk, typ = append(pk, n), append(typ, ty)
	}
	if err := rows.Err(); err != nil {
		return "", true, err
	}
	if len(pk) == 1 && typ[0] == "INTEGER" {
		return pk[0], true, nil
	}
	return "", true, nil
}

// clashTriggers are the statements (re)creating the BEFORE INSERT and BEFORE UPDATE triggers
// that log the keys of the rows a new row clashes with on ixs. They are dropped and created
// again on each install, so a retried install follows the indexes the table has then.
func clashTriggers(t Table, ixs []uniqueIndex) []string {
	insName, updName := quote(triggerName(t.Name, "clash_ins")), quote(triggerName(t.Name, "clash_upd"))
	stmts := []string{`DROP TRIGGER IF EXISTS ` + insName, `DROP TRIGGER IF EXISTS ` + updName}
	if len(ixs) == 0 {
		return stmts
	}
	tbl, key := quote(t.Name), quote(t.Key)
	logRows := func(self string) string {
		var b strings.Builder
		for _, ix := range ixs {
			var conds []string
			for i, c := range ix.cols {
				// = is never true for NULL: NULLs do not clash in a unique index.
				conds = append(conds, fmt.Sprintf("%s.%s COLLATE %s = NEW.%s", tbl, quote(c), quote(ix.colls[i]), quote(c)))
			}
			fmt.Fprintf(&b, "\n\tINSERT INTO %s (tbl, op, k) SELECT %s, 'R', %s.%s FROM %s WHERE %s AND %s;",
				quote(LogTable), literal(t.Name), tbl, key, tbl, strings.Join(conds, " AND "), self)
		}
		return b.String()
	}
	// The row with the new key itself is logged by the AFTER trigger (and, on UPDATE, the row
	// being updated: by its old key if the key moves).
	notSelf := fmt.Sprintf("%s.%s IS NOT NEW.%s", tbl, key, key)
	stmts = append(stmts,
		fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT ON %s BEGIN%s\nEND", insName, tbl, logRows(notSelf)))
	// An UPDATE clashes only if it sets an indexed column; an index on the implicit rowid
	// (which UPDATE OF cannot name) makes every UPDATE check.
	of := ""
	if cols := indexedColumns(ixs); cols != nil {
		of = " OF " + strings.Join(cols, ", ")
	}
	notSelf += fmt.Sprintf(" AND %s.%s IS NOT OLD.%s", tbl, key, key)
	stmts = append(stmts,
		fmt.Sprintf("CREATE TRIGGER %s BEFORE UPDATE%s ON %s BEGIN%s\nEND", updName, of, tbl, logRows(notSelf)))
	return stmts
}

// indexedColumns are the quoted columns of ixs, or nil if one of them is the implicit rowid.
func indexedColumns(ixs []uniqueIndex) []string {
	var cols []string
	for _, ix := range ixs {
		for _, c := range ix.cols {
			if c == "rowid" {
				return nil
			}
			if q := quote(c); !slices.Contains(cols, q) {
				cols = append(cols, q)
			}
		}
	}
	return cols
}

func queryStrings(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
