package mailsystem_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestMailSystemLoadNeverHangs runs the mail-system example 50 times (CUTOVER_HANG_RUNS changes it)
// with the shipped spec, the application writing into the SQLite databases while the load runs: a
// full load whose email batches cross months (partitions created as they are needed, beside two
// concurrent writers), then a catch-up pass. Each run must end within a minute with every row in
// the target; a run that does not is reported with what each session of the target waits on.
// (Partition creation and a later batch's COPY used to wait on each other with the wait invisible
// to PostgreSQL: 3 runs in 8 hung for ever.)
func TestMailSystemLoadNeverHangs(t *testing.T) {
	runs := 50
	if s := os.Getenv("CUTOVER_HANG_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("CUTOVER_HANG_RUNS=%q", s)
		}
		runs = n
	}
	sp, err := spec.Load(mailsystem.SpecPath())
	if err != nil {
		t.Fatal(err)
	}
	for i := range runs {
		target := testenv.NewDatabase(t)
		if err := loadOnce(t, sp, target); err != nil {
			t.Fatalf("run %d of %d: %v", i+1, runs, err)
		}
	}
	t.Logf("%d runs, none hung", runs)
}

func loadOnce(t *testing.T, base *spec.Spec, target string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data, err := mailsystem.Generate(ctx, t.TempDir(), 100, 6000)
	if err != nil {
		return err
	}
	sp := *base
	sp.Sources = map[string]spec.Source{"emails": {Driver: "sqlite", Path: data.EmailsDB}, "auth": {Driver: "sqlite", Path: data.AuthDB}}
	e, err := dbcopy.Open(ctx, &sp, dbcopy.Options{MigrationID: uuid.New(), MigrationType: model.MigrationIncremental,
		TargetURL: target})
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		return err
	}
	order, _ := sp.Order()

	// The application writes while the load runs.
	appDone := make(chan error, 1)
	go func() {
		var err error
		for range 5 {
			if err = data.Append(ctx, 2, 40, 20*24*time.Hour); err != nil {
				break
			}
		}
		appDone <- err
	}()
	type result struct {
		next map[string]dbmigrateapi.BatchRequest
		err  error
	}
	done := make(chan result, 1)
	go func() {
		next := map[string]dbmigrateapi.BatchRequest{}
		for _, name := range order {
			res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil)
			if err != nil {
				done <- result{err: fmt.Errorf("copy %s: %w", name, err)}
				return
			}
			next[name] = dbmigrateapi.BatchRequest{Entity: name, Sync: true, After: res.Next.After, BatchNumber: res.Next.BatchNumber}
		}
		if err := <-appDone; err != nil {
			done <- result{err: fmt.Errorf("application writes: %w", err)}
			return
		}
		for _, name := range order {
			if _, err := e.CopyBatches(ctx, next[name], 0, nil); err != nil {
				done <- result{err: fmt.Errorf("catch-up %s: %w", name, err)}
				return
			}
		}
		done <- result{next: next}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(50 * time.Second):
		return fmt.Errorf("hung; the target's sessions:\n  %s", strings.Join(sessionWaits(e.Pool()), "\n  "))
	}
	if r.err != nil {
		return r.err
	}
	var n int
	if err := e.Pool().QueryRow(ctx, `SELECT count(*) FROM public.emails`).Scan(&n); err != nil {
		return err
	}
	if want := data.Emails - data.Duplicates; n != want {
		return fmt.Errorf("%d emails in the target, want %d", n, want)
	}
	return nil
}

// sessionWaits lists what the active sessions of the pool's database wait on.
func sessionWaits(pool *pgxpool.Pool) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT pid, coalesce(wait_event_type, ''), coalesce(wait_event, ''), left(query, 100)
		FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()`)
	if err != nil {
		return []string{err.Error()}
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var pid int
		var typ, ev, q string
		if err := rows.Scan(&pid, &typ, &ev, &q); err != nil {
			return append(out, err.Error())
		}
		out = append(out, fmt.Sprintf("pid %d waits on %s/%s: %s", pid, typ, ev, q))
	}
	return out
}
