package dbcopy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestLoadedTargetRefusedUnlessTheSpecSays: a second migration into a target its tables were
// already loaded into is refused before it copies anything, naming the tables, unless the spec
// says target.on_existing: truncate (the tables are emptied, then loaded) or resume (the load
// writes over the rows as upserts). Either way the target ends equal to the source, with
// nothing quarantined (it used to quarantine every row and complete).
func TestLoadedTargetRefusedUnlessTheSpecSays(t *testing.T) {
	ctx := ctxT(t)
	teams := &dbcopytest.Table{Name: "team", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"}}
	for i := 1; i <= 30; i++ {
		teams.Rows = append(teams.Rows, []any{int64(i), fmt.Sprintf("team %d", i)})
	}
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, []*dbcopytest.Table{teams}); err != nil {
		t.Fatal(err)
	}
	target := newTarget(t)
	specFor := func(onExisting string) string {
		return fmt.Sprintf(`name: teams
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true%s}
batch_size: 7
entities:
  - {name: teams, source_table: team, target_table: teams, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: name, type: text}]}
`, src, onExisting)
	}
	first := openSpec(t, target, specFor(""))
	copyAll(t, first)
	var conf string
	if err := first.Pool().QueryRow(ctx, `SELECT configuration::text FROM migration_orchestrations WHERE id = $1`,
		first.opt.MigrationID).Scan(&conf); err != nil || !strings.Contains(conf, `"batch_size": 7`) ||
		!strings.Contains(conf, `"capture": {"legacy": "`) {
		t.Errorf("configuration %s (%v): want the batch size and the capture modes", conf, err)
	}

	sp, err := spec.Parse([]byte(specFor("")))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	err = e.Prepare(ctx)
	if err == nil || !strings.Contains(err.Error(), "teams (30 rows)") || !strings.Contains(err.Error(), "on_existing") {
		t.Fatalf("second migration into a loaded target: %v; want a refusal naming teams", err)
	}
	for _, mode := range []string{"truncate", "resume"} {
		t.Run(mode, func(t *testing.T) {
			e := openSpec(t, target, specFor(", on_existing: "+mode))
			copyAll(t, e)
			got := strings0(t, e, `SELECT legacy_id || ' ' || name FROM public.teams`)
			var want []string
			for _, r := range teams.Rows {
				want = append(want, fmt.Sprintf("%d %s", r[0], r[1]))
			}
			if diff := cmp.Diff(sortedCopy(want), got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
			if codes := errorCodes(t, e, "teams"); len(codes) != 0 {
				t.Errorf("quarantined: %v", codes)
			}
			assertValidated(t, e, "teams")
		})
	}
}
