package email

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// timerSummaries records the summary of every timer the workflows start: what the Temporal
// UI shows of a pending timer.
type timerSummaries struct {
	interceptor.WorkerInterceptorBase
	h *harness
}

func (ts *timerSummaries) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &timerInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, h: ts.h}
}

type timerInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	h *harness
}

func (ti *timerInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return ti.Next.Init(&timerOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, h: ti.h})
}

type timerOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	h *harness
}

func (to *timerOutbound) NewTimerWithOptions(ctx workflow.Context, d time.Duration, o workflow.TimerOptions) workflow.Future {
	to.h.mu.Lock()
	to.h.timers = append(to.h.timers, o.Summary)
	to.h.mu.Unlock()
	return to.Next.NewTimerWithOptions(ctx, d, o)
}

// metadata is what the Temporal UI reads of the job: its current details and its handlers.
func (h *harness) metadata() *sdkpb.WorkflowMetadata {
	h.t.Helper()
	v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
	if err != nil {
		h.t.Fatalf("query metadata: %v", err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		h.t.Fatal(err)
	}
	return &md
}

// TestFailedJobSaysSoInTheUI: a job failed in preflight keeps its workflow open for the retry
// command, so the Temporal UI lists it Running; its current details and the summary of the
// timer it waits on must say it failed, why, and the command to send. After the retry the
// details no longer say failed.
func TestFailedJobSaysSoInTheUI(t *testing.T) {
	h := newHarness(t, syncDelays{})
	h.preflightErr["u1@example.com"] = permanent(emailapi.ErrTypeAuthFailed, "LOGIN refused for u1@example.com")
	var failed, retried string
	var st emailapi.Status
	h.at(30*time.Minute, func() {
		failed = h.metadata().GetCurrentDetails()
		st = h.status()
		h.mu.Lock()
		delete(h.preflightErr, "u1@example.com")
		h.mu.Unlock()
		h.signal(emailapi.Retry, "ops")
	})
	h.at(time.Hour, func() { retried = h.metadata().GetCurrentDetails() })
	h.at(2*time.Hour, func() { h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(3), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	if st.State != "failed" {
		t.Errorf("MigrationStatus = %q, want failed", st.State)
	}
	cause := "preflight: 1 of 3 mailboxes failed: u1@example.com: AuthFailed: LOGIN refused for u1@example.com"
	for _, want := range []string{
		"❌ **failed** in **preflight**: " + cause,
		"➡ next: fix the cause, then `cutover email retry 42`",
		"⏳ waiting for a retry",
	} {
		if !strings.Contains(failed, want) {
			t.Errorf("failed job's details lack %q:\n%s", want, failed)
		}
	}
	if strings.HasPrefix(failed, "**preflight**") || strings.Contains(failed, "· running") {
		t.Errorf("failed job's details read as running:\n%s", failed)
	}
	h.mu.Lock()
	timers := slices.Clone(h.timers)
	h.mu.Unlock()
	want := "failed in preflight: " + cause + ", next: cutover email retry 42"
	if !slices.Contains(timers, want) {
		t.Errorf("no timer summary %q among %q", want, timers)
	}
	if strings.Contains(retried, "failed") || !strings.HasPrefix(retried, "**delta_sync**") {
		t.Errorf("details after the retry:\n%s", retried)
	}
}

func TestFailedSummaryFitsTheLimit(t *testing.T) {
	long := strings.Repeat("é", 400)
	got := failedSummary(7, string(model.PhaseInitialSync), long)
	if len(got) > maxTimerSummary {
		t.Errorf("summary of %d bytes, limit %d", len(got), maxTimerSummary)
	}
	if !strings.HasSuffix(got, "…, next: cutover email retry 7") || !strings.HasPrefix(got, "failed in initial_sync: éé") {
		t.Errorf("summary %q", got)
	}
	if got := failedSummary(7, "preflight", "a\n  b"); got != "failed in preflight: a b, next: cutover email retry 7" {
		t.Errorf("summary %q", got)
	}
}

// TestHandlerDescriptions: every signal, update and query the Temporal UI offers on a job
// carries its description (the UI's dialogs show it), from emailapi.Descriptions.
func TestHandlerDescriptions(t *testing.T) {
	h := newHarness(t, syncDelays{})
	var md *sdkpb.WorkflowMetadata
	h.at(30*time.Minute, func() {
		md = h.metadata()
		h.signal(emailapi.Abort, "ops")
	})
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(1), nil)
	if md == nil {
		t.Fatal("no metadata")
	}
	got := map[string]string{}
	for _, kind := range [][]*sdkpb.WorkflowInteractionDefinition{md.GetDefinition().GetSignalDefinitions(),
		md.GetDefinition().GetUpdateDefinitions(), md.GetDefinition().GetQueryDefinitions()} {
		for _, d := range kind {
			got[d.GetName()] = d.GetDescription()
		}
	}
	want := map[string]string{}
	for _, name := range append(slices.Clone(emailapi.Commands), emailapi.QueryStatus, emailapi.MailboxAttemptFailed,
		emailapi.MailboxReportsSignal) {
		want[name] = emailapi.Descriptions[name]
		if want[name] == "" {
			t.Errorf("%s has no description", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && !strings.HasPrefix(name, "__") {
			want[name] = got[name] // checked below: not empty
			if got[name] == "" {
				t.Errorf("handler %s has no description", name)
			}
		}
	}
	for name := range got {
		if strings.HasPrefix(name, "__") {
			delete(got, name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("handler descriptions (-want +got):\n%s", diff)
	}
}

// TestChildRetriesShowOnTheJobPage: a mailbox activity that Temporal retries (reported by the
// worker in its gathered reports) shows on the job's page, in its current details, with the
// mailbox, the attempt and the error, until the pass ends.
func TestChildRetriesShowOnTheJobPage(t *testing.T) {
	h := newHarness(t, syncDelays{initial: 2 * time.Hour})
	var during, after string
	h.at(time.Hour, func() {
		h.env.SignalWorkflow(emailapi.MailboxReportsSignal, emailapi.MailboxReports{Attempts: []emailapi.AttemptFailed{{
			Email: "u1@example.com", Type: emailapi.ErrTypeConnect, Attempt: 3,
			Message: "source: dial tcp 127.0.0.1:1: connection refused"}}})
	})
	h.at(90*time.Minute, func() { during = h.metadata().GetCurrentDetails() })
	h.at(4*time.Hour, func() { after = h.metadata().GetCurrentDetails(); h.signal(emailapi.Abort, "ops") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, testSpec(2), nil)
	if _, err := h.result(); appType(err) != "Aborted" {
		t.Fatalf("result: %v", err)
	}
	want := "⚠ retrying `u1@example.com` (attempt 3): Connect: source: dial tcp 127.0.0.1:1: connection refused"
	if !strings.Contains(during, want) {
		t.Errorf("details while the initial sync retries lack %q:\n%s", want, during)
	}
	if strings.Contains(after, "retrying") {
		t.Errorf("details after the pass still show the retry:\n%s", after)
	}
}
