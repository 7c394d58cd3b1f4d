// Package capture carries a source database's changes to the copy engine.
//
// SQLite has no change stream a reader can follow, so the migration installs one in the
// source file: a trigger per copied table and operation (AFTER INSERT, UPDATE, DELETE) appends
// the changed row's key to a change-log table, _cutover_changes, and BEFORE INSERT/UPDATE
// triggers log the rows a REPLACE would delete unseen (sqlite_clash.go). The application
// needs no change and its tables no watermark column; a write costs it one more small insert
// in its own transaction (and an index lookup per unique index of the table). The log records keys only: a drain reads the changed keys and, in the same read
// transaction, the rows they name as they are now, so a row changed five times is copied once,
// and a key with no row is a delete. SQLite has one writer at a time and a log row's seq is
// taken inside the writer's transaction, so seq grows in commit order: "everything after seq N"
// is exact, and the last applied seq, committed in the target with the rows, is the position a
// retried drain resumes from. Everything installed is removed when the migration ends (Remove).
//
// PostgreSQL sources are followed by logical replication instead (pglogical.go).
package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/cutover/cutover/activities/dbcopy/source"
)

// LogTable is the change-log table installed in a SQLite source.
const LogTable = "_cutover_changes"

// triggerPrefix starts the name of every trigger the migration installs.
const triggerPrefix = "_cutover_"

// Table is a captured source table and its key column.
type Table struct {
	Name string
	Key  string
}

// SQLiteLog installs, trims and removes the change log of one SQLite file. It writes to the
// file, so the migration needs write access to it (and to its directory, for the journal).
type SQLiteLog struct {
	db   *sql.DB
	path string
}

// Our own writes wait at most busyWait on the application's lock, then back off and retry up
// to busyTries times: each is a short transaction, so the application never waits long on us.
const (
	busyWait  = 250 * time.Millisecond
	busyTries = 40
)

// OpenSQLite opens path for writing the change log.
func OpenSQLite(ctx context.Context, path string) (*SQLiteLog, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite source %s: %w", path, err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		fmt.Sprintf("?mode=rw&_pragma=busy_timeout(%d)&_txlock=immediate", busyWait.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s for change capture: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s for change capture: %w", path, err)
	}
	return &SQLiteLog{db: db, path: path}, nil
}

// Close closes the connection.
func (l *SQLiteLog) Close() error { return l.db.Close() }

// busy reports whether err is SQLite's "database is locked" (SQLITE_BUSY, SQLITE_LOCKED).
func busy(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked") ||
		strings.Contains(s, "SQLITE_LOCKED") || strings.Contains(s, "table is locked")
}

// write runs fn in a write transaction, retrying while the application holds the lock.
func (l *SQLiteLog) write(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	var err error
	wait := 20 * time.Millisecond
	for try := 1; try <= busyTries; try++ {
		err = l.writeOnce(ctx, fn)
		if !busy(err) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
	if err != nil {
		return fmt.Errorf("sqlite %s: %s: %w", l.path, what, err)
	}
	return nil
}

func (l *SQLiteLog) writeOnce(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Install creates the change log and the triggers of tables (idempotent: an installed log is
// kept with its content, so a retried install loses nothing).
func (l *SQLiteLog) Install(ctx context.Context, tables []Table) error {
	return l.write(ctx, "install change capture", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+quote(LogTable)+` (
			seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, k ANY)`); err != nil {
			return err
		}
		for _, t := range tables {
			ixs, err := clashIndexes(ctx, tx, t)
			if err != nil {
				return err
			}
			for _, stmt := range append(triggers(t), clashTriggers(t, ixs)...) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("trigger on %s: %w", t.Name, err)
				}
			}
		}
		return nil
	})
}

// triggers are the CREATE TRIGGER statements for one table. An UPDATE that changes the key
// logs the old key too (its row is gone).
func triggers(t Table) []string {
	tbl, key, lit := quote(t.Name), quote(t.Key), literal(t.Name)
	ins := fmt.Sprintf(`INSERT INTO %s (tbl, op, k) VALUES (%s, `, quote(LogTable), lit)
	return []string{
		fmt.Sprintf(`CREATE TRIGGER IF NOT EXISTS %s AFTER INSERT ON %s BEGIN %s'I', NEW.%s); END`,
			quote(triggerName(t.Name, "ins")), tbl, ins, key),
		fmt.Sprintf(`CREATE TRIGGER IF NOT EXISTS %s AFTER UPDATE ON %s BEGIN %s'U', NEW.%s);
			INSERT INTO %s (tbl, op, k) SELECT %s, 'D', OLD.%s WHERE OLD.%s IS NOT NEW.%s; END`,
			quote(triggerName(t.Name, "upd")), tbl, ins, key, quote(LogTable), lit, key, key, key),
		fmt.Sprintf(`CREATE TRIGGER IF NOT EXISTS %s AFTER DELETE ON %s BEGIN %s'D', OLD.%s); END`,
			quote(triggerName(t.Name, "del")), tbl, ins, key),
	}
}

func triggerName(table, op string) string { return triggerPrefix + op + "_" + table }

// Remove drops every trigger the migration installed and the change log: the file holds
// nothing of the migration afterwards. Idempotent.
func (l *SQLiteLog) Remove(ctx context.Context) error {
	var names []string
	rows, err := l.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?`,
		len(triggerPrefix), triggerPrefix)
	if err != nil {
		return fmt.Errorf("sqlite %s: list capture triggers: %w", l.path, err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	return l.write(ctx, "remove change capture", func(tx *sql.Tx) error {
		for _, n := range names {
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS `+quote(n)); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+quote(LogTable)); err != nil {
			return err
		}
		// AUTOINCREMENT keeps the table's counter in sqlite_sequence; leave no row of ours there.
		if _, err := tx.ExecContext(ctx, `DELETE FROM sqlite_sequence WHERE name = ?`, LogTable); err != nil &&
			!strings.Contains(err.Error(), "no such table") {
			return err
		}
		return nil
	})
}

// Installed lists what of the migration is in the file: whether a table of it is there (the
// change log, the reverse flow's tables) and the capture triggers (the README's "what is
// left": nothing, once removed).
func (l *SQLiteLog) Installed(ctx context.Context) (log bool, triggers []string, err error) {
	// Any table of the migration counts (the change log, and the reverse flow's position and ids).
	rows, err := l.db.QueryContext(ctx, `SELECT type, name FROM sqlite_master
		WHERE type IN ('table', 'trigger') AND substr(name, 1, ?) = ? ORDER BY name`,
		len(triggerPrefix), triggerPrefix)
	if err != nil {
		return false, nil, fmt.Errorf("sqlite %s: %w", l.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name string
		if err := rows.Scan(&typ, &name); err != nil {
			return false, nil, err
		}
		if typ == "table" {
			log = true
		} else {
			triggers = append(triggers, name)
		}
	}
	return log, triggers, rows.Err()
}

// trimChunk bounds one trimming transaction, so the application's writers wait on it for
// milliseconds.
const trimChunk = 5000

// Trim deletes the log rows up to seq (applied and committed in the target). Best effort: the
// log is read from the committed position, so rows left behind are only space.
func (l *SQLiteLog) Trim(ctx context.Context, upto int64) error {
	for {
		var n int64
		err := l.write(ctx, "trim change log", func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+quote(LogTable)+` WHERE seq IN (SELECT seq FROM `+quote(LogTable)+
				` WHERE seq <= ? ORDER BY seq LIMIT ?)`, upto, trimChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil || n < trimChunk {
			return err
		}
	}
}

// Change is one log row.
type Change struct {
	Seq   int64
	Table string
	Op    string // I, U, D (an UPDATE that moved a key logs the old key as D) or R (a row REPLACE may delete)
	Key   any
}

// ReadLog reads the log rows after seq, at most limit (0 = all), in seq order, inside snap.
func ReadLog(ctx context.Context, snap *source.Snapshot, after int64, limit int, fn func(Change)) error {
	q := `SELECT seq, tbl, op, k FROM ` + quote(LogTable) + ` WHERE seq > ? ORDER BY seq`
	args := []any{after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, int64(limit))
	}
	err := snap.Query(ctx, q, args, 4, func(row []any) {
		seq, _ := row[0].(int64)
		tbl, _ := row[1].(string)
		op, _ := row[2].(string)
		fn(Change{Seq: seq, Table: tbl, Op: op, Key: row[3]})
	})
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return fmt.Errorf("%w: %s is missing from the source (removed by hand?)", ErrNotInstalled, LogTable)
	}
	return err
}

// Pending counts the log rows after seq and returns the last seq, inside snap.
func Pending(ctx context.Context, snap *source.Snapshot, after int64) (n, last int64, err error) {
	err = snap.Query(ctx, `SELECT count(*), coalesce(max(seq), 0) FROM `+quote(LogTable)+` WHERE seq > ?`,
		[]any{after}, 2, func(row []any) {
			n, _ = row[0].(int64)
			last, _ = row[1].(int64)
		})
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return 0, 0, fmt.Errorf("%w: %s is missing from the source", ErrNotInstalled, LogTable)
	}
	return n, max(last, after), err
}

// ErrNotInstalled means a source's change capture is not (or no longer) in place: changes
// made since cannot be known, so the migration must not go on as if none happened.
var ErrNotInstalled = errors.New("change capture is not installed")

// quote quotes a SQLite identifier with backticks (see source.quoteSQLite for why).
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// literal quotes a SQLite string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
