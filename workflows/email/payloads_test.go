package email_test

import (
	"reflect"
	"testing"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/internal/testing/contracts"
)

// TestMailActivityPayloadsAreContracts: the input and result types of the engine's activities
// and of every bookkeeping activity (the job's registration, pages, state writes, marks) are
// contracts — JSON-named fields, no ledger rows of activities/store.
func TestMailActivityPayloadsAreContracts(t *testing.T) {
	engine := map[string]bool{"PreflightMailbox": true, "SyncMailbox": true, "VerifyMailbox": true}
	problems, n := contracts.Problems(reflect.TypeFor[*mail.Activities](), func(m string) bool { return engine[m] })
	if n != len(engine) {
		t.Errorf("walked %d of the engine's %d activities", n, len(engine))
	}
	for _, p := range problems {
		t.Error(p)
	}
	problems, _ = contracts.Problems(reflect.TypeFor[*emailjob.Activities](), func(string) bool { return true })
	for _, p := range problems {
		t.Error(p)
	}
}
