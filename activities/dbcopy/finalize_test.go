package dbcopy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

// TestFinalizeValidatesForeignKeys: Finalize adds each reference's foreign key NOT VALID and
// then validates it, so every key ends validated; a key left NOT VALID (a VALIDATE that failed
// or was cut off) is validated by the next Finalize.
func TestFinalizeValidatesForeignKeys(t *testing.T) {
	e, _, _ := openClinic(t, "sqlite", 1, 50)
	copyAll(t, e)
	ctx := ctxT(t)
	fkeys := func() map[string]bool {
		rows, err := e.pool.Query(ctx, `SELECT conname::text, convalidated FROM pg_constraint
			WHERE contype = 'f' AND connamespace = 'public'::regnamespace`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			Name  string
			Valid bool
		}]))(t) {
			out[r.Name] = r.Valid
		}
		return out
	}
	want := map[string]bool{
		"comments_author_id_fkey":         true,
		"doctors_office_id_fkey":          true,
		"doctors_profile_id_fkey":         true,
		"jaws_order_id_fkey":              true,
		"jaws_patient_id_fkey":            true,
		"orders_patient_id_fkey":          true,
		"patients_doctor_id_fkey":         true,
		"patients_profile_id_fkey":        true,
		"treatment_plans_patient_id_fkey": true,
	}
	if diff := cmp.Diff(want, fkeys()); diff != "" {
		t.Fatalf("foreign keys after the load (-want +got):\n%s", diff)
	}
	if _, err := e.pool.Exec(ctx, `ALTER TABLE public.orders DROP CONSTRAINT orders_patient_id_fkey;
		ALTER TABLE public.orders ADD CONSTRAINT orders_patient_id_fkey FOREIGN KEY (patient_id)
		REFERENCES public.patients (id) DEFERRABLE NOT VALID`); err != nil {
		t.Fatal(err)
	}
	if err := e.Finalize(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, fkeys()); diff != "" {
		t.Fatalf("foreign keys after finalizing again (-want +got):\n%s", diff)
	}
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
