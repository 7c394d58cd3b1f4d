package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// recorder keeps the errors a check reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

// TestFaultCheckCatchesLossAndDuplication proves the check every fault test ends with can
// fail: after a clean copy it finds nothing; with one event row written twice and another
// deleted it reports one duplicated and one missing row.
func TestFaultCheckCatchesLossAndDuplication(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	t.Parallel()
	ctx := context.Background()
	src := sqliteWorkload(t, t.TempDir(), 20, 500, 100)
	dbURL := testenv.NewDatabase(t)
	prepareTarget(t, dbURL)
	pool := newPool(t, dbURL)
	sp, err := spec.Parse(fmt.Appendf(nil, specYAML, src.batch, src.source))
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	e, err := dbcopy.Open(ctx, sp, dbcopy.Options{MigrationID: id, TargetURL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ent := range []string{"owners", "events"} {
		if res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: ent}, 0, nil); err != nil || !res.Done {
			t.Fatalf("copy %s: %+v, %v", ent, res, err)
		}
		// As the workflow ends an entity: its entity_completion checkpoint, which the check counts.
		if err := e.SetEntityStatus(ctx, ent, model.EntityCompleted); err != nil {
			t.Fatal(err)
		}
	}
	clean := &recorder{TB: t}
	if found := assertExactlyOnce(clean, pool, src, id.String()); found != (tally{}) {
		t.Fatalf("found: want (tally{}); a clean copy was reported as %+v: %v", found, clean.errs)
	} else if len(clean.errs) > 0 {
		t.Fatalf("len(clean.errs) = %v, want <= 0; a clean copy was reported as %+v: %v",
			len(clean.errs), found, clean.errs)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO app.events SELECT * FROM app.events WHERE legacy_id = 7;
		DELETE FROM app.events WHERE legacy_id = 8`); err != nil {
		t.Fatal(err)
	}
	broken := &recorder{TB: t}
	found := assertExactlyOnce(broken, pool, src, id.String())
	if found != (tally{missing: 1, duplicated: 1}) || !strings.Contains(strings.Join(broken.errs, "\n"), "1 missing, 1 duplicated") {
		t.Fatalf("one row twice and one gone were reported as %+v: %v", found, broken.errs)
	}
}
