package source

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/dbcopy/spec"
)

// Postgres reads a PostgreSQL database. Every value is selected as text (the engine casts
// from text), with the session in UTC so timestamps render one way.
type Postgres struct {
	pool   *pgxpool.Pool
	schema string
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
	return cols, nil
}

// Count implements Source.
func (p *Postgres) Count(ctx context.Context, table string) (int64, error) {
	var n int64
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM `+p.table(table)).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres source: count %s: %w", table, err)
	}
	return n, nil
}

// Max implements Source (as text, like every value read here).
func (p *Postgres) Max(ctx context.Context, table, column string) (any, error) {
	var v *string
	q := fmt.Sprintf(`SELECT max(%s)::text FROM %s`, spec.QuoteIdent(column), p.table(table))
	if err := p.pool.QueryRow(ctx, q).Scan(&v); err != nil {
		return nil, fmt.Errorf("postgres source: max(%s.%s): %w", table, column, err)
	}
	if v == nil {
		return nil, nil
	}
	return *v, nil
}

// Read implements Source.
func (p *Postgres) Read(ctx context.Context, q Query) ([][]any, error) {
	query, args := buildSelect(q, spec.QuoteIdent, func(c string) string { return spec.QuoteIdent(c) + "::text" },
		func(i int) string { return fmt.Sprintf("$%d", i) })
	// buildSelect quotes a bare table name; qualify it with the schema.
	query = replaceFrom(query, spec.QuoteIdent(q.Table), p.table(q.Table))
	rows, err := p.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres source: read %s: %w", q.Table, err)
	}
	defer rows.Close()
	var out [][]any
	if q.Limit > 0 {
		out = make([][]any, 0, q.Limit)
	}
	n := len(q.Columns)
	for rows.Next() {
		raw := rows.RawValues()
		vals := make([]any, n)
		for i := range n {
			if raw[i] != nil {
				vals[i] = string(raw[i]) // text format: the bytes are the text
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres source: read %s: %w", q.Table, err)
	}
	return out, nil
}

func replaceFrom(query, bare, qualified string) string {
	return strings.Replace(query, " FROM "+bare, " FROM "+qualified, 1)
}
