package dbcopy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Monthly partitions of a partitioned entity are named <table>_<yyyy>_<mm>, its DEFAULT
// partition <table>_default.
//
// Lock order: creating a partition takes an ACCESS EXCLUSIVE lock on the partitioned table, so
// it must never wait for a transaction of a batch that itself waits (in Go, for an earlier
// batch to commit) on the creation: PostgreSQL cannot see that cycle, and it hung the load
// for ever. Partitions are therefore created only while no batch of the run has a transaction
// open: CopyBatches drains its writers before a page that needs a new month (see copyRun),
// single batches and retries create them before their transaction begins. Every creation is
// bounded by ddlLockTimeout (a lock held by someone else, the application say, is a retryable
// error, not a wait without end).

// testHookBeforePartitionDDL runs before a partition is created (tests hold the creation back
// to put the writers in a given order).
var testHookBeforePartitionDDL func(ctx context.Context, partition string)

// ddlLockTimeout bounds how long creating a partition waits for the partitioned table.
var ddlLockTimeout = 30 * time.Second

func monthPartition(ent *spec.Entity, m time.Time) string {
	return ident63(ent.TargetTable, m.Format("2006_01"))
}

func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// knownPartitions loads, once per engine and table, the partitions that exist already (a new
// worker then creates none of them again).
func (e *Engine) knownPartitions(ctx context.Context, ent *spec.Entity) error {
	e.mu.Lock()
	loaded := e.partitions["\x00"+ent.TargetTable]
	e.mu.Unlock()
	if loaded {
		return nil
	}
	rows, err := e.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1)`, e.qualified(ent.TargetTable))
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", ent.TargetTable, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", ent.TargetTable, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range names {
		e.partitions[n] = true
	}
	e.partitions["\x00"+ent.TargetTable] = true
	return nil
}

// missingPartitions returns the months the rows fall into that have no partition yet, in order.
func (e *Engine) missingPartitions(ctx context.Context, p *entityPlan, rows []prepared) ([]time.Time, error) {
	if p.partIdx < 0 {
		return nil, nil
	}
	if err := e.knownPartitions(ctx, p.ent); err != nil {
		return nil, err
	}
	var months []time.Time
	seen := map[time.Time]bool{}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range rows {
		t, ok := r.part.(time.Time)
		if !ok {
			continue
		}
		m := monthOf(t)
		if seen[m] || e.partitions[monthPartition(p.ent, m)] {
			continue
		}
		seen[m] = true
		months = append(months, m)
	}
	slices.SortFunc(months, func(a, b time.Time) int { return a.Compare(b) })
	return months, nil
}

// ensurePartitions creates the monthly partitions the rows fall into. The caller holds no
// transaction on the entity's table (see the lock order above).
func (e *Engine) ensurePartitions(ctx context.Context, p *entityPlan, rows []prepared) error {
	months, err := e.missingPartitions(ctx, p, rows)
	if err != nil {
		return err
	}
	return e.createPartitions(ctx, p.ent, months)
}

func (e *Engine) createPartitions(ctx context.Context, ent *spec.Entity, months []time.Time) error {
	for _, m := range months {
		if _, err := e.createMonth(ctx, ent, m); err != nil {
			return err
		}
	}
	return nil
}

// createMonth creates the partition of month m (idempotent) in its own transaction, through
// the target's cutover_create_month (partitionfn.go: under an advisory lock on the table so two
// workers do not race, rows the application wrote into the DEFAULT partition for that month
// moved into the new one), with a bounded lock wait. It reports whether it created it.
func (e *Engine) createMonth(ctx context.Context, ent *spec.Entity, m time.Time) (bool, error) {
	name := monthPartition(ent, m)
	if testHookBeforePartitionDDL != nil {
		testHookBeforePartitionDDL(ctx, name)
	}
	if err := e.installPartitionFunctions(ctx); err != nil {
		return false, err
	}
	var made *string
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = '%dms'`, ddlLockTimeout.Milliseconds())); err != nil {
			return err
		}
		return tx.QueryRow(ctx, fmt.Sprintf(`SELECT %s($1::regclass, $2::date)`, e.partitionFunction("cutover_create_month")),
			e.qualified(ent.TargetTable), m.Format("2006-01-02")).Scan(&made)
	})
	if err != nil {
		return false, fmt.Errorf("create partition %s: %w", name, err)
	}
	e.mu.Lock()
	e.partitions[name] = true
	e.mu.Unlock()
	return made != nil, nil
}

// PartitionsAhead makes a partitioned entity's table ready for the application's own writes
// through the target's cutover_partitions_ahead (partitionfn.go): a DEFAULT partition, and a
// partition for every month from now's to months ahead, rows stranded in the DEFAULT
// partition moved to their new month. It returns the partitions it created; idempotent. The
// migration runs it at cutover and on its timer until it is closed; the operator's scheduler
// runs the same function afterwards.
func (e *Engine) PartitionsAhead(ctx context.Context, entity string, now time.Time, months int) ([]string, error) {
	ent, ok := e.spec.Entity(entity)
	if !ok {
		return nil, fmt.Errorf("%w: no entity %q", ErrSpec, entity)
	}
	if ent.Partition == nil {
		return nil, nil
	}
	if err := e.installPartitionFunctions(ctx); err != nil {
		return nil, err
	}
	var created []string
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		created = nil
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = '%dms'`, ddlLockTimeout.Milliseconds())); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT * FROM %s($1::regclass, $2, $3)`,
			e.partitionFunction("cutover_partitions_ahead")), e.qualified(ent.TargetTable), months, now.UTC())
		if err != nil {
			return err
		}
		created, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("partitions ahead of %s: %w", ent.TargetTable, err)
	}
	e.mu.Lock()
	for _, n := range created {
		e.partitions[n] = true
	}
	e.mu.Unlock()
	return created, nil
}
