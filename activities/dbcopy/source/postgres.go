package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Postgres reads a PostgreSQL database. Every value is selected as text (the engine casts
// from text), with the session in UTC so timestamps render one way; but bytea, whose text is a
// hex rendering, is read as its bytes.
type Postgres struct {
	pool   *pgxpool.Pool
	schema string

	mu       sync.Mutex
	snapshot string                     // exported snapshot reads are made under ("" = the current state)
	binary   map[string]map[string]bool // table → its bytea columns (Columns fills it)
}

// UseSnapshot makes later reads see the database as of an exported snapshot (the one a
// replication slot was created with), while its exporting session holds it; "" reads the
// current state again. A snapshot that can no longer be imported is dropped with a log line
// and reads go on in the current state (see Read).
func (p *Postgres) UseSnapshot(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snapshot = name
}

// Snapshot is the snapshot reads are made under ("" for none).
func (p *Postgres) Snapshot() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshot
}

// OpenPostgres connects with a DSN whose password, if any, was filled in from the vault.
// schema qualifies table names (default public).
func OpenPostgres(ctx context.Context, dsn, schema string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres source: malformed DSN") // never echo it: it may hold a password
	}
	cfg.ConnConfig.RuntimeParams["TimeZone"] = "UTC"
	cfg.ConnConfig.RuntimeParams["application_name"] = "cutover-source"
	// Reads are bounded: a lock the application holds (an ALTER TABLE) or a read that never
	// ends becomes an error the copy retries, not a wait without end.
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = "60000"
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "1800000"
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres source %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	if schema == "" {
		schema = "public"
	}
	return &Postgres{pool: pool, schema: schema}, nil
}

// Driver implements Source.
func (p *Postgres) Driver() string { return "postgres" }

// Close implements Source.
func (p *Postgres) Close() error { p.pool.Close(); return nil }

func (p *Postgres) table(t string) string { return spec.QuoteQualified(p.schema, t) }

// Tables implements Source: the schema's tables and partitioned tables (not their partitions).
func (p *Postgres) Tables(ctx context.Context) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		AND substr(c.relname, 1, length($2)) <> $2 ORDER BY 1`, p.schema, OwnPrefix)
	if err != nil {
		return nil, fmt.Errorf("postgres source: tables of %s: %w", p.schema, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres source: tables of %s: %w", p.schema, err)
	}
	return out, nil
}

// Columns implements Source.
func (p *Postgres) Columns(ctx context.Context, table string) ([]Column, error) {
	rows, err := p.pool.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, p.schema, table)
	if err != nil {
		return nil, fmt.Errorf("postgres source: columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var c Column
		err := r.Scan(&c.Name, &c.DeclType)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres source: columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("postgres source: table %s.%s does not exist", p.schema, table)
	}
	bin := map[string]bool{}
	for _, c := range cols {
		if c.DeclType == "bytea" {
			bin[c.Name] = true
		}
	}
	p.mu.Lock()
	if p.binary == nil {
		p.binary = map[string]map[string]bool{}
	}
	p.binary[table] = bin
	p.mu.Unlock()
	return cols, nil
}

// Count implements Source.
func (p *Postgres) Count(ctx context.Context, table string, where ...Cond) (int64, error) {
	var n int64
	q, args := `SELECT count(*) FROM `+p.table(table), []any(nil)
	if len(where) > 0 {
		q += " WHERE " + condSQL(where, spec.QuoteIdent, pgPlaceholder, &args)
	}
	if err := p.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres source: count %s: %w", table, err)
	}
	return n, nil
}

// Max implements Source (as text, like every value read here).
func (p *Postgres) Max(ctx context.Context, table, column string, where ...Cond) (any, error) {
	var v *string
	q, args := fmt.Sprintf(`SELECT max(%s)::text FROM %s`, spec.QuoteIdent(column), p.table(table)), []any(nil)
	if len(where) > 0 {
		q += " WHERE " + condSQL(where, spec.QuoteIdent, pgPlaceholder, &args)
	}
	if err := p.pool.QueryRow(ctx, q, args...).Scan(&v); err != nil {
		return nil, fmt.Errorf("postgres source: max(%s.%s): %w", table, column, err)
	}
	if v == nil {
		return nil, nil
	}
	return *v, nil
}

// Read implements Source.
func (p *Postgres) Read(ctx context.Context, q Query) ([][]any, error) {
	p.mu.Lock()
	bin := p.binary[q.Table]
	p.mu.Unlock()
	sel := func(c string) string {
		if bin[c] {
			return spec.QuoteIdent(c) // read in binary: the bytes themselves
		}
		return spec.QuoteIdent(c) + "::text"
	}
	query, args := buildSelect(q, spec.QuoteIdent, sel, func(i int) string { return fmt.Sprintf("$%d", i) })
	// buildSelect quotes a bare table name; qualify it with the schema.
	query = replaceFrom(query, spec.QuoteIdent(q.Table), p.table(q.Table))
	if snap := p.Snapshot(); snap != "" {
		var out [][]any
		err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
			func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snap)); err != nil {
					return &snapshotGone{err}
				}
				rows, err := tx.Query(ctx, query, args...)
				if err != nil {
					return err
				}
				out, err = collectText(rows, binaryColumns(q.Columns, bin), q.Limit)
				return err
			})
		var gone *snapshotGone
		if !errors.As(err, &gone) {
			if err != nil {
				return nil, fmt.Errorf("postgres source: read %s: %w", q.Table, err)
			}
			return out, nil
		}
		// The session that exported it ended (a worker restart): every change since the slot's
		// start is in the slot, and catch-up applies each changed row as it is now, so reading
		// the current state from here on converges the same.
		slog.Warn("postgres source: the load's snapshot is gone; reading the current state", "err", gone.err)
		p.UseSnapshot("")
	}
	rows, err := p.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres source: read %s: %w", q.Table, err)
	}
	out, err := collectText(rows, binaryColumns(q.Columns, bin), q.Limit)
	if err != nil {
		return nil, fmt.Errorf("postgres source: read %s: %w", q.Table, err)
	}
	return out, nil
}

// snapshotGone wraps a failed snapshot import.
type snapshotGone struct{ err error }

func (s *snapshotGone) Error() string { return "import snapshot: " + s.err.Error() }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// binaryColumns says, per selected column, whether it is read as bytes (bytea).
func binaryColumns(cols []string, bin map[string]bool) []bool {
	out := make([]bool, len(cols))
	for i, c := range cols {
		out[i] = bin[c]
	}
	return out
}

// collectText reads rows whose values are text, but for the binary columns (bytes).
func collectText(rows pgx.Rows, binary []bool, limit int) ([][]any, error) {
	defer rows.Close()
	var out [][]any
	if limit > 0 {
		out = make([][]any, 0, limit)
	}
	n := len(binary)
	for rows.Next() {
		raw := rows.RawValues()
		vals := make([]any, n)
		for i := range n {
			switch {
			case raw[i] == nil:
			case binary[i]:
				vals[i] = bytes.Clone(raw[i]) // binary format: the bytes themselves
			default:
				vals[i] = string(raw[i]) // text format: the bytes are the text
			}
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

func pgPlaceholder(i int) string { return fmt.Sprintf("$%d", i) }

func replaceFrom(query, bare, qualified string) string {
	return strings.Replace(query, " FROM "+bare, " FROM "+qualified, 1)
}
