package testenv

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestNewDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var name string
	var leaked *pgx.Conn
	t.Run("create", func(t *testing.T) {
		dbURL := NewDatabase(t)
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatalf("parse %q: %v", dbURL, err)
		}
		name = strings.TrimPrefix(u.Path, "/")
		if !strings.HasPrefix(name, "cutover_t_") {
			t.Errorf("database name %q lacks the cutover_t_ prefix", name)
		}

		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connect to %s: %v", name, err)
		}
		var one int
		var current string
		if err := conn.QueryRow(ctx, "SELECT 1, current_database()").Scan(&one, &current); err != nil {
			t.Fatalf("SELECT 1: %v", err)
		}
		if one != 1 {
			t.Errorf("one: want 1; SELECT 1, current_database() = %d, %q; want 1, %q", one, current, name)
		} else if current != name {
			t.Errorf("current: want name; SELECT 1, current_database() = %d, %q; want 1, %q", one, current, name)
		}
		// Left open on purpose: the drop must not be blocked by it.
		leaked = conn
	})
	if leaked != nil {
		defer leaked.Close(context.Background())
	}
	if name == "" {
		t.Fatal("the subtest did not create a database")
	}

	conn, err := pgx.Connect(ctx, postgresBaseURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatalf("query pg_database: %v", err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after the test's cleanup", name)
	}
}
