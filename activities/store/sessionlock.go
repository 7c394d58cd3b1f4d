package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SessionLock is a PostgreSQL session advisory lock held on a connection of its own, taken
// from a small pool apart from the main one (LockPoolSize connections): holders that keep it
// for a whole activity never starve the main pool, a worker holds at most that many locks at
// once (the others wait for a connection), and a pass does not open a connection of its own
// each time. The lock goes with the connection when the holding process dies. Lost is closed
// when that connection breaks (the server restarted, the network dropped), since the lock is
// then gone too.
type SessionLock struct {
	conn       *pgxpool.Conn
	space, key int32
	lost       chan struct{}
	stop, done chan struct{}
}

// LockPoolSize bounds the connections a DB holds session locks on.
const LockPoolSize = 16

// sessionLockCheck is how often a held lock's connection is checked.
const sessionLockCheck = 2 * time.Second

// lockConnectRetry is the first wait after the server refused a lock connection (too many
// clients, starting up); it doubles up to lockConnectRetryMax while the caller's context lasts.
const (
	lockConnectRetry    = 100 * time.Millisecond
	lockConnectRetryMax = 2 * time.Second
)

// lockPool returns the pool of lock connections, creating it on first use.
func (db *DB) lockPool() (*pgxpool.Pool, error) {
	db.lockMu.Lock()
	defer db.lockMu.Unlock()
	if db.locks != nil {
		return db.locks, nil
	}
	cfg := db.Pool.Config().Copy()
	cfg.MaxConns, cfg.MinConns = LockPoolSize, 0
	cfg.MaxConnIdleTime = time.Minute
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("lock connections: %w", err)
	}
	db.locks = p
	return p, nil
}

// closeLocks closes the lock pool, if one was opened.
func (db *DB) closeLocks() {
	db.lockMu.Lock()
	defer db.lockMu.Unlock()
	if db.locks != nil {
		db.locks.Close()
		db.locks = nil
	}
}

// acquireLockConn takes a lock connection, waiting for a free one; a connection the server
// refuses (too many clients, shutting down or starting up, unreachable for a moment) is tried
// again after a short wait until ctx ends, rather than failing the caller's attempt.
func (db *DB) acquireLockConn(ctx context.Context) (*pgxpool.Conn, error) {
	pool, err := db.lockPool()
	if err != nil {
		return nil, err
	}
	wait := lockConnectRetry
	for {
		conn, err := pool.Acquire(ctx)
		if err == nil || ctx.Err() != nil || !refusedConnection(err) {
			return conn, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last refusal: %w)", ctx.Err(), err)
		}
		wait = min(2*wait, lockConnectRetryMax)
	}
}

// refusedConnection reports a connection the server refused or could not take now.
func refusedConnection(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53300", "57P03", "57P01": // too_many_connections, cannot_connect_now, admin_shutdown
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// LockSession waits for the advisory lock (space, key) until it is granted or ctx ends.
func (db *DB) LockSession(ctx context.Context, space, key int32) (*SessionLock, error) {
	conn, err := db.acquireLockConn(ctx)
	if err != nil {
		return nil, fmt.Errorf("advisory lock %d/%d: connect: %w", space, key, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, space, key); err != nil {
		discard(conn) // a cancelled wait may still have been granted: never pool it
		return nil, fmt.Errorf("advisory lock %d/%d: %w", space, key, err)
	}
	l := &SessionLock{conn: conn, space: space, key: key, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch()
	return l, nil
}

// discard closes a pooled connection instead of returning it to its pool.
func discard(conn *pgxpool.Conn) {
	c := conn.Hijack()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

func (l *SessionLock) watch() {
	defer close(l.done)
	t := time.NewTicker(sessionLockCheck)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), sessionLockCheck)
			err := l.conn.Ping(ctx)
			cancel()
			if err != nil {
				close(l.lost)
				return
			}
		}
	}
}

// Lost is closed when the lock's connection broke while it was held.
func (l *SessionLock) Lost() <-chan struct{} { return l.lost }

// Release unlocks and returns the connection to the lock pool; a connection that did not
// answer the unlock (or broke) is closed instead, which releases the lock too.
func (l *SessionLock) Release() {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var unlocked bool
	if err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1, $2)`, l.space, l.key).Scan(&unlocked); err != nil || !unlocked {
		discard(l.conn)
		return
	}
	l.conn.Release()
}

// Unavailable reports an error that says the control database could not be reached or went
// away (connection failure, admin or crash shutdown, a server still starting): transient,
// unlike an error about the data, so work cut short by it is retried, not recorded as failed.
func Unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return len(c) == 5 && (c[:2] == "08" || c == "57P01" || c == "57P02" || c == "57P03" || c == "53300")
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err)
}
