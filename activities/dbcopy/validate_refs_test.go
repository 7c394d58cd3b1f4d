package dbcopy

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/model"
)

// TestReferencesCheckTrustsOnlyEnforcingKeys: the references check counts the references a
// validated foreign key guarantees and names the key; once the key's triggers are disabled, or
// the key is gone, a dangling reference written meanwhile is found by looking every reference
// up in the parent.
func TestReferencesCheckTrustsOnlyEnforcingKeys(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 50)
	copyAll(t, e)
	ctx := ctxT(t)
	type outcome struct {
		Status     model.ValidationStatus
		EnforcedBy string `json:"enforced_by"`
		Dangling   int64  `json:"dangling"`
		Positive   bool   // some references counted
	}
	check := func(when string) outcome {
		t.Helper()
		vs, err := e.Validate(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.ValidationType != model.ValidationReferential {
				continue
			}
			var d map[string]struct {
				EnforcedBy string `json:"enforced_by"`
				References int64  `json:"references"`
				Dangling   int64  `json:"dangling"`
			}
			if err := json.Unmarshal(v.IssueDetails, &d); err != nil {
				t.Fatalf("%s: details %s: %v", when, v.IssueDetails, err)
			}
			r := d["patient_id"]
			return outcome{Status: v.Status, EnforcedBy: r.EnforcedBy, Dangling: r.Dangling, Positive: r.References > 0}
		}
		t.Fatalf("%s: no references check among %d results", when, len(vs))
		return outcome{}
	}
	want := outcome{Status: model.ValidationPassed, EnforcedBy: "foreign key orders_patient_id_fkey (validated)", Positive: true}
	if diff := cmp.Diff(want, check("after the load")); diff != "" {
		t.Errorf("after the load (-want +got):\n%s", diff)
	}
	dangle := `UPDATE public.orders SET patient_id = gen_random_uuid()
		WHERE id = (SELECT o.id FROM public.orders o JOIN public.patients p ON p.id = o.patient_id ORDER BY o.id LIMIT 1)`
	if _, err := e.pool.Exec(ctx, `ALTER TABLE public.orders DISABLE TRIGGER ALL; `+dangle); err != nil {
		t.Fatal(err)
	}
	want = outcome{Status: model.ValidationFailed, Dangling: 1, Positive: true}
	if diff := cmp.Diff(want, check("key's triggers disabled")); diff != "" {
		t.Errorf("key's triggers disabled (-want +got):\n%s", diff)
	}
	if _, err := e.pool.Exec(ctx, `ALTER TABLE public.orders ENABLE TRIGGER ALL;
		ALTER TABLE public.orders DROP CONSTRAINT orders_patient_id_fkey; `+dangle); err != nil {
		t.Fatal(err)
	}
	want.Dangling = 2
	if diff := cmp.Diff(want, check("key dropped")); diff != "" {
		t.Errorf("key dropped (-want +got):\n%s", diff)
	}
}
