package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// A PostgreSQL database is followed by logical replication: a publication of the captured
// tables and a replication slot decoding them with pgoutput. The slot is created with an
// exported snapshot, which the full load reads under (so the load is the database exactly as
// of the slot's start, and the slot holds every change after it); drains then stream the slot
// from the position committed in the target, and confirm a position to the server only after
// the target committed it. A slot keeps WAL on the server until it is dropped: Drop removes
// it and the publication when the migration ends or rolls back.

// ErrWALLevel means the server's wal_level is not logical.
var ErrWALLevel = errors.New("logical replication is off")

// PGPreflight checks that the server can be followed: wal_level = logical, a free replication
// slot and WAL sender, and a role allowed to replicate. The error says what to set.
func PGPreflight(ctx context.Context, conn *pgx.Conn) error {
	var level string
	var slots, senders, used int
	var canReplicate bool
	err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int,
		current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_replication_slots)::int,
		(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)`).
		Scan(&level, &slots, &senders, &used, &canReplicate)
	if err != nil {
		return fmt.Errorf("replication settings: %w", err)
	}
	var problems []string
	if level != "logical" {
		problems = append(problems, fmt.Sprintf("wal_level is %s: set wal_level = logical (ALTER SYSTEM SET wal_level = "+
			"logical, or in postgresql.conf) and restart PostgreSQL", level))
	}
	if used >= slots {
		problems = append(problems, fmt.Sprintf("max_replication_slots is %d and %d are in use: raise it (restart needed)", slots, used))
	}
	if senders < 1 {
		problems = append(problems, "max_wal_senders is 0: set it to at least 1 (restart needed)")
	}
	if !canReplicate {
		problems = append(problems, "the source role may not replicate: ALTER ROLE <role> REPLICATION")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s (or choose capture: key_cursor for this source)", ErrWALLevel, strings.Join(problems, "; "))
	}
	return nil
}

// replicationConfig is dsn opened as a logical replication connection.
func replicationConfig(dsn string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("postgres dsn is malformed") // never echo it: it may hold a password
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "cutover-capture"
	return cfg, nil
}

// PGSlot names a capture's slot and publication.
type PGSlot struct {
	Slot        string
	Publication string
}

// Created is a new slot: where its changes start and the snapshot that shows the database as
// of that point. Holder keeps the snapshot alive until it is closed; nil when the slot existed.
type Created struct {
	ConsistentPoint pglogrepl.LSN
	Snapshot        string
	Holder          *pgconn.PgConn
}

// CreatePGSlot creates the publication of tables (quoted, schema-qualified) and the slot, with
// an exported snapshot. An existing slot of the same name is kept (a retried install): its
// changes since its start are still there, and Created.Holder is nil.
func CreatePGSlot(ctx context.Context, conn *pgx.Conn, dsn string, s PGSlot, tables []string) (Created, error) {
	var out Created
	var pubExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.Publication).
		Scan(&pubExists); err != nil {
		return out, err
	}
	if !pubExists {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s`,
			pgx.Identifier{s.Publication}.Sanitize(), strings.Join(tables, ", "))); err != nil {
			return out, fmt.Errorf("create publication %s: %w", s.Publication, err)
		}
	}
	var confirmed *string
	err := conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text FROM pg_replication_slots WHERE slot_name = $1`,
		s.Slot).Scan(&confirmed)
	if err == nil {
		if confirmed != nil {
			out.ConsistentPoint, _ = pglogrepl.ParseLSN(*confirmed)
		}
		return out, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return out, err
	}
	cfg, err := replicationConfig(dsn)
	if err != nil {
		return out, err
	}
	rc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return out, fmt.Errorf("replication connection: %w", err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, rc, s.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		_ = rc.Close(ctx)
		return out, fmt.Errorf("create replication slot %s: %w", s.Slot, err)
	}
	if out.ConsistentPoint, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
		_ = rc.Close(ctx)
		return out, err
	}
	out.Snapshot, out.Holder = res.SnapshotName, rc
	return out, nil
}

// DropPG drops the slot and the publication (idempotent). A slot still streaming to a dead
// drain is ended first.
func DropPG(ctx context.Context, conn *pgx.Conn, s PGSlot) error {
	for try := 0; ; try++ {
		_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = $1 AND active_pid IS NOT NULL`, s.Slot)
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, s.Slot)
		var pgErr *pgconn.PgError
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == "55006" && try < 20 { // still active
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("drop replication slot %s: %w", s.Slot, err)
		}
		break
	}
	if _, err := conn.Exec(ctx, `DROP PUBLICATION IF EXISTS `+pgx.Identifier{s.Publication}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %s: %w", s.Publication, err)
	}
	return nil
}

// SlotInfo is what the server says of a slot.
type SlotInfo struct {
	Exists bool
	Active bool
	// PendingBytes is WAL written since the last confirmed position (changes not drained yet, and
	// other tables' writes); RetainedBytes is what the slot keeps the server from recycling.
	PendingBytes  int64
	RetainedBytes int64
}

// PGSlotInfo reads the slot's state.
func PGSlotInfo(ctx context.Context, conn *pgx.Conn, slot string) (SlotInfo, error) {
	var i SlotInfo
	err := conn.QueryRow(ctx, `SELECT active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
		coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint FROM pg_replication_slots WHERE slot_name = $1`,
		slot).Scan(&i.Active, &i.PendingBytes, &i.RetainedBytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return i, nil
	}
	i.Exists = err == nil
	return i, err
}

// Value is a column value in a decoded change: text (nil for NULL), or Unchanged for a TOASTed
// value the update did not touch (pgoutput does not resend it).
type Value struct {
	Text      *string
	Unchanged bool
}

// RowChange is one decoded INSERT, UPDATE or DELETE.
type RowChange struct {
	Schema, Table string
	Op            byte // 'I', 'U', 'D'
	Columns       []string
	New           []Value // INSERT and UPDATE
	// Old is the old key (or whole row with REPLICA IDENTITY FULL) of a DELETE, or of an UPDATE
	// that changed the key; nil otherwise.
	Old []Value
}

// Txn is a committed transaction's changes.
type Txn struct {
	End     pglogrepl.LSN // the position after it
	Changes []RowChange
}

// idleEnd is how long a drain waits for more once the server has nothing to send.
const idleEnd = 2 * time.Second

// ReadPG streams the slot from `from` and hands each committed transaction to fn, until it
// has seen the WAL as it was when it started (or maxChanges changes, at a transaction's end).
// Before streaming it confirms `from` to the server (committed in the target by the caller):
// the slot may then let go of the WAL before it. It returns the position after the last
// transaction handed over (from if none).
func ReadPG(ctx context.Context, conn *pgx.Conn, dsn string, s PGSlot, from pglogrepl.LSN, maxChanges int,
	fn func(Txn) error) (pglogrepl.LSN, error) {
	var endText string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&endText); err != nil {
		return from, err
	}
	end, err := pglogrepl.ParseLSN(endText)
	if err != nil {
		return from, err
	}
	if from >= end {
		return from, nil
	}
	cfg, err := replicationConfig(dsn)
	if err != nil {
		return from, err
	}
	rc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return from, fmt.Errorf("replication connection: %w", err)
	}
	defer func() { _ = rc.Close(context.WithoutCancel(ctx)) }()
	if err := pglogrepl.StartReplication(ctx, rc, s.Slot, from, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names " + quoteLiteral(s.Publication)},
	}); err != nil {
		return from, fmt.Errorf("start replication from slot %s: %w", s.Slot, err)
	}
	confirm := func(lsn pglogrepl.LSN, reply bool) error {
		return pglogrepl.SendStandbyStatusUpdate(ctx, rc, pglogrepl.StandbyStatusUpdate{WALWritePosition: lsn,
			WALFlushPosition: lsn, WALApplyPosition: lsn, ClientTime: time.Now(), ReplyRequested: reply})
	}
	if err := confirm(from, false); err != nil {
		return from, err
	}
	d := decoder{relations: map[uint32]*pglogrepl.RelationMessage{}}
	last, n := from, 0
	idleSince := time.Now()
	for {
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		msg, err := rc.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			if pgconn.Timeout(err) {
				if d.cur == nil && time.Since(idleSince) > idleEnd {
					return last, nil // nothing more to send for our tables
				}
				if err := confirm(from, true); err != nil {
					return last, err
				}
				continue
			}
			return last, fmt.Errorf("replication stream: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return last, fmt.Errorf("replication stream: %s", m.Message)
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return last, err
				}
				if d.cur == nil && ka.ServerWALEnd >= end {
					return last, nil
				}
				if ka.ReplyRequested {
					if err := confirm(from, false); err != nil {
						return last, err
					}
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return last, err
				}
				idleSince = time.Now()
				txn, err := d.decode(x.WALData)
				if err != nil {
					return last, err
				}
				if txn == nil {
					continue
				}
				if txn.End <= from {
					continue // committed in the target already
				}
				if err := fn(*txn); err != nil {
					return last, err
				}
				last = txn.End
				n += len(txn.Changes)
				if last >= end || (maxChanges > 0 && n >= maxChanges) {
					return last, nil
				}
			}
		}
	}
}

// decoder turns pgoutput messages into committed transactions.
type decoder struct {
	relations map[uint32]*pglogrepl.RelationMessage
	cur       *Txn
}

func (d *decoder) decode(data []byte) (*Txn, error) {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("decode pgoutput: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		d.relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		d.cur = &Txn{}
	case *pglogrepl.CommitMessage:
		t := d.cur
		d.cur = nil
		if t == nil {
			return nil, nil
		}
		t.End = m.TransactionEndLSN
		return t, nil
	case *pglogrepl.InsertMessage:
		return nil, d.add(m.RelationID, 'I', m.Tuple, nil)
	case *pglogrepl.UpdateMessage:
		return nil, d.add(m.RelationID, 'U', m.NewTuple, m.OldTuple)
	case *pglogrepl.DeleteMessage:
		return nil, d.add(m.RelationID, 'D', nil, m.OldTuple)
	case *pglogrepl.TruncateMessage:
		return nil, fmt.Errorf("a captured table was truncated in the source: re-run the full load of %d table(s)", m.RelationNum)
	}
	return nil, nil
}

func (d *decoder) add(rel uint32, op byte, newT, oldT *pglogrepl.TupleData) error {
	r, ok := d.relations[rel]
	if !ok {
		return fmt.Errorf("pgoutput change for unknown relation %d", rel)
	}
	if d.cur == nil {
		return errors.New("pgoutput change outside a transaction")
	}
	c := RowChange{Schema: r.Namespace, Table: r.RelationName, Op: op, Columns: make([]string, len(r.Columns))}
	for i, col := range r.Columns {
		c.Columns[i] = col.Name
	}
	c.New, c.Old = values(newT), values(oldT)
	d.cur.Changes = append(d.cur.Changes, c)
	return nil
}

func values(t *pglogrepl.TupleData) []Value {
	if t == nil {
		return nil
	}
	out := make([]Value, len(t.Columns))
	for i, c := range t.Columns {
		switch c.DataType {
		case 't':
			s := string(c.Data)
			out[i].Text = &s
		case 'u':
			out[i].Unchanged = true
		}
	}
	return out
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
