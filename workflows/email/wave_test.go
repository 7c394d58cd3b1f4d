package email

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// A wave runs each mailbox's pass as its own activity, the mailbox's address as the activity's
// id, with no MailboxSyncWorkflow between them; every mailbox is passed once and counted.
func TestWaveRunsEachMailboxAsItsOwnActivity(t *testing.T) {
	spec := testSpec(3).WithDefaults()
	h := newHarness(t, syncDelays{})
	for i, m := range spec.Mailboxes {
		h.mailboxes = append(h.mailboxes, emailjob.MailboxSpec(spec, testJob, int64(10+i), m))
	}
	task := emailapi.Task{Kind: emailapi.TaskSync, Mode: model.ModeCopy, RunType: model.RunInitial, Phase: model.PhaseInitialSync}
	h.env.ExecuteWorkflow(emailapi.WaveWorkflowName, WaveInput{Spec: spec, Task: task, Concurrency: 2})
	var res WaveResult
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatalf("wave: %v", err)
	}
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	type ran struct{ Email, Workflow, ActivityID string }
	var got, want []ran
	for _, c := range h.syncCalls() {
		got = append(got, ran{c.Req.Spec.Email, c.Workflow, c.ActivityID})
	}
	for _, m := range h.mailboxes {
		want = append(want, ran{m.Email, emailapi.WaveWorkflowName, m.Email})
	}
	// Concurrent activities report in any order: compare them as a set.
	byEmail := cmpopts.SortSlices(func(a, b ran) bool { return a.Email < b.Email })
	if d := cmp.Diff(want, got, byEmail); d != "" {
		t.Errorf("engine passes (-want +got):\n%s", d)
	}
	if res.Mailboxes != 3 {
		t.Errorf("res.Mailboxes = %d, want 3 (failures %v)", res.Mailboxes, res.Failures)
	}
	if res.OK != 3 {
		t.Errorf("res.OK = %d, want 3 (failures %v)", res.OK, res.Failures)
	}
}
