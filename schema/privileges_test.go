package schema_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/schema"
)

// A role without CREATE (the worker's least-privilege role of the README) may run Apply on a
// database an administrator brought up to date: it changes nothing and fails nothing. It used
// to fail on CREATE TABLE IF NOT EXISTS, which needs CREATE even when the table exists.
func TestApplyUpToDateNeedsNoDDLPrivilege(t *testing.T) {
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t)
	admin, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if _, err := schema.Apply(ctx, admin); err != nil {
		t.Fatal(err)
	}
	role := fmt.Sprintf("schema_reader_%d", time.Now().UnixNano())
	u, _ := url.Parse(dbURL)
	db := strings.TrimPrefix(u.Path, "/")
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT CONNECT ON DATABASE "` + db + `" TO ` + role,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT ON schema_migrations TO ` + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP OWNED BY `+role)
		_, _ = admin.Exec(context.Background(), `DROP ROLE `+role)
	})
	u.User = url.User(role)
	limited, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	if _, err := limited.Exec(ctx, `CREATE TABLE probe (id int)`); err == nil {
		t.Fatal("the role may create tables: the test proves nothing")
	}
	res, err := schema.Apply(ctx, limited)
	if err != nil {
		t.Fatalf("err: want nil; apply as a role without CREATE: %+v, %v", res, err)
	}
	if len(res.Applied) != 0 {
		t.Fatalf("len(res.Applied) = %v, want 0; apply as a role without CREATE: %+v, %v",
			len(res.Applied), res, err)
	}
	if res.Version != schema.Latest() {
		t.Fatalf("res.Version = %v, want schema.Latest(); apply as a role without CREATE: %+v, %v",
			res.Version, res, err)
	}
}
