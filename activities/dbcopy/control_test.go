package dbcopy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/cutover/cutover/internal/model"
)

// TestControlDatabaseIsNoTarget: a migration whose target would be the worker's control
// database fails at once, non-retryably, saying to set target.dsn — whether the spec names no
// target and the worker has no default one, or names the control database itself (however its
// host is spelled). A target elsewhere, or a worker-wide default target, is taken.
func TestControlDatabaseIsNoTarget(t *testing.T) {
	const control = "postgres://postgres@127.0.0.1:5432/cutover"
	for _, c := range []struct {
		name, dsn, defaultTarget string
		refused                  bool
		says                     string
	}{
		{name: "no target anywhere", refused: true, says: "the spec names no target database: set target.dsn"},
		{name: "the control database", dsn: "postgres://app@localhost:5432/cutover?sslmode=disable", refused: true,
			says: "the target is the worker's control database"},
		{name: "the control database as the default", defaultTarget: "host=::1 port=5432 dbname=cutover", refused: true,
			says: "the target is the worker's control database"},
		{name: "another database", dsn: "postgres://postgres@127.0.0.1:5432/app"},
		{name: "another server", dsn: "postgres://postgres@db.internal:5432/cutover"},
		{name: "the worker's default target", defaultTarget: "postgres://postgres@127.0.0.1:5432/app"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &Activities{ControlURL: control, TargetURL: c.defaultTarget}
			err := a.checkTarget(peopleSpec(t, c.dsn))
			if !c.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			_, err = a.DBPrepare(context.Background(), Migration{ID: uuid.NewString(), Type: model.MigrationFull,
				Spec: peopleSpec(t, c.dsn)})
			if d := cmp.Diff(errShape{Type: ErrTypeSpec, NonRetryable: true, Says: true}, shapeOf(err, c.says)); d != "" {
				t.Errorf("(-want +got):\n%s\n%v", d, err)
			}
		})
	}
}
