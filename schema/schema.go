// Package schema holds the SQL migrations of cutover's control tables (the email migration model,
// the database migration model, and the ledgers later packages add) and applies them.
//
// Migrations are embedded, numbered NNNN_name.sql, applied in order inside one transaction each
// and recorded in schema_migrations. Applying twice is a no-op; a database migrated by a newer
// binary is refused rather than silently used by an older one.
package schema

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var files embed.FS

// ErrTooNew means the database carries migrations this binary does not know.
var ErrTooNew = errors.New("database schema is newer than this binary")

// ErrModified means an applied migration's text differs from the embedded one.
var ErrModified = errors.New("applied migration differs from the embedded one")

// Migration is one embedded SQL file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// advisoryLock serialises concurrent Apply calls (several workers starting at once).
const advisoryLock = 0x637574_6f766572 // "cutover"

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(files, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration version %d used by %q and %q", v, prev, e.Name())
		}
		seen[v] = e.Name()
		body, err := files.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: v, Name: name, SQL: string(body), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Latest is the highest migration version this binary knows.
func Latest() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// Result says what Apply did.
type Result struct {
	Applied []int // versions applied by this call
	Version int   // schema version after the call
}

// mailOnly are the migrations of the email domain's tables alone (jobs, mailboxes, runs, gate
// checks, the vault, the IMAP ledger, notification deliveries), by version and name: nothing
// of a database migration reads or writes those tables, and no other migration touches them.
// A database migration's ledger in its target (ApplyLedger) goes without them. A new migration
// of mail tables only belongs here; one left out is applied to every ledger too, which costs
// time, not correctness.
var mailOnly = map[int]string{
	1: "email", 3: "mail_ledger", 5: "emailjob", 8: "mail_late_copies", 11: "email_safety",
	12: "mail_rewriting", 14: "mail_keywords", 20: "notifications", 21: "dns_checks",
	25: "mail_folder_counts", 28: "prior_claims_unsure",
}

// Apply brings the database up to the latest embedded migration.
func Apply(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	return apply(ctx, pool, false)
}

// ApplyLedger brings a database migration's ledger (in the migration's target) up to date: every
// migration but the email domain's (mailOnly). Each index the schema creates costs its own
// sync of the disk; the email tables' are about a third of them, and a target needs none. A
// database given only the ledger and later the whole schema (Apply) ends the same as one given
// the whole schema at once: the email migrations, applied then after later ones, touch only
// their own tables.
func ApplyLedger(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	return apply(ctx, pool, true)
}

func apply(ctx context.Context, pool *pgxpool.Pool, ledgerOnly bool) (Result, error) {
	ms, err := Migrations()
	if err != nil {
		return Result{}, err
	}
	for v, name := range mailOnly {
		if !slices.ContainsFunc(ms, func(m Migration) bool { return m.Version == v && m.Name == name }) {
			return Result{}, fmt.Errorf("schema apply: mail migration %04d_%s is not embedded", v, name)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("schema apply: acquire connection: %w", err)
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(advisoryLock)); err != nil {
		return Result{}, fmt.Errorf("schema apply: lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be cancelled, and the lock must not outlive us.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(advisoryLock))
	}()

	// Only when missing: CREATE TABLE IF NOT EXISTS needs the CREATE privilege even when the
	// table exists, and a worker whose role has only the README's privileges (DML, no DDL)
	// must start against a schema an administrator applied.
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return Result{}, fmt.Errorf("schema apply: look for schema_migrations: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT        NOT NULL,
		checksum   TEXT        NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return Result{}, fmt.Errorf("schema apply: create schema_migrations: %w", err)
		}
	}

	applied := map[int]string{}
	rows, err := conn.Query(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return Result{}, fmt.Errorf("schema apply: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return Result{}, fmt.Errorf("schema apply: scan schema_migrations: %w", err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return Result{}, fmt.Errorf("schema apply: read schema_migrations: %w", err)
	}

	known := map[int]Migration{}
	latest := 0
	for _, m := range ms {
		known[m.Version] = m
		latest = m.Version
	}
	dbLatest := 0
	for v, sum := range applied {
		dbLatest = max(dbLatest, v)
		m, ok := known[v]
		if !ok {
			continue
		}
		if m.Checksum != sum {
			return Result{}, fmt.Errorf("migration %04d_%s: %w", v, m.Name, ErrModified)
		}
	}
	if dbLatest > latest {
		return Result{}, fmt.Errorf("%w: database is at version %d, this binary knows up to %d; upgrade cutover",
			ErrTooNew, dbLatest, latest)
	}

	res := Result{Version: dbLatest}
	for _, m := range ms {
		if _, done := applied[m.Version]; done {
			continue
		}
		if _, mail := mailOnly[m.Version]; mail && ledgerOnly {
			continue
		}
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
				m.Version, m.Name, m.Checksum)
			return err
		}); err != nil {
			return res, fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
		}
		res.Applied = append(res.Applied, m.Version)
		res.Version = m.Version
	}
	return res, nil
}
