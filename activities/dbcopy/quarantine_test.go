package dbcopy

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestQuarantinedRowsAreMissingUnlessAllowed: the clinic's planted bad rows are quarantined;
// without an error budget the completeness check of every entity with quarantined rows
// fails (they are missing from the target, as a count of the target itself shows), a budget
// one row short still fails, a budget that holds them or an operator's acceptance lets the
// migration complete with a warning naming it, and a row quarantined after the acceptance
// fails it again.
func TestQuarantinedRowsAreMissingUnlessAllowed(t *testing.T) {
	e, clinic, _ := openClinic(t, "sqlite", 1, 300)
	e.spec.ErrorBudget = nil
	copyAll(t, e)
	ctx := ctxT(t)
	total := 0
	for _, name := range dbcopytest.Entities {
		x := clinic.Expects[name]
		total += x.Failed()
		// Independently of the ledger: the target holds the source rows minus the quarantined.
		ent, _ := e.spec.Entity(name)
		if n := count(t, e, `SELECT count(*) FROM public.`+spec.QuoteIdent(ent.TargetTable)); n != x.Source-x.Failed() {
			t.Fatalf("%s: %d rows in the target, want %d of %d", name, n, x.Source-x.Failed(), x.Source)
		}
	}
	type verdict struct {
		Status  model.ValidationStatus
		Missing int
		Passed  bool
	}
	judge := func(label string, want func(name string, quarantined int) verdict) map[string]json.RawMessage {
		t.Helper()
		details := map[string]json.RawMessage{}
		got, wanted := map[string]verdict{}, map[string]verdict{}
		for name, vs := range validateAll(t, e) {
			v := completeness(t, vs)
			var d struct {
				Missing int `json:"missing_from_target"`
			}
			_ = json.Unmarshal(v.IssueDetails, &d)
			got[name] = verdict{Status: v.Status, Missing: d.Missing, Passed: Passed(vs, false)}
			wanted[name] = want(name, clinic.Expects[name].Failed())
			details[name] = v.IssueDetails
		}
		if diff := cmp.Diff(wanted, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", label, diff)
		}
		return details
	}
	quarantine := func(status model.ValidationStatus, passed bool) func(string, int) verdict {
		return func(_ string, q int) verdict {
			if q == 0 {
				return verdict{Status: model.ValidationPassed, Passed: true}
			}
			return verdict{Status: status, Missing: q, Passed: passed}
		}
	}
	if total == 0 {
		t.Fatal("the clinic quarantined nothing")
	}
	judge("no error budget", quarantine(model.ValidationFailed, false))
	e.spec.ErrorBudget = &spec.ErrorBudget{MaxRows: int64(total - 1)}
	judge(fmt.Sprintf("error budget of %d rows", total-1), quarantine(model.ValidationFailed, false))
	e.spec.ErrorBudget = &spec.ErrorBudget{MaxRows: int64(total)}
	judge(fmt.Sprintf("error budget of %d rows", total), quarantine(model.ValidationWarning, true))

	e.spec.ErrorBudget = nil
	acc, err := e.AcceptErrors(ctx, uuid.New(), "ops-lead", "bad legacy rows, re-entered by hand")
	if err != nil {
		t.Fatal(err)
	}
	if acc.QuarantinedRows != int64(total) {
		t.Errorf("acceptance covers %d rows, want %d", acc.QuarantinedRows, total)
	}
	d := judge("accepted", quarantine(model.ValidationWarning, true))
	var named struct {
		By     string `json:"accepted_by"`
		Reason string `json:"accepted_reason"`
	}
	_ = json.Unmarshal(d["offices"], &named)
	if named.By != "ops-lead" {
		t.Errorf("named.By = %v, want \"ops-lead\"; the check does not name the acceptance: %s",
			named.By, d["offices"])
	} else if named.Reason != "bad legacy rows, re-entered by hand" {
		t.Errorf("named.Reason = %v, want \"bad legacy rows, re-entered by hand\"; the check does not name the acceptance: %s",
			named.Reason, d["offices"])
	}

	// One more row quarantined after the acceptance: it no longer covers the quarantine.
	key := "999999"
	if _, err := e.ledger.RecordError(ctx, store.MigrationError{MigrationID: e.opt.MigrationID,
		EntityStatusID: ptr(e.EntityStatusID("offices")), ErrorType: model.ErrDataValidation, ErrorCode: "test",
		ErrorMessage: "planted after the acceptance", SourceRecordID: &key}); err != nil {
		t.Fatal(err)
	}
	judge("quarantined after the acceptance", func(name string, q int) verdict {
		if name == "offices" {
			q++
		}
		return quarantine(model.ValidationFailed, false)(name, q)
	})
}

func completeness(t *testing.T, vs []store.ValidationResult) store.ValidationResult {
	t.Helper()
	for _, v := range vs {
		if v.ValidationType == model.ValidationCompleteness {
			return v // the count check comes first
		}
	}
	t.Fatal("no completeness check")
	return store.ValidationResult{}
}

func ptr[T any](v T) *T { return &v }
