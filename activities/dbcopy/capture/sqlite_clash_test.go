package capture

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestSQLiteLogNamesRowsReplaceDeletes: every row a REPLACE deletes on a clash with another
// unique index (which fires no DELETE trigger: the application's connection has no
// recursive_triggers) has its key in the change log — for a NOCASE unique column, a
// two-column unique constraint, a partial unique index, a WITHOUT ROWID table and a rowid
// table keyed by another column — and Remove leaves none of the triggers behind.
func TestSQLiteLogNamesRowsReplaceDeletes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	defer app.Close()
	for _, stmt := range []string{
		`CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE UNIQUE, a INT, b INT,
			handle TEXT, deleted INT NOT NULL DEFAULT 0, UNIQUE (a, b))`,
		`CREATE UNIQUE INDEX accounts_handle ON accounts (handle) WHERE deleted = 0`,
		`CREATE TABLE tags (name TEXT PRIMARY KEY, slug TEXT UNIQUE) WITHOUT ROWID`,
		`CREATE TABLE notes (uuid TEXT UNIQUE NOT NULL, body TEXT)`,
	} {
		if _, err := app.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	l, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tables := []Table{{Name: "accounts", Key: "id"}, {Name: "tags", Key: "name"}, {Name: "notes", Key: "uuid"}}
	if err := l.Install(ctx, tables); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := app.Exec(`INSERT INTO accounts (id, email, a, b, handle) VALUES (?, ?, ?, ?, ?)`,
			i, fmt.Sprintf("u%d@x", i), i, i, fmt.Sprintf("h%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Exec(`INSERT INTO tags (name, slug) VALUES (?, ?)`, fmt.Sprintf("t%d", i), fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Exec(`INSERT INTO notes (rowid, uuid) VALUES (?, ?)`, i, fmt.Sprintf("n%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ name, table, key, stmt string }{
		{"INSERT OR REPLACE on a NOCASE unique column", "accounts", "id",
			`INSERT OR REPLACE INTO accounts (id, email) VALUES (10, 'U1@X')`},
		{"UPDATE OR REPLACE on a two-column unique constraint", "accounts", "id",
			`UPDATE OR REPLACE accounts SET a = 3, b = 3 WHERE id = 2`},
		{"REPLACE INTO on a partial unique index", "accounts", "id",
			`REPLACE INTO accounts (id, handle) VALUES (11, 'h4')`},
		{"REPLACE INTO a WITHOUT ROWID table", "tags", "name",
			`REPLACE INTO tags (name, slug) VALUES ('t9', 's1')`},
		{"UPDATE OR REPLACE of a WITHOUT ROWID table", "tags", "name",
			`UPDATE OR REPLACE tags SET slug = 's3' WHERE name = 't2'`},
		{"INSERT OR REPLACE on the rowid of a table keyed by another column", "notes", "uuid",
			`INSERT OR REPLACE INTO notes (rowid, uuid) VALUES (1, 'n9')`},
		{"UPDATE OR REPLACE of a unique column of that table", "notes", "uuid",
			`UPDATE OR REPLACE notes SET uuid = 'n3' WHERE uuid = 'n2'`},
	} {
		var from int64
		if err := app.QueryRow(`SELECT coalesce(max(seq), 0) FROM ` + quote(LogTable)).Scan(&from); err != nil {
			t.Fatal(err)
		}
		before := keysOf(t, app, c.table, c.key)
		if _, err := app.Exec(c.stmt); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		after := keysOf(t, app, c.table, c.key)
		var gone []string
		for k := range before {
			if !after[k] {
				gone = append(gone, k)
			}
		}
		if len(gone) == 0 {
			t.Fatalf("%s: deleted no row (the case tests nothing)", c.name)
		}
		logged := map[string]bool{}
		rows, err := app.Query(`SELECT CAST(k AS TEXT) FROM `+quote(LogTable)+` WHERE seq > ? AND tbl = ?`, from, c.table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			logged[k] = true
		}
		rows.Close()
		for _, k := range gone {
			if !logged[k] {
				t.Errorf("%s: deleted row %s of %s is not in the change log (logged: %v)", c.name, k, c.table, logged)
			}
		}
	}

	_, trig, err := l.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		for _, op := range []string{"clash_ins", "clash_upd"} {
			if !slices.Contains(trig, triggerName(tb.Name, op)) {
				t.Errorf("trigger %s not installed (installed: %v)", triggerName(tb.Name, op), trig)
			}
		}
	}
	if err := l.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	hasLog, trig, err := l.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hasLog {
		t.Errorf("the change log is left in the file after removal")
	}
	if len(trig) != 0 {
		t.Errorf("triggers left after removal: %v", trig)
	}
}

// keysOf is the set of key values (as text) of table.
func keysOf(t *testing.T, db *sql.DB, table, key string) map[string]bool {
	t.Helper()
	rows, err := db.Query(fmt.Sprintf(`SELECT CAST(%s AS TEXT) FROM %s`, quote(key), quote(table)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
