package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SessionLock is a PostgreSQL session advisory lock held on a connection of its own, outside
// the pool: holders that keep it for a whole activity never starve the pool, and the lock goes
// with the connection when the holding process dies. Lost is closed when that connection
// breaks (the server restarted, the network dropped), since the lock is then gone too.
type SessionLock struct {
	conn       *pgx.Conn
	space, key int32
	lost       chan struct{}
	stop, done chan struct{}
}

// sessionLockCheck is how often a held lock's connection is checked.
const sessionLockCheck = 2 * time.Second

// LockSession waits for the advisory lock (space, key) until it is granted or ctx ends.
func (db *DB) LockSession(ctx context.Context, space, key int32) (*SessionLock, error) {
	conn, err := pgx.ConnectConfig(ctx, db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("advisory lock %d/%d: connect: %w", space, key, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, space, key); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("advisory lock %d/%d: %w", space, key, err)
	}
	l := &SessionLock{conn: conn, space: space, key: key, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch()
	return l, nil
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

// Release unlocks and closes the connection (closing alone would release it too; the explicit
// unlock makes the hand-over immediate even if the close is slow).
func (l *SessionLock) Release() {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, l.space, l.key)
	_ = l.conn.Close(ctx)
}
