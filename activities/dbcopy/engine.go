// Package dbcopy is the database copy engine: it moves entities from SQLite or PostgreSQL into
// PostgreSQL in checkpointed batches, mapping legacy ids to UUIDv5s, quarantining bad rows in
// migration_errors, and proving the copy with counts, referential checks, business rules and
// per-row content hashes. The DB workflows drive it through Activities.
//
// The ledger of a migration (the control tables of schema/migrations/0002_dbmigrate.sql:
// orchestration, entity status, batches, checkpoints, mappings, errors, schema operations,
// validation results) lives in the target database, in its own schema (spec target.ledger_schema,
// default "cutover"), so that one transaction commits a batch's rows together with its mappings,
// checkpoint and status.
package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/schema"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Options bind a spec to one migration run.
type Options struct {
	MigrationID   uuid.UUID
	MigrationType model.MigrationType // default full_migration
	CreatedBy     string
	// TargetURL is used when the spec names no target DSN (the worker's DATABASE_URL).
	TargetURL string
	// Password resolves a credentials_ref to the password completing a DSN (the vault);
	// nil refuses specs that carry references.
	Password func(ctx context.Context, ref string) (string, error)
	Logger   *slog.Logger
	// Writers is how many batches are written concurrently (each on its own connection,
	// committed in batch order); default 2.
	Writers int
	// Parallelism is how many entities the workflow loads at once (recorded only).
	Parallelism int
	// Preparing: the engine is opened to prepare the migration, so the target tables the spec
	// asks for are created while the ledger's schema is applied (applyLedger).
	Preparing bool
}

// Engine runs one migration's copy work. It is safe for concurrent use by several entities.
type Engine struct {
	spec    *spec.Spec
	opt     Options
	ns      uuid.UUID
	pool    *pgxpool.Pool // target database; search_path is the ledger schema
	ledger  *store.Store
	sources map[string]source.Source
	// sourceDSN is each PostgreSQL source's DSN with its password (change capture opens
	// replication connections with it); never logged.
	sourceDSN map[string]string
	targetDSN string // the target's DSN with its password (reverse capture); never logged
	log       *slog.Logger

	mapIDs *mappingIDs // ids of mapping rows and blocks

	mu         sync.Mutex
	plans      map[string]*entityPlan
	partitions map[string]bool // partitions known to exist
	// partitionFns: the partition functions are installed in the target (partitionfn.go).
	partitionFns bool
	// snapshots hold the exported snapshot of a PostgreSQL source's new replication slot while
	// the full load reads under it (capture_pg.go).
	snapshots map[string]*pgconn.PgConn
	// tablesMade: Open created the spec's target tables beside the ledger schema, so Prepare
	// need not (once: a later Prepare creates them again, which is a no-op when they exist).
	tablesMade bool
}

// Bounds of the target's sessions: how long a statement may wait for a lock, run, or leave its
// transaction idle (a batch that waits for an earlier one to commit is idle in transaction).
// Index builds after the load get finalizeStatementTimeout instead.
var (
	lockTimeout        = time.Minute
	statementTimeout   = 30 * time.Minute
	idleInTransaction  = 10 * time.Minute
	finalizeStatements = 4 * time.Hour
)

// sessionBounds are the target's session settings, the spec's bounds when it sets them.
func sessionBounds(t spec.Target) map[string]string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%d", d.Milliseconds()) }
	return map[string]string{"lock_timeout": ms(spec.Bound(t.LockTimeout, lockTimeout)),
		"statement_timeout":                   ms(spec.Bound(t.StatementTimeout, statementTimeout)),
		"idle_in_transaction_session_timeout": ms(idleInTransaction)}
}

// ErrSpec marks errors in the spec or in its fit to the live databases: retrying cannot help.
var ErrSpec = errors.New("migration spec does not fit the databases")

// Open validates the spec, connects to the target and the sources and makes sure the ledger
// schema exists and is migrated.
func Open(ctx context.Context, sp *spec.Spec, opt Options) (*Engine, error) {
	sp.ApplyDefaults()
	if err := sp.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	if opt.MigrationID == uuid.Nil {
		return nil, errors.New("dbcopy: migration id is required")
	}
	if opt.MigrationType == "" {
		opt.MigrationType = model.MigrationFull
	}
	if opt.CreatedBy == "" {
		opt.CreatedBy = "cutover"
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	e := &Engine{spec: sp, opt: opt, ns: sp.NamespaceUUID(), sources: map[string]source.Source{},
		sourceDSN: map[string]string{}, snapshots: map[string]*pgconn.PgConn{},
		plans: map[string]*entityPlan{}, partitions: map[string]bool{}, mapIDs: newMappingIDs(),
		log: opt.Logger.With("migration_id", opt.MigrationID.String())}
	if err := e.connectTarget(ctx); err != nil {
		return nil, err
	}
	for name, src := range sp.Sources {
		s, err := e.openSource(ctx, name, src)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("source %q: %w", name, err)
		}
		e.sources[name] = s
	}
	return e, nil
}

// Spec returns the engine's spec.
func (e *Engine) Spec() *spec.Spec { return e.spec }

// Pool is the target database pool (search_path = ledger schema); tests and activities read
// the ledger with store.New(Pool()).
func (e *Engine) Pool() *pgxpool.Pool { return e.pool }

// Ledger is the store on the migration's ledger.
func (e *Engine) Ledger() *store.Store { return e.ledger }

// Close releases connections.
func (e *Engine) Close() {
	e.closeSnapshots()
	for _, s := range e.sources {
		_ = s.Close()
	}
	if e.pool != nil {
		e.pool.Close()
	}
}

func (e *Engine) password(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	if e.opt.Password == nil {
		return "", fmt.Errorf("%w: credentials_ref given but no vault is configured", ErrSpec)
	}
	pw, err := e.opt.Password(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("resolve credentials_ref %s: %w", ref, err)
	}
	return pw, nil
}

func (e *Engine) connectTarget(ctx context.Context) error {
	dsn := e.spec.Target.DSN
	if dsn == "" {
		dsn = e.opt.TargetURL
	}
	if dsn == "" {
		dsn = store.URLFromEnv()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("%w: target dsn is malformed", ErrSpec)
	}
	pw, err := e.password(ctx, e.spec.Target.CredentialsRef)
	if err != nil {
		return err
	}
	if pw != "" {
		cfg.ConnConfig.Password = pw
		e.targetDSN = withPassword(dsn, pw)
	} else {
		e.targetDSN = dsn
	}
	ledger := e.spec.Target.LedgerSchema
	cfg.ConnConfig.RuntimeParams["search_path"] = ledger
	cfg.ConnConfig.RuntimeParams["application_name"] = "cutover-dbcopy"
	cfg.ConnConfig.RuntimeParams["TimeZone"] = "UTC"
	// Every statement is bounded (see Bounds): a wait on a lock or a statement that never
	// ends becomes a retryable timeout, and an abandoned transaction does not hold its locks.
	for k, v := range sessionBounds(e.spec.Target) {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	// Connections a migration no longer uses go back to the server soon: between catch-up
	// passes or after a burst of writers, idle ones are not kept for pgxpool's half hour.
	cfg.MaxConnIdleTime = time.Minute
	where := fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	// The database itself may not exist yet (a fresh target): store.Open creates it.
	admin := cfg.Copy()
	delete(admin.ConnConfig.RuntimeParams, "search_path")
	if db, err := store.Open(ctx, admin.ConnString()); err == nil {
		if _, err := db.Pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+spec.QuoteIdent(ledger)); err != nil {
			db.Close()
			return fmt.Errorf("target %s: create ledger schema: %w", where, err)
		}
		db.Close()
	} else {
		// store.Open may have failed only on creating the database; connect directly.
		c, cerr := pgx.ConnectConfig(ctx, admin.ConnConfig)
		if cerr != nil {
			return fmt.Errorf("target %s: %w", where, cerr)
		}
		_, xerr := c.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+spec.QuoteIdent(ledger))
		_ = c.Close(ctx)
		if xerr != nil {
			return fmt.Errorf("target %s: create ledger schema: %w", where, xerr)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("target %s: %w", where, err)
	}
	if err := e.applyLedger(ctx, pool); err != nil {
		pool.Close()
		return fmt.Errorf("target %s: ledger schema %s: %w", where, ledger, err)
	}
	e.pool, e.ledger = pool, store.New(pool)
	return nil
}

// applyLedger applies the ledger's schema: the database migration model's tables, not the
// email domain's (schema.ApplyLedger). Opened to prepare a migration whose spec creates its
// target tables, it creates them meanwhile on another connection: both are DDL that spends
// most of its time waiting for the disk (PostgreSQL syncs every new index's file as it builds
// it, and the ledger alone has dozens), and neither needs the other. A failure to create the
// tables is left for Prepare to meet again and report.
func (e *Engine) applyLedger(ctx context.Context, pool *pgxpool.Pool) error {
	if !e.opt.Preparing || !e.spec.Target.CreateTables {
		_, err := schema.ApplyLedger(ctx, pool)
		return err
	}
	tables := make(chan error, 1)
	go func() { tables <- e.createTables(ctx, pool) }()
	_, err := schema.ApplyLedger(ctx, pool)
	e.tablesMade = <-tables == nil
	return err
}

func (e *Engine) openSource(ctx context.Context, name string, src spec.Source) (source.Source, error) {
	switch src.Driver {
	case "sqlite":
		return source.OpenSQLite(ctx, src.Path)
	case "postgres":
		if _, err := pgx.ParseConfig(src.DSN); err != nil {
			return nil, fmt.Errorf("%w: source dsn is malformed", ErrSpec)
		}
		pw, err := e.password(ctx, src.CredentialsRef)
		if err != nil {
			return nil, err
		}
		dsn := src.DSN
		if pw != "" {
			dsn = withPassword(src.DSN, pw)
		}
		e.sourceDSN[name] = dsn
		return source.OpenPostgres(ctx, dsn, "public")
	}
	return nil, fmt.Errorf("%w: driver %q", ErrSpec, src.Driver)
}

// withPassword adds password to a URL or keyword/value DSN.
func withPassword(dsn, pw string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := parseURL(dsn); err == nil {
			u.User = userWithPassword(u.User.Username(), pw)
			return u.String()
		}
	}
	return dsn + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'"
}

// MigrationID is the run this engine writes for.
func (e *Engine) MigrationID() uuid.UUID { return e.opt.MigrationID }

// Prepare registers the orchestration and its entities in the ledger (idempotent), creates the
// target tables when the spec asks, and checks every entity against the live schemas,
// reporting all misfits at once.
func (e *Engine) Prepare(ctx context.Context) error {
	if _, err := e.ledger.CreateOrchestration(ctx, store.Orchestration{ID: e.opt.MigrationID,
		MigrationType: e.opt.MigrationType, TotalEntities: int32(len(e.spec.Entities)),
		Configuration: e.configuration(),
		CreatedBy:     e.opt.CreatedBy}); err != nil {
		return err
	}
	order, err := e.spec.Order()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	e.mu.Lock()
	made := e.tablesMade
	e.tablesMade = false
	e.mu.Unlock()
	if e.spec.Target.CreateTables && !made {
		if err := e.CreateTables(ctx); err != nil {
			return err
		}
	}
	var problems []string
	var plans []*entityPlan
	for i, name := range order {
		ent, _ := e.spec.Entity(name)
		if err := e.ensureShape(ctx, ent); err != nil {
			return err
		}
		p, err := e.compile(ctx, ent)
		if err != nil {
			var pe *planError
			if errors.As(err, &pe) {
				problems = append(problems, pe.problems...)
				continue
			}
			return err
		}
		plans = append(plans, p)
		total, err := p.src.Count(ctx, ent.SourceTable, p.where...)
		if err != nil {
			return err
		}
		st, err := e.ledger.UpsertEntityStatus(ctx, store.EntityStatus{
			ID:          uuid.NewSHA1(e.opt.MigrationID, []byte("entity/"+name)),
			MigrationID: e.opt.MigrationID, EntityName: name, TargetEntity: ent.TargetTable,
			DependencyOrder: int32(i), RecordsTotal: total, BatchSize: int32(ent.BatchSize)})
		if err != nil {
			return err
		}
		if _, err := e.pool.Exec(ctx, `UPDATE entity_migration_status SET records_total = greatest($2::bigint, records_processed + records_failed)
			WHERE id = $1 AND status = 'pending'`, st.ID, total); err != nil {
			return fmt.Errorf("entity %s total: %w", name, err)
		}
		if _, err := e.ledger.UpsertLegacyEntityMapping(ctx, legacyMapping(ent, e.spec.Dependencies()[name])); err != nil {
			return err
		}
	}
	if len(problems) == 0 {
		if problems, err = e.checkUnlisted(ctx, plans); err != nil {
			return err
		}
	}
	if len(problems) == 0 {
		held, err := e.checkExisting(ctx, plans)
		if err != nil {
			return err
		}
		problems = held
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  - %s", ErrSpec, strings.Join(problems, "\n  - "))
	}
	return nil
}

// configuration is what the orchestration's configuration column records of how the migration
// runs: the spec, its batch size, how many entities load at once and how many batches of one
// entity are written at once, its error budget, what it does with rows already in the target,
// and each source's capture mode.
func (e *Engine) configuration() []byte {
	capture := map[string]string{}
	for name, src := range e.spec.Sources {
		capture[name] = "none" // a full load reads once, nothing follows the source
		if e.opt.MigrationType == model.MigrationIncremental {
			capture[name] = src.CaptureMode()
		}
	}
	c := map[string]any{"spec": e.spec.Name, "version": e.spec.Version, "batch_size": e.spec.BatchSize,
		"writers_per_entity": e.writers(), "error_budget": e.spec.ErrorBudget, "on_existing": orDefault(e.spec.Target.OnExisting, spec.OnExistingFail),
		"capture": capture}
	if e.opt.Parallelism > 0 {
		c["parallelism"] = e.opt.Parallelism
	}
	return mustJSON(c)
}

// legacyMapping is the entity's rules as a legacy_entity_mappings row.
func legacyMapping(ent *spec.Entity, deps []string) store.LegacyEntityMapping {
	rules := map[string]any{"key": ent.Key, "columns": ent.Columns, "source_table": ent.SourceTable,
		"batch_size": ent.BatchSize}
	var validation any = map[string]any{}
	if len(ent.Validation) > 0 {
		validation = map[string]any{"rules": ent.Validation}
	}
	version := ent.Version
	if version == "" {
		version = "1"
	}
	return store.LegacyEntityMapping{SourceEntity: ent.Name, DestinationEntity: ent.TargetTable,
		TransformationRules: mustJSON(rules), DependencyEntities: slices.Clone(deps),
		ValidationRules: mustJSON(validation), IsActive: true, Version: version}
}

// EntityStatusID is the ledger id of an entity of this migration (deterministic).
func (e *Engine) EntityStatusID(entity string) uuid.UUID {
	return uuid.NewSHA1(e.opt.MigrationID, []byte("entity/"+entity))
}
