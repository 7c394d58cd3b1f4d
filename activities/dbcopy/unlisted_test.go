package dbcopy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/plan"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestUnlistedSourceColumnsRefuseThePlan: the application added a folder column to its emails
// and an attachments table; a spec that names neither is refused before anything is copied,
// naming both, and is accepted once it lists them under ignore: (shown in the plan).
func TestUnlistedSourceColumnsRefuseThePlan(t *testing.T) {
	ctx := ctxT(t)
	emails := &dbcopytest.Table{Name: "emails", PK: true, Columns: []string{"id", "subject", "folder"},
		Types: []string{"INTEGER", "TEXT", "TEXT"}, Rows: [][]any{{int64(1), "hi", "INBOX"}}}
	attachments := &dbcopytest.Table{Name: "attachments", PK: true, Columns: []string{"id", "email_id"},
		Types: []string{"INTEGER", "INTEGER"}, Rows: [][]any{{int64(1), int64(1)}}}
	src := filepath.Join(t.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, []*dbcopytest.Table{emails, attachments}); err != nil {
		t.Fatal(err)
	}
	doc := func(ignore string) string {
		return fmt.Sprintf(`name: mail
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: emails, source_table: emails, target_table: emails, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: subject, type: text}]}
%s`, src, ignore)
	}
	sp, err := spec.Parse([]byte(doc("")))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: newTarget(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	err = e.Prepare(ctx)
	for _, want := range []string{`table "attachments" is not migrated`, `table "emails": columns "folder" are not migrated`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("prepare: %v; want it to say %s", err, want)
		}
	}
	ignoring := doc("ignore:\n  - {table: attachments}\n  - {table: emails, columns: [folder]}\n")
	e = openSpec(t, newTarget(t), ignoring)
	copyAll(t, e)
	assertValidated(t, e, "emails")
	sp, _ = spec.Parse([]byte(ignoring))
	p, err := plan.New(sp)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"left behind in the source (ignore): attachments", "(ignore): emails.folder"} {
		if !strings.Contains(p.String(), want) {
			t.Errorf("plan:\n%s\nwant %q", p, want)
		}
	}
}
