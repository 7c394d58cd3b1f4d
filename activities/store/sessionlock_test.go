package store_test

import (
	"context"
	"testing"
	"time"
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
	if _, err := db.LockSession(short, 7, 42); err == nil || short.Err() == nil {
		t.Fatalf("second holder while the first holds: %v, want a wait until the context ends", err)
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
		WHERE locktype = 'advisory' AND classid = 7 AND objid = 44 AND granted`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the holder's backend: %d, %v", n, err)
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
