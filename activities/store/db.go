// Package store is cutover's pgx access to its PostgreSQL control tables: the queryable
// projection of every migration and the ledgers that make re-runs idempotent. No ORM: each
// repository method is one statement a reader can check against schema/migrations.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/schema"
)

// DefaultURL is used when DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/cutover"

// ErrNotFound is returned when a row looked up by key does not exist.
var ErrNotFound = errors.New("not found")

// Querier is what repositories run statements on: a pool or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store runs the typed repository methods on a Querier.
type Store struct{ q Querier }

// New wraps a pool or a transaction.
func New(q Querier) *Store { return &Store{q: q} }

// Q exposes the underlying Querier for packages that add their own statements.
func (s *Store) Q() Querier { return s.q }

// DB owns the connection pool.
type DB struct {
	*Store
	Pool *pgxpool.Pool

	lockMu sync.Mutex
	locks  *pgxpool.Pool // session locks' connections (sessionlock.go), opened on first use
}

// URLFromEnv returns DATABASE_URL or the default.
func URLFromEnv() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Open connects to url, creating the database first when it does not exist yet.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx errors can echo the URL, password included: say only what was wrong.
		return nil, errors.New("parse database URL: malformed connection string")
	}
	if err := ensureDatabase(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", describe(cfg.ConnConfig), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping %s: %w", describe(cfg.ConnConfig), err)
	}
	return &DB{Store: New(pool), Pool: pool}, nil
}

// OpenAndMigrate opens the database and applies the embedded schema.
func OpenAndMigrate(ctx context.Context, url string) (*DB, error) {
	db, err := Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := schema.Apply(ctx, db.Pool); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close releases the pools.
func (db *DB) Close() {
	db.closeLocks()
	db.Pool.Close()
}

// InTx runs fn in one transaction, committed when fn returns nil.
func (db *DB) InTx(ctx context.Context, fn func(*Store) error) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return fn(New(tx)) })
}

// ensureDatabase creates the target database through the maintenance database when a
// connection says it does not exist (SQLSTATE 3D000).
func ensureDatabase(ctx context.Context, cc *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return fmt.Errorf("connect to %s: %w", describe(cc), err)
	}
	admin := cc.Copy()
	admin.Database = "postgres"
	aconn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to %s to create database %q: %w", describe(admin), cc.Database, err)
	}
	defer aconn.Close(ctx)
	_, err = aconn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cc.Database}.Sanitize())
	if err != nil && !isDuplicateDatabase(err) {
		return fmt.Errorf("create database %q: %w", cc.Database, err)
	}
	return nil
}

func isDuplicateDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P04"
}

// describe names a server without its password.
func describe(cc *pgx.ConnConfig) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cc.User, cc.Host, cc.Port, cc.Database)
}

// notFound maps pgx.ErrNoRows to ErrNotFound with context.
func notFound(err error, what string, key any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %v: %w", what, key, ErrNotFound)
	}
	return fmt.Errorf("%s %v: %w", what, key, err)
}
