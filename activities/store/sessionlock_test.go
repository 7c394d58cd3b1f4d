package store_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
)

func TestSessionLockSerialisesHolders(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	first, err := db.LockSession(ctx, 7, 42)
	if err != nil {
		t.Fatal(err)
	}
	// Another key is independent.
	other, err := db.LockSession(ctx, 7, 43)
	if err != nil {
		t.Fatal(err)
	}
	other.Release()

	// A second holder of the same key waits, and gives up with its context.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := db.LockSession(short, 7, 42); err == nil {
		t.Fatalf("err is nil; second holder while the first holds: %v, want a wait until the context ends", err)
	} else if short.Err() == nil {
		t.Fatalf("short.Err() is nil; second holder while the first holds: %v, want a wait until the context ends",
			err)
	}
	cancel()

	got := make(chan error, 1)
	go func() {
		l, err := db.LockSession(ctx, 7, 42)
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second holder returned while the first held the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	first.Release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second holder not granted the lock after the first released it")
	}
}

func TestSessionLockLostWithItsConnection(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	l, err := db.LockSession(ctx, 7, 44)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 7 AND objid = 44 AND granted`).Scan(&n); err != nil {
		t.Fatalf("err: want nil; terminate the holder's backend: %d, %v", n, err)
	} else if n != 1 {
		t.Fatalf("n: want 1; terminate the holder's backend: %d, %v", n, err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed after the lock's connection was terminated")
	}
	// The lock went with the connection: another holder gets it at once.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l2, err := db.LockSession(short, 7, 44)
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
}

// holderPID is the backend holding the advisory lock (7, key).
func holderPID(t *testing.T, db *store.DB, key int32) int {
	t.Helper()
	var pid int
	if err := db.Pool.QueryRow(context.Background(), `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 7 AND objid = $1 AND granted`, key).Scan(&pid); err != nil {
		t.Fatalf("holder of lock %d: %v", key, err)
	}
	return pid
}

// A lock is taken on a pooled connection: the next one reuses it instead of connecting again,
// and at most LockPoolSize are held at once (the next holder waits for a connection).
func TestSessionLocksShareABoundedPool(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	l, err := db.LockSession(ctx, 7, 45)
	if err != nil {
		t.Fatal(err)
	}
	first := holderPID(t, db, 45)
	l.Release()
	if l, err = db.LockSession(ctx, 7, 46); err != nil {
		t.Fatal(err)
	}
	if again := holderPID(t, db, 46); again != first {
		t.Errorf("second lock held by backend %d, want the first one's connection (%d) again", again, first)
	}
	l.Release()

	var held []*store.SessionLock
	for i := range store.LockPoolSize {
		l, err := db.LockSession(ctx, 7, int32(100+i))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = db.LockSession(short, 7, 99)
	cancel()
	if err == nil {
		t.Fatalf("a lock beyond the pool's %d connections was granted at once", store.LockPoolSize)
	}
	held[0].Release()
	l, err = db.LockSession(ctx, 7, 99)
	if err != nil {
		t.Fatalf("lock after a connection was freed: %v", err)
	}
	l.Release()
	for _, l := range held[1:] {
		l.Release()
	}
}

// A server refusing connections (too many clients, restarting) is waited out inside
// LockSession: the caller sees a lock, not an error.
func TestSessionLockWaitsOutRefusedConnections(t *testing.T) {
	url := testenv.NewDatabase(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	host, port, _ := net.SplitHostPort(p.Addr())
	db, err := store.Open(context.Background(), strings.Replace(url, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), host+":"+port, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	p.Refuse(true)
	time.AfterFunc(700*time.Millisecond, func() { p.Refuse(false) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	l, err := db.LockSession(ctx, 7, 47)
	if err != nil {
		t.Fatalf("lock while the server refused connections for 0.7 s: %v", err)
	}
	l.Release()
	if waited := time.Since(start); waited < 600*time.Millisecond {
		t.Errorf("granted after %v, before the server accepted connections again", waited)
	}
}
