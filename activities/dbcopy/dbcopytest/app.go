package dbcopytest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// The app schema is a small live application: accounts with a unique email, flags updated in
// place and no watermark column (nothing says when a row last changed), and sessions pointing
// at accounts. AppWriter plays the application writing to it during a migration.
const appSQLite = `
CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
  is_read INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE sessions (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, token TEXT NOT NULL UNIQUE, expires_at INTEGER);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[1]d)
  INSERT INTO accounts SELECT i, 'user' || i || '@mail.example', 'hash-' || i, i %% 2, '2024-10-03 08:00:00' FROM s;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[2]d)
  INSERT INTO sessions SELECT i, 1 + i %% %[1]d, 'tok-' || i, 1730000000 + i FROM s;`

const appPostgres = `
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, password_hash text NOT NULL,
  is_read integer NOT NULL DEFAULT 0, created_at text NOT NULL);
CREATE TABLE sessions (id bigint PRIMARY KEY, account_id bigint NOT NULL, token text NOT NULL UNIQUE, expires_at bigint);
INSERT INTO accounts SELECT i, 'user' || i || '@mail.example', 'hash-' || i, i %% 2, '2024-10-03 08:00:00'
  FROM generate_series(1, %[1]d) i;
INSERT INTO sessions SELECT i, 1 + i %% %[1]d, 'tok-' || i, 1730000000 + i FROM generate_series(1, %[2]d) i;`

// AppSpec is the migration spec of the app schema from a source ({driver: …, path|dsn: …}).
func AppSpec(source string, batch int) string {
	return fmt.Sprintf(`name: app
version: "1"
batch_size: %d
sources:
  app: %s
target:
  create_tables: true
entities:
  - name: accounts
    source_table: accounts
    target_table: accounts
    key: {source: id}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: email, type: text, not_null: true, unique: true}
      - {source: password_hash, type: text, not_null: true}
      - {source: is_read, type: boolean}
      - {source: created_at, type: timestamptz, not_null: true}
  - name: sessions
    source_table: sessions
    target_table: sessions
    key: {source: id}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: account_id, references: accounts, not_null: true}
      - {source: token, type: text, not_null: true, unique: true}
      - {source: expires_at, type: bigint}
`, batch, source)
}

// App is the application's database: a SQLite file or a PostgreSQL database.
type App struct {
	Driver   string // sqlite | postgres
	Location string // path or URL
	Accounts int    // initial rows
	Sessions int
}

// CreateApp writes the app schema with accounts and sessions.
func CreateApp(ctx context.Context, driver, location string, accounts, sessions int) (*App, error) {
	a := &App{Driver: driver, Location: location, Accounts: accounts, Sessions: sessions}
	db, err := a.open()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ddl := appSQLite
	if driver == "postgres" {
		ddl = appPostgres
	}
	for _, stmt := range strings.Split(fmt.Sprintf(ddl, accounts, sessions), ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create app: %w", err)
		}
	}
	return a, nil
}

// SourceYAML is the spec's source entry of the app.
func (a *App) SourceYAML() string {
	if a.Driver == "postgres" {
		return fmt.Sprintf("{driver: postgres, dsn: %q}", a.Location)
	}
	return fmt.Sprintf("{driver: sqlite, path: %q}", a.Location)
}

func (a *App) open() (*sql.DB, error) {
	if a.Driver == "postgres" {
		return sql.Open("pgx", a.Location)
	}
	// WAL, as the legacy mail system runs; its writers wait up to 5 s on a lock.
	return sql.Open("sqlite", "file:"+a.Location+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
}

func (a *App) ph(s string) string {
	if a.Driver != "postgres" {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WriterStats counts what the writer did.
type WriterStats struct {
	Inserts, Updates, Deletes, Busy atomic.Int64
}

// Writer runs the application: INSERTs, UPDATEs of existing rows in place (no watermark) and
// DELETEs (a session, or an account with its sessions, as a retention purge does), each in its
// own transaction, until Stop.
type Writer struct {
	app   *App
	db    *sql.DB
	rng   *rand.Rand
	Stats WriterStats
	// Pause, when set, is slept between transactions.
	Pause time.Duration

	mu       sync.Mutex
	accounts []int64 // ids alive
	sessions map[int64]int64
	nextAcc  int64
	nextSess int64
	stop     chan struct{}
	done     chan error
}

// NewWriter prepares a writer over the app's initial rows.
func NewWriter(a *App, seed uint64) (*Writer, error) {
	db, err := a.open()
	if err != nil {
		return nil, err
	}
	w := &Writer{app: a, db: db, rng: rand.New(rand.NewPCG(seed, 16)), sessions: map[int64]int64{},
		nextAcc: int64(a.Accounts), nextSess: int64(a.Sessions)}
	for i := int64(1); i <= int64(a.Accounts); i++ {
		w.accounts = append(w.accounts, i)
	}
	for i := int64(1); i <= int64(a.Sessions); i++ {
		w.sessions[i] = 1 + i%int64(a.Accounts)
	}
	return w, nil
}

// Start runs the writer in the background.
func (w *Writer) Start(ctx context.Context) {
	w.stop, w.done = make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-w.stop:
				w.done <- nil
				return
			case <-ctx.Done():
				w.done <- ctx.Err()
				return
			default:
			}
			if err := w.Step(ctx); err != nil {
				w.done <- err
				return
			}
			if w.Pause > 0 {
				time.Sleep(w.Pause)
			}
		}
	}()
}

// Stop ends the writer and returns its first error.
func (w *Writer) Stop() error {
	close(w.stop)
	err := <-w.done
	return err
}

// Close releases the connection.
func (w *Writer) Close() { _ = w.db.Close() }

// Step writes one transaction.
func (w *Writer) Step(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for try := 0; ; try++ {
		err := w.step(ctx)
		if err == nil || try >= 20 || !isBusy(err) {
			return err
		}
		w.Stats.Busy.Add(1)
		time.Sleep(10 * time.Millisecond)
	}
}

func isBusy(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked")
}

func (w *Writer) step(ctx context.Context) error {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	ex := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, w.app.ph(q), args...)
		return err
	}
	pickAcc := func() int64 { return w.accounts[w.rng.IntN(len(w.accounts))] }
	var commit func()
	switch op := w.rng.IntN(10); {
	case op < 3 || len(w.accounts) < 10: // a new account and its session
		w.nextAcc++
		w.nextSess++
		a, s := w.nextAcc, w.nextSess
		if err := ex(`INSERT INTO accounts (id, email, password_hash, is_read, created_at) VALUES (?, ?, ?, 0, ?)`,
			a, fmt.Sprintf("new%d@mail.example", a), fmt.Sprintf("hash-%d", a), "2024-12-01T10:00:00Z"); err != nil {
			return err
		}
		if err := ex(`INSERT INTO sessions (id, account_id, token, expires_at) VALUES (?, ?, ?, ?)`,
			s, a, fmt.Sprintf("tok-new-%d", s), 1740000000+s); err != nil {
			return err
		}
		commit = func() {
			w.accounts = append(w.accounts, a)
			w.sessions[s] = a
			w.Stats.Inserts.Add(2)
		}
	case op < 6: // flags and password hash changed in place
		a := pickAcc()
		if err := ex(`UPDATE accounts SET is_read = 1 - is_read, password_hash = ? WHERE id = ?`,
			fmt.Sprintf("rehash-%d-%d", a, w.rng.IntN(1e6)), a); err != nil {
			return err
		}
		commit = func() { w.Stats.Updates.Add(1) }
	case op < 7: // an email changes: its old value may be taken by a later insert
		a := pickAcc()
		if err := ex(`UPDATE accounts SET email = ? WHERE id = ?`, fmt.Sprintf("moved%d-%d@mail.example", a, w.rng.IntN(1e6)), a); err != nil {
			return err
		}
		commit = func() { w.Stats.Updates.Add(1) }
	case op < 8: // a session moves to another account and is extended
		var s int64
		for k := range w.sessions {
			s = k
			break
		}
		if s == 0 {
			return nil
		}
		a := pickAcc()
		if err := ex(`UPDATE sessions SET account_id = ?, expires_at = expires_at + 3600 WHERE id = ?`, a, s); err != nil {
			return err
		}
		commit = func() { w.sessions[s] = a; w.Stats.Updates.Add(1) }
	default: // the retention purge: an account and its sessions
		i := w.rng.IntN(len(w.accounts))
		a := w.accounts[i]
		var gone []int64
		for s, owner := range w.sessions {
			if owner == a {
				gone = append(gone, s)
			}
		}
		if err := ex(`DELETE FROM sessions WHERE account_id = ?`, a); err != nil {
			return err
		}
		if err := ex(`DELETE FROM accounts WHERE id = ?`, a); err != nil {
			return err
		}
		commit = func() {
			w.accounts = append(w.accounts[:i], w.accounts[i+1:]...)
			for _, s := range gone {
				delete(w.sessions, s)
			}
			w.Stats.Deletes.Add(int64(1 + len(gone)))
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	commit()
	return nil
}

// Snapshot is every row of the app by legacy id, rendered canonically (both sides the same way).
type Snapshot struct {
	Accounts map[int64]string
	Sessions map[int64]string
}

// ReadSource reads the app's rows from its own database.
func (a *App) ReadSource(ctx context.Context) (Snapshot, error) {
	db, err := a.open()
	if err != nil {
		return Snapshot{}, err
	}
	defer db.Close()
	s := Snapshot{Accounts: map[int64]string{}, Sessions: map[int64]string{}}
	rows, err := db.QueryContext(ctx, `SELECT id, email, password_hash, is_read FROM accounts`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var id, read int64
		var email, hash string
		if err := rows.Scan(&id, &email, &hash, &read); err != nil {
			rows.Close()
			return s, err
		}
		s.Accounts[id] = fmt.Sprintf("%s|%s|%t", email, hash, read != 0)
	}
	rows.Close()
	rows, err = db.QueryContext(ctx, `SELECT id, account_id, token, expires_at FROM sessions`)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, acc int64
		var exp sql.NullInt64
		var tok string
		if err := rows.Scan(&id, &acc, &tok, &exp); err != nil {
			return s, err
		}
		s.Sessions[id] = fmt.Sprintf("%d|%s|%d", acc, tok, exp.Int64)
	}
	return s, rows.Err()
}

// ReadTarget reads the migrated rows from the target (schema public) by their legacy ids, the
// session's account through the account row it points at.
func ReadTarget(ctx context.Context, pool *pgxpool.Pool) (Snapshot, error) {
	return readTarget(ctx, pool, "legacy_id", "")
}

// ReadTargetMapped is ReadTarget with each row's legacy id taken from the migration's id
// mappings (rows the application created on the target after cutover have no legacy_id).
func ReadTargetMapped(ctx context.Context, pool *pgxpool.Pool, migrationID string) (Snapshot, error) {
	return readTarget(ctx, pool, "", migrationID)
}

func readTarget(ctx context.Context, pool *pgxpool.Pool, col, migrationID string) (Snapshot, error) {
	s := Snapshot{Accounts: map[int64]string{}, Sessions: map[int64]string{}}
	legacy := func(alias, table string) string {
		if col != "" {
			return alias + "." + col
		}
		return fmt.Sprintf(`(SELECT m.source_id::bigint FROM cutover.migration_mappings m WHERE m.destination_id = %s.id
			AND m.migration_id = '%s' AND m.source_table = '%s')`, alias, migrationID, table)
	}
	rows, err := pool.Query(ctx, `SELECT `+legacy("a", "accounts")+`, email, password_hash, coalesce(is_read, false)
		FROM public.accounts a`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var id int64 = -1
		var idp *int64
		var email, hash string
		var read bool
		if err := rows.Scan(&idp, &email, &hash, &read); err != nil {
			rows.Close()
			return s, err
		}
		if idp != nil {
			id = *idp
		}
		if _, dup := s.Accounts[id]; dup {
			s.Accounts[id] += " (twice)"
			continue
		}
		s.Accounts[id] = fmt.Sprintf("%s|%s|%t", email, hash, read)
	}
	rows.Close()
	rows, err = pool.Query(ctx, `SELECT `+legacy("s", "sessions")+`, coalesce(`+legacy("a", "accounts")+`, -1), s.token,
		coalesce(s.expires_at, 0) FROM public.sessions s LEFT JOIN public.accounts a ON a.id = s.account_id`)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, acc, exp int64 = -1, 0, 0
		var idp *int64
		var tok string
		if err := rows.Scan(&idp, &acc, &tok, &exp); err != nil {
			return s, err
		}
		if idp != nil {
			id = *idp
		}
		if _, dup := s.Sessions[id]; dup {
			s.Sessions[id] += " (twice)"
			continue
		}
		s.Sessions[id] = fmt.Sprintf("%d|%s|%d", acc, tok, exp)
	}
	return s, rows.Err()
}

// Diff lists the rows that differ between want (the source) and got (the target), at most max.
func Diff(want, got Snapshot, max int) []string {
	var out []string
	cmp := func(table string, w, g map[int64]string) {
		var ids []int64
		for id := range w {
			ids = append(ids, id)
		}
		for id := range g {
			if _, ok := w[id]; !ok {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			wv, wok := w[id]
			gv, gok := g[id]
			switch {
			case !gok:
				out = append(out, fmt.Sprintf("%s %d: missing in the target (source %q)", table, id, wv))
			case !wok:
				out = append(out, fmt.Sprintf("%s %d: in the target only (%q)", table, id, gv))
			case wv != gv:
				out = append(out, fmt.Sprintf("%s %d: source %q, target %q", table, id, wv, gv))
			}
		}
	}
	cmp("accounts", want.Accounts, got.Accounts)
	cmp("sessions", want.Sessions, got.Sessions)
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("… and %d more", len(out)-max))
	}
	return out
}
