package dbcopy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/activities/dbcopy/capture"
	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// maxDrainChanges bounds the changes one PostgreSQL drain applies in a transaction (it ends at
// a source transaction's commit, so the target is always a state the source was in).
const maxDrainChanges = 200_000

// pgSlot names the slot and publication of a migration's capture of a source (or, reverse, of
// the target): one per migration and direction, so two migrations never share one.
func (e *Engine) pgSlot(dir string) capture.PGSlot {
	id := strings.ReplaceAll(e.opt.MigrationID.String(), "-", "")[:20]
	name := "cutover_" + id
	if dir == DirReverse {
		name += "_rev"
	}
	return capture.PGSlot{Slot: name, Publication: name}
}

// connectDSN opens one plain connection.
func connectDSN(ctx context.Context, dsn string) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// installPG checks the source can be followed, creates the publication of its tables and the
// slot, and makes the full load read under the slot's snapshot.
func (e *Engine) installPG(ctx context.Context, name string) error {
	dsn := e.sourceDSN[name]
	conn, err := connectDSN(ctx, dsn)
	if err != nil {
		return fmt.Errorf("source %q: %w", name, err)
	}
	defer conn.Close(ctx)
	if err := capture.PGPreflight(ctx, conn); err != nil {
		return fmt.Errorf("%w: source %q: %w", ErrSpec, name, err)
	}
	var tables []string
	for _, t := range e.sourceTables(name) {
		tables = append(tables, spec.QuoteQualified("public", t.Name))
	}
	s := e.pgSlot(DirForward)
	created, err := capture.CreatePGSlot(ctx, conn, dsn, s, tables)
	if err != nil {
		return fmt.Errorf("source %q: %w", name, err)
	}
	if created.Holder != nil {
		if pg, ok := e.sources[name].(*source.Postgres); ok {
			pg.UseSnapshot(created.Snapshot)
		}
		e.mu.Lock()
		e.snapshots[name] = created.Holder
		e.mu.Unlock()
	}
	return e.recordCapture(ctx, name, DirForward, MethodPGLogical, created.ConsistentPoint.String(), s.Slot)
}

// releaseSnapshot ends the full load's snapshot of a source (catch-up reads the current state).
func (e *Engine) releaseSnapshot(ctx context.Context, name string) {
	e.mu.Lock()
	h := e.snapshots[name]
	delete(e.snapshots, name)
	e.mu.Unlock()
	if pg, ok := e.sources[name].(*source.Postgres); ok {
		pg.UseSnapshot("")
	}
	if h != nil {
		_ = h.Close(ctx)
	}
}

// closeSnapshots ends every held snapshot (Close).
func (e *Engine) closeSnapshots() {
	e.mu.Lock()
	hs := e.snapshots
	e.snapshots = map[string]*pgconn.PgConn{}
	e.mu.Unlock()
	for _, h := range hs {
		_ = h.Close(context.Background())
	}
}

// drainPG streams the slot from the committed position and applies what it carries: per
// changed key the row as the stream last wrote it (re-read from the source only for a large
// value an UPDATE left untouched, which pgoutput does not resend), or its deletion.
func (e *Engine) drainPG(ctx context.Context, name string) (DrainStats, error) {
	var st DrainStats
	e.releaseSnapshot(ctx, name)
	posText, err := e.position(ctx, e.pool, name, DirForward, false)
	if err != nil {
		return st, err
	}
	from, err := pglogrepl.ParseLSN(posText)
	if err != nil {
		return st, fmt.Errorf("change capture of %s: position %q is not an LSN", name, posText)
	}
	conn, err := connectDSN(ctx, e.sourceDSN[name])
	if err != nil {
		return st, fmt.Errorf("source %q: %w", name, err)
	}
	defer conn.Close(ctx)
	start := time.Now()
	col := newCollector(e, name)
	last, err := capture.ReadPG(ctx, conn, e.sourceDSN[name], e.pgSlot(DirForward), from, maxDrainChanges, func(t capture.Txn) error {
		for _, c := range t.Changes {
			if err := col.add(c); err != nil {
				return err
			}
		}
		st.Changes += int64(len(t.Changes))
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read changes of %s: %w", name, err)
	}
	if last == from {
		return DrainStats{}, nil
	}
	src := e.sources[name]
	fetch := func(ctx context.Context, p *entityPlan, keys []any) ([][]any, error) {
		q := p.query()
		q.In = keys
		return src.Read(ctx, q)
	}
	applied, err := e.commitDrain(ctx, name, posText, last.String(), st.Changes, start, func(tx pgx.Tx, drain int64) (DrainStats, error) {
		return e.applyDeltas(ctx, tx, drain, col.deltas(), fetch)
	})
	return applied, err
}

// collector folds a stream's changes into one delta per entity: the last state of each key.
type collector struct {
	e     *Engine
	ents  map[string][]*spec.Entity // source table → entities
	state map[string]map[string]*keyState
	order map[string][]string // table → keys in first-seen order
}

type keyState struct {
	key  any
	row  map[string]*string // column → text; nil when gone
	gone bool
	// reread: a column the stream did not resend (unchanged TOAST): read the row from the source
	reread bool
}

func newCollector(e *Engine, name string) *collector {
	return &collector{e: e, ents: e.entitiesOf(name), state: map[string]map[string]*keyState{}, order: map[string][]string{}}
}

func (c *collector) key(table string, cols []string, vals []capture.Value) (string, bool) {
	ents := c.ents[table]
	if len(ents) == 0 || vals == nil {
		return "", false
	}
	for i, col := range cols {
		if col == ents[0].Key.Source && i < len(vals) && vals[i].Text != nil {
			return *vals[i].Text, true
		}
	}
	return "", false
}

func (c *collector) slot(table, k string) *keyState {
	m := c.state[table]
	if m == nil {
		m = map[string]*keyState{}
		c.state[table] = m
	}
	s := m[k]
	if s == nil {
		s = &keyState{key: k}
		m[k] = s
		c.order[table] = append(c.order[table], k)
	}
	return s
}

func (c *collector) add(ch capture.RowChange) error {
	if ch.Schema != "public" || len(c.ents[ch.Table]) == 0 {
		return nil
	}
	if ch.Old != nil {
		if k, ok := c.key(ch.Table, ch.Columns, ch.Old); ok {
			if nk, _ := c.key(ch.Table, ch.Columns, ch.New); ch.Op == 'D' || nk != k {
				s := c.slot(ch.Table, k)
				s.row, s.gone, s.reread = nil, true, false
			}
		}
	}
	if ch.Op == 'D' {
		if ch.Old == nil {
			return fmt.Errorf("a DELETE on %s carries no key: give the table a primary key (REPLICA IDENTITY)", ch.Table)
		}
		return nil
	}
	k, ok := c.key(ch.Table, ch.Columns, ch.New)
	if !ok {
		return fmt.Errorf("a change on %s has no value for its key column %s", ch.Table, c.ents[ch.Table][0].Key.Source)
	}
	s := c.slot(ch.Table, k)
	prev := s.row
	s.row, s.gone = map[string]*string{}, false
	for i, col := range ch.Columns {
		v := ch.New[i]
		if v.Unchanged {
			if pv, ok := prev[col]; ok && prev != nil {
				s.row[col] = pv
				continue
			}
			s.reread = true
			continue
		}
		s.row[col] = v.Text
	}
	return nil
}

// deltas builds each entity's delta: rows in its read columns, keys to re-read, keys gone.
func (c *collector) deltas() map[string]*entityDelta {
	out := map[string]*entityDelta{}
	for table, keys := range c.order {
		for _, ent := range c.ents[table] {
			p, err := c.e.plan(context.Background(), ent.Name)
			if err != nil {
				continue // applyDeltas reports the plan error
			}
			d := &entityDelta{}
			for _, k := range keys {
				s := c.state[table][k]
				switch {
				case s.gone:
					d.gone = append(d.gone, p.keyValue(k))
				case s.reread:
					d.keys = append(d.keys, p.keyValue(k))
				default:
					row := make([]any, len(p.readCols))
					for i, col := range p.readCols {
						if v := s.row[col]; v != nil {
							row[i] = *v
						}
					}
					d.rows = append(d.rows, row)
				}
			}
			out[ent.Name] = d
		}
	}
	return out
}

// keyValue converts a key's text to the value the source compares its key column with.
func (p *entityPlan) keyValue(k string) any {
	v, err := p.keyArg(k)
	if err != nil {
		return k
	}
	return v
}

// captureDSN is the database a capture follows: a source's, or the target's (reverse).
func (e *Engine) captureDSN(name, dir string) string {
	if dir == DirReverse {
		return e.targetDSN
	}
	return e.sourceDSN[name]
}

// dropSlot drops a capture's slot and publication (idempotent).
func (e *Engine) dropSlot(ctx context.Context, name, dir string) error {
	e.releaseSnapshot(ctx, name)
	conn, err := connectDSN(ctx, e.captureDSN(name, dir))
	if err != nil {
		return fmt.Errorf("drop the replication slot of %s: %w", name, err)
	}
	defer conn.Close(ctx)
	return capture.DropPG(ctx, conn, e.pgSlot(dir))
}

// slotStatus fills a PostgreSQL capture's slot state: the slot is shown while it exists.
func (e *Engine) slotStatus(ctx context.Context, c *dbmigrateapi.CaptureStatus) error {
	conn, err := connectDSN(ctx, e.captureDSN(c.Source, c.Direction))
	if err != nil {
		return fmt.Errorf("slot of %s: %w", c.Source, err)
	}
	defer conn.Close(ctx)
	s := e.pgSlot(c.Direction)
	info, err := capture.PGSlotInfo(ctx, conn, s.Slot)
	if err != nil {
		return err
	}
	c.Slot = ""
	if info.Exists {
		c.Slot = s.Slot
		c.PendingWALBytes, c.RetainedWALBytes = info.PendingBytes, info.RetainedBytes
		c.WhatIsLeft = append(c.WhatIsLeft, "replication slot "+s.Slot)
	}
	var pub bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.Publication).Scan(&pub); err != nil {
		return err
	}
	if pub {
		c.WhatIsLeft = append(c.WhatIsLeft, "publication "+s.Publication)
	}
	return nil
}
