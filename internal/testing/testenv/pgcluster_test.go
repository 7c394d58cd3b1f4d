package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPrivatePostgresRestartAndCrash proves the cluster keeps committed rows across a fast
// restart and a crash, drops what was not committed, and cuts the connections open at the time.
func TestPrivatePostgresRestartAndCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("initdb and two restarts")
	}
	t.Parallel()
	pg := StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	count := func() int {
		t.Helper()
		var n int
		if err := connect().QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	c := connect()
	if _, err := c.Exec(ctx, `CREATE TABLE t (id int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for _, fault := range []struct {
		name string
		do   func(testing.TB)
	}{{"restart", pg.Restart}, {"crash", pg.Crash}} {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
			t.Fatal(err)
		}
		fault.do(t)
		if err := tx.Commit(ctx); err == nil {
			t.Fatalf("%s: a transaction open across it committed", fault.name)
		}
		if n := count(); n != 1 {
			t.Fatalf("after %s: %d rows, want the 1 committed", fault.name, n)
		}
		c = connect()
	}
	var dbs int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = 'postgres'`).Scan(&dbs); err != nil {
		t.Fatalf("err: want nil; cluster answers oddly: %d, %v", dbs, err)
	} else if dbs != 1 {
		t.Fatalf("dbs: want 1; cluster answers oddly: %d, %v", dbs, err)
	}
}
