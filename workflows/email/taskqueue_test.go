package email

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/taskqueue"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestMailActivitiesRunOnTheMailQueue: a job's IMAP engine activities (preflight, sync, verify)
// are scheduled on the mail pool's queue, its bookkeeping on the workflows' own queue, so a
// worker started for the mail pool alone runs every pass and nothing else. (A wave reads its
// pages of mailboxes as local activities, in the workflows' own worker: no queue.)
func TestMailActivitiesRunOnTheMailQueue(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 7 * time.Minute, final: 10 * time.Minute})
	spec := testSpec(2)
	cutover := t0.Add(20 * time.Hour)
	spec.Schedule.CutoverAt = &cutover
	h.at(19*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	h.at(21*time.Hour, func() { h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
	if _, err := h.result(); err != nil {
		t.Fatal(err)
	}
	const base = "default-test-taskqueue" // the test environment's workflow queue
	mailQueue := taskqueue.Name(base, taskqueue.Mail)
	got := map[string][]string{}
	for typ, qs := range h.queues {
		for q := range qs {
			got[typ] = append(got[typ], q)
		}
		slices.Sort(got[typ])
	}
	want := map[string][]string{
		"PreflightMailbox": {mailQueue},
		"SyncMailbox":      {mailQueue},
		"VerifyMailbox":    {mailQueue},
		"RegisterEmailJob": {base},
		"MirrorEmailJob":   {base},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task queue per activity type (-want +got):\n%s", diff)
	}
}
