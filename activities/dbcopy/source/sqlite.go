package source

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"

	_ "modernc.org/sqlite" // registers "sqlite"
)

// SQLite reads a SQLite file, read-only.
type SQLite struct {
	db       *sql.DB
	path     string
	declType map[string]map[string]string // table → column → declared type
	raw      *rawPool                     // connections Read uses
}

// OpenSQLite opens path read-only. A busy timeout rides out the legacy application's writes
// (SQLITE_BUSY under concurrent writers, the legacy mail system's complaint).
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite source %s: %w", path, err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &SQLite{db: db, path: path, declType: map[string]map[string]string{}, raw: &rawPool{dsn: rawDSN(path)}}, nil
}

// Driver implements Source.
func (s *SQLite) Driver() string { return "sqlite" }

// Close implements Source.
func (s *SQLite) Close() error {
	s.raw.close()
	return s.db.Close()
}

// Tables implements Source.
func (s *SQLite) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND substr(name, 1, length(?)) <> ? ORDER BY name`, OwnPrefix, OwnPrefix)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: tables: %w", s.path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite %s: tables: %w", s.path, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Columns implements Source.
func (s *SQLite) Columns(ctx context.Context, table string) ([]Column, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: columns of %s: %w", s.path, table, err)
	}
	defer rows.Close()
	var out []Column
	types := map[string]string{}
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.DeclType); err != nil {
			return nil, fmt.Errorf("sqlite %s: columns of %s: %w", s.path, table, err)
		}
		c.DeclType = strings.ToLower(c.DeclType)
		types[c.Name] = c.DeclType
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite %s: columns of %s: %w", s.path, table, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sqlite %s: table %q does not exist", s.path, table)
	}
	s.declType[table] = types
	return out, nil
}

// Count implements Source.
func (s *SQLite) Count(ctx context.Context, table string, where ...Cond) (int64, error) {
	var n int64
	q, args := `SELECT count(*) FROM `+quoteSQLite(table), []any(nil)
	if len(where) > 0 {
		q += " WHERE " + condSQL(where, quoteSQLite, func(int) string { return "?" }, &args)
	}
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite %s: count %s: %w", s.path, table, err)
	}
	return n, nil
}

// Max implements Source.
func (s *SQLite) Max(ctx context.Context, table, column string, where ...Cond) (any, error) {
	var v any
	q, args := fmt.Sprintf(`SELECT max(%s) FROM %s`, quoteSQLite(column), quoteSQLite(table)), []any(nil)
	if len(where) > 0 {
		q += " WHERE " + condSQL(where, quoteSQLite, func(int) string { return "?" }, &args)
	}
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&v); err != nil {
		return nil, fmt.Errorf("sqlite %s: max(%s.%s): %w", s.path, table, column, err)
	}
	return v, nil
}

// Read implements Source.
func (s *SQLite) Read(ctx context.Context, q Query) ([][]any, error) {
	// On a raw connection (rawConn says why).
	c, err := s.raw.get()
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: read %s: %w", s.path, q.Table, err)
	}
	out, err := s.readOn(ctx, c, q)
	if err != nil {
		c.close() // a failed connection is not reused
		return nil, err
	}
	s.raw.put(c)
	return out, nil
}

// readOn reads a page on connection c; rows are carved from one backing array per chunk.
func (s *SQLite) readOn(ctx context.Context, c *rawConn, q Query) ([][]any, error) {
	types := s.declType[q.Table]
	// The driver turns text in DATE/DATETIME/TIMESTAMP columns into time.Time by its own rules;
	// unary + (a no-op in SQLite) hides the declared type so the engine sees the raw value.
	sel := func(c string) string {
		switch strings.ToUpper(types[c]) {
		case "DATE", "DATETIME", "TIMESTAMP":
			return "+" + quoteSQLite(c)
		}
		return quoteSQLite(c)
	}
	query, args := buildSelect(q, quoteSQLite, sel, func(int) string { return "?" })
	n := len(q.Columns)
	chunk := 1024
	var out [][]any
	if q.Limit > 0 {
		out = make([][]any, 0, q.Limit)
		chunk = min(q.Limit, 8192)
	}
	var backing []any
	err := c.query(ctx, query, args, n, q.Packed, func(vals []any) {
		if len(backing)+n > cap(backing) {
			backing = make([]any, 0, chunk*n)
		}
		row := backing[len(backing) : len(backing)+n : len(backing)+n]
		backing = backing[:len(backing)+n]
		copy(row, vals)
		out = append(out, row)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: read %s: %w", s.path, q.Table, err)
	}
	return out, nil
}
