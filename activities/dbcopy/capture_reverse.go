package dbcopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/capture"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// The reverse flow keeps the SQLite sources a place the application can return to after
// cutover: the application's writes on the target are followed by logical replication (a slot
// on the target, which therefore needs wal_level=logical) and written back into the SQLite
// files, mapped back through the id mappings. Each file keeps, in the same transaction as the
// rows it receives, the position it has applied (_cutover_reverse) and the legacy ids it gave
// rows the application created on the target (_cutover_reverse_ids), so a drain retried after
// a crash applies each change once. Closing the migration or rolling it back removes both
// tables, the slot and the publication.

// reverseSource is the change_capture source name of the reverse flow (the target).
const reverseSource = "target"

const (
	reversePosTable = "_cutover_reverse"
	reverseIDsTable = "_cutover_reverse_ids"
)

// ReverseSupported says why the reverse flow cannot run for this spec ("" when it can): every
// source is SQLite, and every written target column maps back to a source column.
func (e *Engine) ReverseSupported() string {
	for name, s := range e.spec.Sources {
		if s.Driver != "sqlite" {
			return fmt.Sprintf("source %s is %s: the reverse flow writes back into SQLite sources only", name, s.Driver)
		}
	}
	for _, ent := range e.spec.Entities {
		for _, c := range ent.Columns {
			if !c.Drop && c.Source == "" {
				return fmt.Sprintf("entity %s: column %s is computed (expr or constant): it has no source column to write back",
					ent.Name, c.Target)
			}
		}
	}
	return ""
}

// InstallReverse starts following the target's changes back into the sources: the target's
// preflight (wal_level=logical), a publication of the target tables and a slot, and in each
// SQLite file the position and id tables.
func (e *Engine) InstallReverse(ctx context.Context) error {
	if why := e.ReverseSupported(); why != "" {
		return fmt.Errorf("%w: reverse flow: %s", ErrSpec, why)
	}
	conn, err := connectDSN(ctx, e.targetDSN)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer conn.Close(ctx)
	if err := capture.PGPreflight(ctx, conn); err != nil {
		return fmt.Errorf("%w: the target, for the reverse flow after cutover: %w", ErrSpec, err)
	}
	var tables []string
	for _, ent := range e.spec.Entities {
		tables = append(tables, e.qualified(ent.TargetTable))
	}
	created, err := capture.CreatePGSlot(ctx, conn, e.targetDSN, e.pgSlot(DirReverse), tables)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if created.Holder != nil {
		_ = created.Holder.Close(ctx) // no load reads under it
	}
	// Mapping a target row back to its legacy id looks its UUID up: the migration's mapping
	// blocks become rows (same ids as the view gave them), which an index by UUID serves.
	if _, err := e.pool.Exec(ctx, `CREATE INDEX IF NOT EXISTS idx_migration_mappings_destination_id
		ON migration_mapping_rows (destination_id)`); err != nil {
		return fmt.Errorf("index mappings by destination: %w", err)
	}
	if _, err := e.pool.Exec(ctx, `WITH b AS (DELETE FROM migration_mapping_blocks WHERE migration_id = $1 RETURNING *)
		INSERT INTO migration_mapping_rows (id, migration_id, source_table, source_id, destination_table, destination_id,
			entity_type, created_at)
		SELECT md5(b.id::text || '/' || u.n)::uuid, b.migration_id, b.source_table, u.source_id, b.destination_table,
			u.destination_id, b.entity_type, b.created_at
		FROM b, unnest(b.source_ids, b.destination_ids) WITH ORDINALITY AS u(source_id, destination_id, n)
		WHERE NOT EXISTS (SELECT 1 FROM migration_mapping_forgotten f WHERE f.block_id = b.id AND f.source_id = u.source_id)
		ON CONFLICT DO NOTHING`, e.opt.MigrationID); err != nil {
		return fmt.Errorf("mapping blocks into rows: %w", err)
	}
	for name, src := range e.spec.Sources {
		db, err := openReverse(src.Path)
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (lsn TEXT NOT NULL);
			INSERT INTO %s (lsn) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM %s);
			CREATE TABLE IF NOT EXISTS %s (destination_id TEXT PRIMARY KEY, source_id TEXT NOT NULL)`,
			reversePosTable, reversePosTable, reversePosTable, reverseIDsTable), created.ConsistentPoint.String())
		db.Close()
		if err != nil {
			return fmt.Errorf("source %s: reverse flow tables: %w", name, err)
		}
	}
	return e.recordCapture(ctx, reverseSource, DirReverse, MethodPGLogical, created.ConsistentPoint.String(), e.pgSlot(DirReverse).Slot)
}

// openReverse opens a SQLite source for writing back (the application no longer writes it).
func openReverse(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=rw&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s for the reverse flow: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// reverseFile is one SQLite source receiving changes.
type reverseFile struct {
	name string
	db   *sql.DB
	pos  pglogrepl.LSN
}

// ReverseDrain applies the target's changes since each file's position to the SQLite sources:
// one transaction per file with its new position; the slot is confirmed up to the position
// every file has.
func (e *Engine) ReverseDrain(ctx context.Context) (DrainStats, error) {
	var st DrainStats
	files := map[string]*reverseFile{}
	defer func() {
		for _, f := range files {
			f.db.Close()
		}
	}()
	from := pglogrepl.LSN(0)
	first := true
	for name, src := range e.spec.Sources {
		db, err := openReverse(src.Path)
		if err != nil {
			return st, err
		}
		f := &reverseFile{name: name, db: db}
		files[name] = f
		var text string
		if err := db.QueryRowContext(ctx, `SELECT lsn FROM `+reversePosTable).Scan(&text); err != nil {
			return st, fmt.Errorf("%w: source %s has no reverse position (%v)", capture.ErrNotInstalled, name, err)
		}
		if f.pos, err = pglogrepl.ParseLSN(text); err != nil {
			return st, err
		}
		if first || f.pos < from {
			from, first = f.pos, false
		}
	}
	conn, err := connectDSN(ctx, e.targetDSN)
	if err != nil {
		return st, err
	}
	defer conn.Close(ctx)
	start := time.Now()
	var txns []capture.Txn
	last, err := capture.ReadPG(ctx, conn, e.targetDSN, e.pgSlot(DirReverse), from, maxDrainChanges, func(t capture.Txn) error {
		txns = append(txns, t)
		st.Changes += int64(len(t.Changes))
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read the target's changes: %w", err)
	}
	if last == from {
		return DrainStats{}, nil
	}
	for _, f := range files {
		s, err := e.applyReverse(ctx, f, txns, last)
		if err != nil {
			return st, fmt.Errorf("write back into source %s: %w", f.name, err)
		}
		st.Upserted += s.Upserted
		st.Inserted += s.Inserted
		st.Deleted += s.Deleted
	}
	rate := float64(st.Changes) / max(time.Since(start).Seconds(), 1e-3)
	_, err = e.pool.Exec(ctx, `UPDATE change_capture SET position = $4, changes_applied = changes_applied + $5,
		rows_applied = rows_applied + $6, drains = drains + 1, rows_per_second = $7, last_drain_at = now()
		WHERE migration_id = $1 AND source_name = $2 AND direction = $3`,
		e.opt.MigrationID, reverseSource, DirReverse, last.String(), st.Changes, st.Upserted+st.Deleted, rate)
	return st, err
}

// reverseRow is a target row's last state in a drain.
type reverseRow struct {
	ent  *spec.Entity
	key  string             // target key as text
	vals map[string]*string // target column → text; nil when deleted
}

// applyReverse writes the changes of the file's tables after its position, in one transaction.
func (e *Engine) applyReverse(ctx context.Context, f *reverseFile, txns []capture.Txn, last pglogrepl.LSN) (DrainStats, error) {
	var st DrainStats
	byTable := map[string]*spec.Entity{}
	for i := range e.spec.Entities {
		if ent := &e.spec.Entities[i]; ent.Source == f.name {
			byTable[ent.TargetTable] = ent
		}
	}
	state := map[string]map[string]*reverseRow{} // entity → target key → row
	var order []*reverseRow
	for _, t := range txns {
		if t.End <= f.pos {
			continue
		}
		for _, c := range t.Changes {
			ent := byTable[c.Table]
			if ent == nil || c.Schema != e.spec.Target.Schema {
				continue
			}
			key := func(vals []capture.Value) string {
				for i, col := range c.Columns {
					if col == ent.Key.Target && i < len(vals) && vals[i].Text != nil {
						return *vals[i].Text
					}
				}
				return ""
			}
			m := state[ent.Name]
			if m == nil {
				m = map[string]*reverseRow{}
				state[ent.Name] = m
			}
			get := func(k string) *reverseRow {
				r := m[k]
				if r == nil {
					r = &reverseRow{ent: ent, key: k}
					m[k] = r
					order = append(order, r)
				}
				return r
			}
			if c.Old != nil {
				if k := key(c.Old); k != "" && (c.Op == 'D' || k != key(c.New)) {
					get(k).vals = nil
				}
			}
			if c.Op == 'D' {
				continue
			}
			r := get(key(c.New))
			prev := r.vals
			r.vals = map[string]*string{}
			for i, col := range c.Columns {
				if c.New[i].Unchanged {
					r.vals[col] = prev[col]
					continue
				}
				r.vals[col] = c.New[i].Text
			}
		}
	}
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return st, err
	}
	defer func() { _ = tx.Rollback() }()
	ids := &reverseIDs{e: e, tx: tx, fresh: map[string]string{}}
	order2, _ := e.spec.Order()
	rank := map[string]int{}
	for i, n := range order2 {
		rank[n] = i
	}
	// Deletions children first, then writes parents first.
	for i := len(order2) - 1; i >= 0; i-- {
		for _, r := range order {
			if r.ent.Name != order2[i] || r.vals != nil {
				continue
			}
			legacy, ok, err := ids.legacy(ctx, r.ent, r.key)
			if err != nil {
				return st, err
			}
			if !ok {
				continue // created and deleted on the target since cutover: never in the source
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %s WHERE %s = ?`, sqliteQuote(r.ent.SourceTable),
				sqliteQuote(r.ent.Key.Source)), sqliteKey(legacy)); err != nil {
				return st, err
			}
			st.Deleted++
		}
	}
	var created []mappingRow
	for _, name := range order2 {
		for _, r := range order {
			if r.ent.Name != name || r.vals == nil {
				continue
			}
			n, err := e.writeBack(ctx, tx, ids, r)
			if err != nil {
				return st, fmt.Errorf("%s %s: %w", r.ent.TargetTable, r.key, err)
			}
			if n != nil {
				created = append(created, *n)
				st.Inserted++
			}
			st.Upserted++
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+reversePosTable+` SET lsn = ?`, last.String()); err != nil {
		return st, err
	}
	if err := tx.Commit(); err != nil {
		return st, err
	}
	// The ledger learns the new rows' ids too (a later rollback of the target finds them).
	for _, m := range created {
		if _, err := e.pool.Exec(ctx, `INSERT INTO migration_mapping_rows (id, migration_id, source_table, source_id,
			destination_table, destination_id, entity_type) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (source_table, (length(source_id)), source_id, migration_id) DO NOTHING`,
			uuid.New(), e.opt.MigrationID, m.ent.SourceTable, m.legacy, m.ent.TargetTable, m.dest, m.ent.EntityType); err != nil {
			return st, fmt.Errorf("record the mapping of a row created after cutover: %w", err)
		}
	}
	return st, nil
}

type mappingRow struct {
	ent    *spec.Entity
	legacy string
	dest   uuid.UUID
}

// reverseIDs maps target keys back to legacy ids: the file's own table of rows created after
// cutover, then the ledger's mappings.
type reverseIDs struct {
	e     *Engine
	tx    *sql.Tx
	fresh map[string]string // entity/target key → legacy id given in this drain
}

func (r *reverseIDs) legacy(ctx context.Context, ent *spec.Entity, key string) (string, bool, error) {
	if ent.Key.Mode == spec.KeyModeKeep {
		return key, true, nil
	}
	if id, ok := r.fresh[ent.Name+"/"+key]; ok {
		return id, true, nil
	}
	var id string
	err := r.tx.QueryRowContext(ctx, `SELECT source_id FROM `+reverseIDsTable+` WHERE destination_id = ?`, key).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", false, err
	}
	err = r.e.pool.QueryRow(ctx, `SELECT source_id FROM migration_mappings WHERE destination_id = $1::uuid AND migration_id = $2
		AND source_table = $3 COLLATE "C"`, key, r.e.opt.MigrationID, ent.SourceTable).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return id, err == nil, err
}

// writeBack updates (or inserts) a target row's source row; a row the application created on
// the target gets a new legacy id from SQLite, returned for the ledger.
func (e *Engine) writeBack(ctx context.Context, tx *sql.Tx, ids *reverseIDs, r *reverseRow) (*mappingRow, error) {
	ent := r.ent
	var cols []string
	var args []any
	for _, c := range ent.Columns {
		if c.Drop || c.Source == "" || c.Source == ent.Key.Source {
			continue
		}
		text := r.vals[c.Target]
		var v any
		if text != nil {
			if c.References != "" {
				parent, _ := e.spec.Entity(c.References)
				legacy, ok, err := ids.legacy(ctx, parent, *text)
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, fmt.Errorf("column %s points at a %s row unknown to the source", c.Target, parent.Name)
				}
				v = sqliteKey(legacy)
			} else {
				var err error
				if v, err = sqliteValue(*text, c.Type); err != nil {
					return nil, fmt.Errorf("column %s: %w", c.Target, err)
				}
			}
		}
		cols, args = append(cols, c.Source), append(args, v)
	}
	legacy, known, err := ids.legacy(ctx, ent, r.key)
	if err != nil {
		return nil, err
	}
	table, key := sqliteQuote(ent.SourceTable), sqliteQuote(ent.Key.Source)
	if known {
		sets := make([]string, len(cols))
		for i, c := range cols {
			sets[i] = sqliteQuote(c) + " = ?"
		}
		res, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET %s WHERE %s = ?`, table, strings.Join(sets, ", "), key),
			append(args, sqliteKey(legacy))...)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil, nil
		}
		cols, args = append(cols, ent.Key.Source), append(args, sqliteKey(legacy))
	}
	qcols := make([]string, len(cols))
	marks := make([]string, len(cols))
	for i, c := range cols {
		qcols[i], marks[i] = sqliteQuote(c), "?"
	}
	res, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (%s) VALUES (%s)`, table, strings.Join(qcols, ", "),
		strings.Join(marks, ", ")), args...)
	if err != nil {
		return nil, err
	}
	if known {
		return nil, nil
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	legacy = strconv.FormatInt(id, 10)
	dest, err := uuid.Parse(r.key)
	if err != nil {
		return nil, fmt.Errorf("a row created on the target has key %q, not a UUID", r.key)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+reverseIDsTable+` (destination_id, source_id) VALUES (?, ?)`, r.key, legacy); err != nil {
		return nil, err
	}
	ids.fresh[ent.Name+"/"+r.key] = legacy
	return &mappingRow{ent: ent, legacy: legacy, dest: dest}, nil
}

// sqliteValue renders a target value (PostgreSQL text output) as the legacy application
// stores it: booleans 0/1, numbers as numbers, timestamps in UTC (RFC 3339), the rest as text.
func sqliteValue(text, typ string) (any, error) {
	switch typ {
	case "boolean":
		return map[bool]int64{true: 1, false: 0}[text == "t" || text == "true"], nil
	case "smallint", "integer", "bigint":
		return strconv.ParseInt(text, 10, 64)
	case "real", "double precision":
		return strconv.ParseFloat(text, 64)
	case "timestamptz", "timestamp":
		v, rerr := convert(text, typ, castOpts{})
		if rerr != nil {
			return nil, rerr
		}
		if t, ok := v.(time.Time); ok {
			return t.UTC().Format(time.RFC3339Nano), nil
		}
		return text, nil
	}
	return text, nil
}

// sqliteKey is a legacy id as SQLite compares it (integers as integers).
func sqliteKey(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return s
}

func sqliteQuote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// RemoveReverse stops the reverse flow: the slot and publication dropped on the target, the
// position and id tables removed from the sources. Idempotent.
func (e *Engine) RemoveReverse(ctx context.Context) error {
	if err := e.dropSlot(ctx, reverseSource, DirReverse); err != nil {
		return err
	}
	for name, src := range e.spec.Sources {
		db, err := openReverse(src.Path)
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, `DROP TABLE IF EXISTS `+reversePosTable+`; DROP TABLE IF EXISTS `+reverseIDsTable)
		db.Close()
		if err != nil {
			return fmt.Errorf("source %s: remove the reverse flow's tables: %w", name, err)
		}
	}
	_, err := e.pool.Exec(ctx, `UPDATE change_capture SET removed_at = now()
		WHERE migration_id = $1 AND direction = $2 AND removed_at IS NULL`, e.opt.MigrationID, DirReverse)
	return err
}
