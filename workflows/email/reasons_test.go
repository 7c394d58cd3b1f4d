package email

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestCommandReasonsInNotes: the reason an operator gives a command (`--reason`, the request's
// note; a skip's own reason) ends the line the command leaves in the job's notes, which go to
// migration_jobs.notes.
func TestCommandReasonsInNotes(t *testing.T) {
	h := newHarness(t, syncDelays{})
	h.preflightErr["u1@example.com"] = permanent(emailapi.ErrTypeAuthFailed, "LOGIN refused for u1@example.com")
	at := t0.Add(48 * time.Hour)
	type step struct {
		at   time.Duration
		name string
		req  emailapi.Request
	}
	steps := []step{
		{30 * time.Minute, emailapi.Retry, emailapi.Request{By: "ops", Note: "password fixed in the vault"}},
		{time.Hour, emailapi.SetCredentials, emailapi.Request{By: "ops", Mailbox: "u0@example.com", Side: "dest",
			CredentialsRef: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", Note: "destination password rotated"}},
		{time.Hour, emailapi.Skip, emailapi.Request{By: "ops", Mailbox: "u1@example.com", Reason: "left the company"}},
		{time.Hour, emailapi.Unskip, emailapi.Request{By: "ops", Mailbox: "u1@example.com", Note: "she is back"}},
		{time.Hour, emailapi.SetCutoverTime, emailapi.Request{By: "ops", At: &at, Note: "agreed with the customer"}},
		{time.Hour, emailapi.SetCutoverTime, emailapi.Request{By: "ops", Note: "customer postponed"}},
		{3 * time.Hour, emailapi.PresyncNow, emailapi.Request{By: "ops", Note: "new mail before the weekend"}},
		{5 * time.Hour, emailapi.Abort, emailapi.Request{By: "ops", Note: "wrong domain"}},
	}
	outcomes := make([]*updateOutcome, len(steps))
	for i, s := range steps {
		i, s := i, s
		h.at(s.at+time.Duration(i)*time.Second, func() {
			if s.name == emailapi.Retry {
				h.mu.Lock()
				delete(h.preflightErr, "u1@example.com") // the operator fixed the credentials
				h.mu.Unlock()
			}
			outcomes[i] = h.update(s.name, s.req)
		})
	}
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(3), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	for i, o := range outcomes {
		if o == nil {
			t.Errorf("o is nil; %s: %+v", steps[i].name, o)
		} else if o.Rejected != nil {
			t.Errorf("o.Rejected = %v, want nil; %s: %+v", o.Rejected, steps[i].name, o)
		} else if o.Err != nil {
			t.Errorf("o.Err = %v, want nil; %s: %+v", o.Err, steps[i].name, o)
		}
	}
	notes := h.notes()
	for _, want := range []string{
		"retry from preflight requested by ops: password fixed in the vault",
		"new dest credentials for u0@example.com set by ops (ref 3f2504e0-4f89-11d3-9a0c-0305e82c3301): destination password rotated;",
		"skipped u1@example.com by ops: left the company",
		"un-skipped u1@example.com by ops: she is back;",
		"cutover time set to " + at.UTC().Format(time.RFC3339) + " by ops: agreed with the customer",
		"cutover time cleared by ops: customer postponed",
		"presync requested by ops: new mail before the weekend",
		"abort requested by ops: wrong domain",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("the notes lack %q:\n%s", want, notes)
		}
	}
	if last := h.lastRecord().State; last.Phase != model.PhaseFailed {
		t.Errorf("last phase %s", last.Phase)
	}
}
