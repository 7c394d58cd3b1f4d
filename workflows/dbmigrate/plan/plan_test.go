package plan

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

func clinic(t *testing.T) *spec.Spec {
	t.Helper()
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", "/tmp/x.db", 100)))
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestClinicDAG(t *testing.T) {
	p, err := New(clinic(t))
	if err != nil {
		t.Fatal(err)
	}
	// The clinic chain: offices → profiles → doctors → patients → orders; products after orders.
	want := "offices,profiles,doctors,patients,orders,products,comments,jaws,projects,treatment_plans"
	if got := strings.Join(p.Order, ","); got != want {
		t.Fatalf("order %s", got)
	}
	levels := fmt.Sprint(p.Levels())
	if levels != "[[offices profiles projects] [doctors comments] [patients] [orders treatment_plans] [products jaws]]" {
		t.Fatalf("levels %s", levels)
	}
	if got := strings.Join(p.Reverse()[:3], ","); got != "treatment_plans,projects,jaws" {
		t.Fatalf("reverse %s", got)
	}
}

func TestReadyRespectsDependenciesAndLimit(t *testing.T) {
	p, _ := New(clinic(t))
	for _, tc := range []struct {
		name      string
		completed []string
		started   []string
		running   int
		limit     int
		want      string
	}{
		{"start", nil, nil, 0, 0, "offices,profiles,projects"},
		{"limit 2", nil, nil, 0, 2, "offices,profiles"},
		{"limit reached", nil, []string{"offices", "profiles"}, 2, 2, ""},
		{"doctors need both parents", []string{"offices"}, []string{"offices", "profiles"}, 1, 3, "projects"},
		{"parents done", []string{"offices", "profiles"}, []string{"offices", "profiles"}, 0, 0, "doctors,comments,projects"},
		{"orders after patients", []string{"offices", "profiles", "doctors", "patients", "comments", "projects"},
			[]string{"offices", "profiles", "doctors", "patients", "comments", "projects"}, 0, 0, "orders,treatment_plans"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := func(xs []string) map[string]bool {
				m := map[string]bool{}
				for _, x := range xs {
					m[x] = true
				}
				return m
			}
			got := strings.Join(p.Ready(set(tc.completed), set(tc.started), tc.running, tc.limit), ",")
			if got != tc.want {
				t.Fatalf("ready = %q, want %q", got, tc.want)
			}
		})
	}
	if got := strings.Join(p.Blocked(map[string]bool{"patients": true}), ","); got != "orders,jaws,treatment_plans,products" &&
		got != "orders,products,jaws,treatment_plans" {
		t.Fatalf("blocked = %s", got)
	}
}

// TestReadyLoadedStartsWhatOnlyReferencesALoadedParent: an entity that only references a
// parent may start once the parent loaded; one that depends_on it, or references an entity
// referencing itself, waits for its completion.
func TestReadyLoadedStartsWhatOnlyReferencesALoadedParent(t *testing.T) {
	// The clinic with an entity referencing itself (staff, a boss) and one referencing it.
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", "/tmp/x.db", 100) + `  - name: staff
    source_table: staff
    target_table: staff
    key: {source: id}
    columns:
      - {source: boss_id, references: staff}
  - name: badges
    source_table: badge
    target_table: badges
    key: {source: id}
    columns:
      - {source: staff_id, references: staff}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(sp)
	if err != nil {
		t.Fatal(err)
	}
	set := func(xs ...string) map[string]bool {
		m := map[string]bool{}
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	done := set("offices", "profiles", "doctors", "patients", "comments", "projects")
	started := set("offices", "profiles", "doctors", "patients", "comments", "projects", "orders", "staff")
	// orders loaded: jaws (references orders and patients) and treatment_plans may start;
	// products depends_on orders and waits, badges waits for staff (its Finalize may still
	// quarantine staff rows whose boss is missing).
	got := strings.Join(p.ReadyLoaded(done, set("orders", "staff"), started, 0, 0), ",")
	if got != "treatment_plans,jaws" && got != "jaws,treatment_plans" {
		t.Fatalf("ready with orders loaded = %q, want jaws and treatment_plans", got)
	}
	if got := strings.Join(p.Ready(done, started, 0, 0), ","); got != "treatment_plans" {
		t.Fatalf("ready with orders running = %q, want treatment_plans", got)
	}
	if !p.SelfRef["staff"] {
		t.Fatalf("staff references itself: SelfRef = %v", p.SelfRef)
	}
	if p.SelfRef["orders"] {
		t.Fatalf("orders does not reference itself: SelfRef = %v", p.SelfRef)
	}
}

func TestCycleIsAnErrorBeforeAnythingRuns(t *testing.T) {
	sp := clinic(t)
	off, _ := sp.Entity("offices")
	off.DependsOn = []string{"orders"}
	_, err := New(sp)
	var se *spec.Error
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "dependency cycle") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpsPlacement(t *testing.T) {
	sp := clinic(t)
	sp.SchemaOps = []spec.SchemaOp{{Name: "drop-bio", Type: "drop_column", Table: "profiles", Column: "bio", After: "profiles"},
		{Name: "backup", Type: "create_backup", Table: "orders"}}
	p, err := New(sp)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.OpsAfter["profiles"]) != "[drop-bio]" {
		t.Fatalf("fmt.Sprint(p.OpsAfter[\"profiles\"]) = %v, want \"[drop-bio]\"; ops = %v %v",
			fmt.Sprint(p.OpsAfter["profiles"]), p.OpsAfter, p.Risky)
	}
	if fmt.Sprint(p.OpsAfter[""]) != "[backup]" {
		t.Fatalf("fmt.Sprint(p.OpsAfter[\"\"]) = %v, want \"[backup]\"; ops = %v %v",
			fmt.Sprint(p.OpsAfter[""]), p.OpsAfter, p.Risky)
	}
	if !p.Risky["drop-bio"] {
		t.Fatalf("p.Risky[\"drop-bio\"] is false; ops = %v %v", p.OpsAfter, p.Risky)
	}
	if p.Risky["backup"] {
		t.Fatalf("p.Risky[\"backup\"] is true; ops = %v %v", p.OpsAfter, p.Risky)
	}
}
