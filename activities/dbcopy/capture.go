package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/capture"
	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Capture methods (change_capture.method).
const (
	MethodSQLiteTriggers = "sqlite_triggers"
	MethodPGLogical      = "pg_logical"
)

// Directions of a capture: forward follows a source into the target during catch-up; reverse
// follows the target back into the source after cutover.
const (
	DirForward = "forward"
	DirReverse = "reverse"
)

// captureSources are the sources followed by change capture, in spec order.
func (e *Engine) captureSources() []string {
	var names []string
	for _, ent := range e.spec.Entities {
		if !slices.Contains(names, ent.Source) && e.Captured(ent.Name) {
			names = append(names, ent.Source)
		}
	}
	return names
}

// Captured reports whether catch-up follows an entity's source by change capture (and not by
// key cursor).
func (e *Engine) Captured(entity string) bool {
	ent, ok := e.spec.Entity(entity)
	// A composite key is caught up by key cursor: the change log records one key column.
	// So is a filtered table: a change may move a row in or out of the filter.
	return ok && !ent.Key.Composite() && len(ent.Where) == 0 && e.spec.Sources[ent.Source].CaptureMode() != spec.CaptureKeyCursor
}

// sourceTables are the tables (and their keys) a source's entities read.
func (e *Engine) sourceTables(name string) []capture.Table { return e.tablesKeyed(name, true) }

// tablesKeyed is sourceTables, without the tables of entities keyed by several columns unless
// composite.
func (e *Engine) tablesKeyed(name string, composite bool) []capture.Table {
	var out []capture.Table
	for _, ent := range e.spec.Entities {
		t := capture.Table{Name: ent.SourceTable, Key: ent.Key.Source}
		if ent.Source == name && (composite || !ent.Key.Composite()) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// entitiesOf maps each source table of a source to the entities reading it.
func (e *Engine) entitiesOf(name string) map[string][]*spec.Entity {
	out := map[string][]*spec.Entity{}
	for i := range e.spec.Entities {
		ent := &e.spec.Entities[i]
		if ent.Source == name {
			out[ent.SourceTable] = append(out[ent.SourceTable], ent)
		}
	}
	return out
}

// InstallCapture starts following every source's changes — before the full load reads a row,
// so nothing the application writes while the load runs is missed — and records each capture
// in the ledger. Idempotent (a retried install keeps what was captured).
func (e *Engine) InstallCapture(ctx context.Context) error {
	if e.spec.Target.ReverseFlow {
		// Checked now, before the load: the reverse flow starts at cutover.
		if why := e.ReverseSupported(); why != "" {
			return fmt.Errorf("%w: reverse flow: %s", ErrSpec, why)
		}
		conn, err := connectDSN(ctx, e.targetDSN)
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		err = capture.PGPreflight(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("%w: the target, for the reverse flow after cutover: %w", ErrSpec, err)
		}
	}
	for _, name := range e.captureSources() {
		src := e.spec.Sources[name]
		switch src.Driver {
		case "sqlite":
			l, err := capture.OpenSQLite(ctx, src.Path)
			if err != nil {
				return err
			}
			// A table keyed by several columns gets no trigger: it is caught up by key cursor,
			// and a trigger logging its (absent) single key would fail every application write
			// to it.
			err = l.Install(ctx, e.tablesKeyed(name, false))
			l.Close()
			if err != nil {
				return err
			}
			if err := e.recordCapture(ctx, name, DirForward, MethodSQLiteTriggers, "0", ""); err != nil {
				return err
			}
		case "postgres":
			if err := e.installPG(ctx, name); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: source %q: change capture of %s sources is not available", ErrSpec, name, src.Driver)
		}
	}
	return nil
}

func (e *Engine) recordCapture(ctx context.Context, name, dir, method, pos, slot string) error {
	var s *string
	if slot != "" {
		s = &slot
	}
	_, err := e.pool.Exec(ctx, `INSERT INTO change_capture (migration_id, source_name, direction, method, position, slot_name)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (migration_id, source_name, direction) DO NOTHING`,
		e.opt.MigrationID, name, dir, method, pos, s)
	if err != nil {
		return fmt.Errorf("record change capture of %s: %w", name, err)
	}
	return nil
}

// position reads a capture's committed position.
func (e *Engine) position(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name, dir string, lock bool) (string, error) {
	var pos string
	sql := `SELECT position FROM change_capture WHERE migration_id = $1 AND source_name = $2 AND direction = $3`
	if lock {
		sql += ` FOR UPDATE`
	}
	err := q.QueryRow(ctx, sql, e.opt.MigrationID, name, dir).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: source %q has no change capture installed in this migration", capture.ErrNotInstalled, name)
	}
	return pos, err
}

// drainLock is the advisory lock drains hold shared and a full validation takes exclusive for
// an instant to note the last committed drain.
func (e *Engine) drainLock() int64 {
	var k int64
	for _, b := range e.opt.MigrationID[:8] {
		k = k<<8 | int64(b)
	}
	return k ^ 0x0c4a9e
}

// Drain applies every change of a source captured since the last drain, in one target
// transaction that also moves the capture's position (compare-and-set: a drain that finds the
// position moved by another attempt applies nothing). A crash before the commit leaves the
// position where it was, so the next drain applies the same changes again; after the commit
// the position says they are in. The source's change log is trimmed after the commit.
func (e *Engine) Drain(ctx context.Context, name string) (DrainStats, error) {
	src, ok := e.spec.Sources[name]
	if !ok {
		return DrainStats{}, fmt.Errorf("%w: no source %q", ErrSpec, name)
	}
	switch src.Driver {
	case "sqlite":
		return e.drainSQLite(ctx, name)
	case "postgres":
		return e.drainPG(ctx, name)
	}
	return DrainStats{}, fmt.Errorf("%w: source %q: no change capture for %s", ErrSpec, name, src.Driver)
}

// preReadRows bounds the changed rows a SQLite drain holds in memory between reading and
// writing them; a larger backlog is spooled to a temporary file (a variable for tests).
var preReadRows = 200_000

// drainSQLite reads the change log and the rows it names in one read transaction of the file
// (a consistent state: a child row and the parent it points at are read together), ends it,
// then applies them in the target transaction: in rollback-journal mode a reader keeps the
// application's writers from committing, so the file is held only while the drain reads it,
// never while PostgreSQL writes. Up to preReadRows changed rows wait in memory; a larger
// backlog (the first drain after a long load) waits on disk (rowSpool).
func (e *Engine) drainSQLite(ctx context.Context, name string) (DrainStats, error) {
	var st DrainStats
	sq, ok := e.sources[name].(*source.SQLite)
	if !ok {
		return st, fmt.Errorf("source %q is not an open SQLite source", name)
	}
	posText, err := e.position(ctx, e.pool, name, DirForward, false)
	if err != nil {
		return st, err
	}
	pos, err := strconv.ParseInt(posText, 10, 64)
	if err != nil {
		return st, fmt.Errorf("change capture of %s: position %q is not a log sequence number", name, posText)
	}
	byTable := e.entitiesOf(name)
	var last int64
	start := time.Now()
	deltas := map[string]*entityDelta{}
	defer func() {
		for _, d := range deltas {
			if d.spool != nil {
				d.spool.close()
			}
		}
	}()
	err = sq.InSnapshot(ctx, func(snap *source.Snapshot) error {
		keys := map[string]map[string]any{}
		if err := capture.ReadLog(ctx, snap, pos, 0, func(c capture.Change) {
			st.Changes++
			last = c.Seq
			if byTable[c.Table] == nil {
				return
			}
			k, ok := keyText(c.Key)
			if !ok {
				return
			}
			if keys[c.Table] == nil {
				keys[c.Table] = map[string]any{}
			}
			keys[c.Table][k] = c.Key
		}); err != nil {
			return err
		}
		if st.Changes == 0 {
			return nil
		}
		return e.readChanged(ctx, snap, byTable, keys, deltas)
	})
	if err != nil || st.Changes == 0 {
		return DrainStats{}, err
	}
	applied, err := e.commitDrain(ctx, name, posText, strconv.FormatInt(last, 10), st.Changes, start,
		func(tx pgx.Tx, drain int64) (DrainStats, error) {
			return e.applyDeltas(ctx, tx, drain, deltas, nil)
		})
	if err != nil {
		return DrainStats{}, err
	}
	if applied.Changes == 0 {
		return applied, nil // another attempt applied these changes (and trims the log)
	}
	if l, err := capture.OpenSQLite(ctx, e.spec.Sources[name].Path); err == nil {
		if err := l.Trim(ctx, last); err != nil {
			e.log.Warn("change log not trimmed (it is read from the committed position anyway)", "source", name, "err", err)
		}
		l.Close()
	}
	return applied, nil
}

// readChanged reads, inside the file's read transaction, the rows of the changed keys of each
// table (keys: source table → key text → key) into deltas: which keys are gone, and the current
// rows of the others — in memory up to preReadRows rows, else spooled to disk. The rows are read
// once by key, and a key no row comes back for is gone; a table one of whose entities filters
// its rows or has a composite key has its keys looked up apart first (splitPresent).
func (e *Engine) readChanged(ctx context.Context, snap *source.Snapshot, byTable map[string][]*spec.Entity,
	keys map[string]map[string]any, deltas map[string]*entityDelta) error {
	changed := 0
	for table, ks := range keys {
		changed += len(ks) * len(byTable[table])
	}
	spool := changed > preReadRows
	for table, ks := range keys {
		ents := byTable[table]
		plans := make([]*entityPlan, len(ents))
		plain := true
		for i, ent := range ents {
			p, err := e.plan(ctx, ent.Name)
			if err != nil {
				return err
			}
			plans[i] = p
			plain = plain && len(p.where) == 0 && p.nkey == 1
		}
		all := make([]any, 0, len(ks))
		for _, k := range ks {
			all = append(all, k)
		}
		var gone []any
		if !plain {
			var err error
			if all, gone, err = splitPresent(ctx, snap, table, ents[0].Key.Source, ks); err != nil {
				return err
			}
		}
		for i, p := range plans {
			d := &entityDelta{}
			deltas[p.ent.Name] = d
			found, err := readRowsInto(ctx, snap, p, all, d, spool)
			if err != nil {
				return err
			}
			if i == 0 && plain {
				for text, k := range ks {
					if !found[text] {
						gone = append(gone, k)
					}
				}
			}
			d.gone = gone
		}
	}
	return nil
}

// readRowsInto reads the rows of keys into d (its rows, or a spool on disk) and returns the key
// texts of the rows it read.
func readRowsInto(ctx context.Context, snap *source.Snapshot, p *entityPlan, keys []any, d *entityDelta, spool bool) (
	map[string]bool, error) {
	found := make(map[string]bool, len(keys))
	if len(keys) == 0 {
		return found, nil
	}
	if spool {
		var err error
		if d.spool, err = newRowSpool(); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(keys); start += applyChunk {
		q := p.query()
		q.In = keys[start:min(start+applyChunk, len(keys))]
		rows, err := snap.Read(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("read changed rows of %s: %w", p.ent.Name, err)
		}
		for _, r := range rows {
			if k, ok := p.rowKey(r); ok {
				found[k] = true
			}
		}
		if d.spool == nil {
			d.rows = append(d.rows, rows...)
		} else if err := d.spool.write(rows); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// splitPresent tells which changed keys still have a row.
func splitPresent(ctx context.Context, snap *source.Snapshot, table, key string, keys map[string]any) (present, gone []any, err error) {
	all := make([]any, 0, len(keys))
	for _, k := range keys {
		all = append(all, k)
	}
	found := map[string]bool{}
	for start := 0; start < len(all); start += applyChunk {
		rows, err := snap.Read(ctx, source.Query{Table: table, Columns: []string{key}, Key: key,
			In: all[start:min(start+applyChunk, len(all))]})
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			k, _ := keyText(r[0])
			found[k] = true
		}
	}
	for text, k := range keys {
		if found[text] {
			present = append(present, k)
		} else {
			gone = append(gone, k)
		}
	}
	return present, gone, nil
}

// commitDrain runs apply in one target transaction that checks and moves the capture's
// position from `from` to `to` and records the drain's figures. It returns zero stats, no
// error, when the position had moved already (another attempt applied these changes).
func (e *Engine) commitDrain(ctx context.Context, name, from, to string, changes int64, start time.Time,
	apply func(pgx.Tx, int64) (DrainStats, error)) (DrainStats, error) {
	var st DrainStats
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, e.drainLock()); err != nil {
			return err
		}
		cur, err := e.position(ctx, tx, name, DirForward, true)
		if err != nil {
			return err
		}
		if cur != from {
			e.log.Info("changes already applied by another drain", "source", name, "position", cur, "expected", from)
			return nil
		}
		var drain int64
		if err := tx.QueryRow(ctx, `SELECT nextval('change_drain_seq')`).Scan(&drain); err != nil {
			return err
		}
		if st, err = apply(tx, drain); err != nil {
			return err
		}
		st.Changes = changes
		rows := st.Upserted + st.Deleted + st.Failed
		rate := float64(changes) / max(time.Since(start).Seconds(), 1e-3)
		if testHookBeforeDrainCommit != nil {
			if err := testHookBeforeDrainCommit(ctx, tx); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE change_capture SET position = $4, changes_applied = changes_applied + $5,
			rows_applied = rows_applied + $6, drains = drains + 1, pending = 0, rows_per_second = $7, last_drain_at = now()
			WHERE migration_id = $1 AND source_name = $2 AND direction = $3`,
			e.opt.MigrationID, name, DirForward, to, changes, rows, rate)
		return err
	})
	if err != nil {
		return DrainStats{}, fmt.Errorf("drain %s: %w", name, err)
	}
	return st, nil
}

// testHookBeforeDrainCommit runs after a drain's writes and before its commit (tests simulate
// a crash there).
var testHookBeforeDrainCommit func(ctx context.Context, tx pgx.Tx) error

// RemoveCapture removes what the migration installed in every source to follow it forward
// (SQLite: the triggers and the change log; PostgreSQL: the slot and the publication) and
// records it. Idempotent. The reverse flow has its own (RemoveReverse).
func (e *Engine) RemoveCapture(ctx context.Context) error {
	rows, err := e.pool.Query(ctx, `SELECT source_name, direction, method FROM change_capture
		WHERE migration_id = $1 AND removed_at IS NULL AND direction = 'forward'`, e.opt.MigrationID)
	if err != nil {
		return err
	}
	type cap struct{ name, dir, method string }
	caps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cap, error) {
		var c cap
		return c, r.Scan(&c.name, &c.dir, &c.method)
	})
	if err != nil {
		return err
	}
	for _, c := range caps {
		switch {
		case c.method == MethodSQLiteTriggers:
			l, err := capture.OpenSQLite(ctx, e.spec.Sources[c.name].Path)
			if err != nil {
				return err
			}
			err = l.Remove(ctx)
			l.Close()
			if err != nil {
				return err
			}
		case c.method == MethodPGLogical:
			if err := e.dropSlot(ctx, c.name, c.dir); err != nil {
				return err
			}
		}
		if _, err := e.pool.Exec(ctx, `UPDATE change_capture SET removed_at = now()
			WHERE migration_id = $1 AND source_name = $2 AND direction = $3`, e.opt.MigrationID, c.name, c.dir); err != nil {
			return err
		}
	}
	return nil
}

// CaptureStatus reports every capture of the migration, with the changes still pending in
// each source and what of it is left there.
func (e *Engine) CaptureStatus(ctx context.Context) ([]dbmigrateapi.CaptureStatus, error) {
	rows, err := e.pool.Query(ctx, `SELECT source_name, direction, method, position, coalesce(slot_name, ''),
		changes_applied, rows_applied, drains, rows_per_second, removed_at IS NOT NULL
		FROM change_capture WHERE migration_id = $1 ORDER BY direction, source_name`, e.opt.MigrationID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dbmigrateapi.CaptureStatus, error) {
		var c dbmigrateapi.CaptureStatus
		return c, r.Scan(&c.Source, &c.Direction, &c.Method, &c.Position, &c.Slot, &c.ChangesApplied, &c.RowsApplied,
			&c.Drains, &c.RowsPerSecond, &c.Removed)
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		c := &out[i]
		if c.Method == MethodPGLogical {
			if err := e.slotStatus(ctx, c); err != nil {
				return nil, err
			}
			continue
		}
		l, err := capture.OpenSQLite(ctx, e.spec.Sources[c.Source].Path)
		if err != nil {
			return nil, err
		}
		hasLog, trig, err := l.Installed(ctx)
		l.Close()
		if err != nil {
			return nil, err
		}
		if hasLog {
			c.WhatIsLeft = append(c.WhatIsLeft, "table "+capture.LogTable)
		}
		for _, t := range trig {
			c.WhatIsLeft = append(c.WhatIsLeft, "trigger "+t)
		}
		if c.Removed || !hasLog {
			continue
		}
		if sq, ok := e.sources[c.Source].(*source.SQLite); ok {
			pos, _ := strconv.ParseInt(c.Position, 10, 64)
			if err := sq.InSnapshot(ctx, func(snap *source.Snapshot) error {
				c.Pending, _, err = capture.Pending(ctx, snap, pos)
				return err
			}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
