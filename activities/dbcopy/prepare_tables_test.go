package dbcopy

import (
	"path/filepath"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestOpenForPreparingCreatesTablesBesideTheLedger: an engine opened to prepare a migration has
// the spec's target tables made while the ledger schema was applied, Prepare does not make
// them again, and the clinic then loads and checks out as it does otherwise.
func TestOpenForPreparingCreatesTablesBesideTheLedger(t *testing.T) {
	ctx := ctxT(t)
	clinic := dbcopytest.NewClinic(1, false)
	loc := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, loc, clinic.Tables); err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", loc, 100)))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: newTarget(t), Preparing: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if !e.tablesMade {
		t.Fatal("e.tablesMade = false after Open with Preparing, want the tables made beside the ledger")
	}
	order, _ := sp.Order()
	for _, name := range order {
		ent, _ := sp.Entity(name)
		if n := count(t, e, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2`, sp.Target.Schema, ent.TargetTable); n != 1 {
			t.Fatalf("target table %s: %d found after Open, want 1", ent.TargetTable, n)
		}
	}
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if e.tablesMade {
		t.Fatal("e.tablesMade = true after Prepare, want it used once")
	}
	copyAll(t, e)
	assertClinic(t, e, clinic)
}
