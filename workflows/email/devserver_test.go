package email_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var waitLimit = 40 * time.Second

const (
	ref1 = "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"
	ref2 = "5c1f2e3d-9a8b-4c7d-8e6f-123456789abc"
)

// fakeEngine stands in for activities/mail and activities/emailjob on a real dev server, under
// the same activity names: what is measured here is the workflows' histories, not IMAP.
type fakeEngine struct {
	mu        sync.Mutex
	mailboxes []emailapi.MailboxSpec
	recorded  []emailapi.JobRecord
	passes    map[model.RunType]int
}

func (f *fakeEngine) RegisterEmailJob(_ context.Context, spec jobspec.Spec) (emailapi.Registration, error) {
	return emailapi.Registration{JobID: spec.JobID, Mailboxes: len(f.mailboxes), Created: true}, nil
}

func (f *fakeEngine) LoadEmailMailboxes(_ context.Context, req emailapi.LoadRequest) ([]emailapi.MailboxSpec, error) {
	var out []emailapi.MailboxSpec
	for _, m := range f.mailboxes {
		if m.MailboxID > req.AfterID && len(out) < req.Limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *fakeEngine) RecordEmailJob(_ context.Context, m emailapi.JobRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, m)
	return nil
}

func (f *fakeEngine) MarkEmailMailbox(context.Context, emailapi.MailboxMark) error { return nil }

func cleanFolders() []emailapi.FolderStats {
	return []emailapi.FolderStats{
		{Source: "INBOX", Dest: "INBOX", SpecialUse: `\Inbox`, SourceMessages: 3, DestMessages: 3, SourceBytes: 3000, DestBytes: 3000},
		{Source: "Sent", Dest: "Sent", SpecialUse: `\Sent`, SourceMessages: 1, DestMessages: 1, SourceBytes: 1000, DestBytes: 1000},
	}
}

func (f *fakeEngine) PreflightMailbox(context.Context, emailapi.MailboxSpec) (emailapi.PreflightReport, error) {
	return emailapi.PreflightReport{Folders: cleanFolders()}, nil
}

func (f *fakeEngine) SyncMailbox(_ context.Context, req emailapi.PassRequest) (emailapi.PassStats, error) {
	if req.Mode == model.ModeMirror && req.Phase.AfterDNSCutover() {
		return emailapi.PassStats{}, temporal.NewNonRetryableApplicationError("mirror after cutover", emailapi.ErrTypeMirrorAfterCutover, nil)
	}
	f.mu.Lock()
	f.passes[req.RunType]++
	f.mu.Unlock()
	return emailapi.PassStats{Mode: req.Mode, Folders: cleanFolders()}, nil
}

func (f *fakeEngine) VerifyMailbox(context.Context, emailapi.MailboxSpec) (emailapi.VerifyReport, error) {
	return emailapi.VerifyReport{OK: true}, nil
}

func newFake(jobID int64, n int) *fakeEngine {
	f := &fakeEngine{passes: map[model.RunType]int{}}
	for i := range n {
		f.mailboxes = append(f.mailboxes, emailapi.MailboxSpec{JobID: jobID, MailboxID: int64(i + 1), Email: fmt.Sprintf("user%04d@example.com", i),
			SourceType: model.SourceIMAP})
	}
	return f
}

// startFakeWorker runs the email workflows with the fake activities on a fresh task queue.
func startFakeWorker(t *testing.T, c client.Client, f *fakeEngine) string {
	t.Helper()
	queue := fmt.Sprintf("email-fake-%d", time.Now().UnixNano())
	testenv.StartPoolWorkers(t, c, queue, worker.Options{MaxConcurrentWorkflowTaskPollers: 8, MaxConcurrentActivityTaskPollers: 8},
		func(w worker.Registry) {
			email.RegisterWorkflows(w)
			w.RegisterActivity(f)
			w.RegisterActivityWithOptions(f.RecordEmailJob, activity.RegisterOptions{Name: emailapi.RecordJobActivity})
		})
	return queue
}

func jobSpec(jobID int64, count int) jobspec.Spec {
	return jobspec.Spec{JobID: jobID, TenantID: 3, Domain: "example.com", MailboxCount: count,
		Source:      jobspec.Endpoint{Host: "old.example", Security: "plain", AuthUser: "admin", CredentialsRef: ref1},
		Destination: jobspec.Endpoint{Host: "new.example", Security: "plain", AuthUser: "admin", CredentialsRef: ref2},
		Schedule:    jobspec.Schedule{PresyncInterval: jobspec.Duration(time.Hour), FinalSyncDelay: jobspec.Duration(time.Second)},
	}
}

// waitStatus polls the status query until ok or the deadline.
func waitStatus(t *testing.T, c client.Client, id string, what string, ok func(emailapi.Status) bool) emailapi.Status {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	var last emailapi.Status
	var lastErr error
	for time.Now().Before(deadline) {
		v, err := c.QueryWorkflow(context.Background(), id, "", emailapi.QueryStatus)
		if err == nil {
			last = emailapi.Status{} // Get decodes into it: absent fields must not survive
			err = v.Get(&last)
		}
		if lastErr = err; err == nil && ok(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not reached in %s; last status: phase %s gate %s presyncs %d error %q; last pass %+v; current pass %+v; last query error %v",
		what, waitLimit, last.Phase, last.Gate, last.Presyncs, last.LastError, last.LastPass, last.CurrentPass, lastErr)
	return last
}

// history returns a run's events.
func history(t *testing.T, c client.Client, id, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s/%s: %v", id, runID, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// runsOf lists every run of a workflow id (continue-as-new makes several), oldest first.
func runsOf(t *testing.T, c client.Client, id string) []string {
	t.Helper()
	var runs []string
	var token []byte
	for {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = '%s'", id), NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Executions {
			runs = append(runs, e.GetExecution().GetRunId())
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	return runs
}

// TestHistoriesStayBoundedWithManyMailboxes runs the same job with 5 and with 50 mailboxes
// (fake engine) on the real dev server through preflight, initial sync and one presync, and
// reads back every history: the job's is the same size whatever the mailbox count, each wave
// run holds at most ContinueAfter mailboxes, each a few events of the wave's own (its activity),
// and no mailbox runs a workflow of its own. Without the waves the job's history would carry
// about 6 events per mailbox and pass. (The counts are kept small for this shared machine; the
// bounds do not depend on them.)
func TestHistoriesStayBoundedWithManyMailboxes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 165 workflows on a dev server")
	}
	const perRun = 10
	srv := testenv.SharedTemporal(t)
	c := srv.Client(t)
	small := measureJob(t, c, 611, 5, perRun)
	large := measureJob(t, c, 612, 50, perRun)
	for _, m := range []jobHistories{small, large} {
		t.Logf("%d mailboxes: job history %d events; %d wave runs, largest %d events; %d mailbox workflows",
			m.mailboxes, m.job, m.waveRuns, m.maxWave, m.mailboxWorkflows)
		if want := 3 * ((m.mailboxes + perRun - 1) / perRun); m.waveRuns != want {
			t.Errorf("%d mailboxes: %d wave runs, want %d", m.mailboxes, m.waveRuns, want)
		}
		// A mailbox's pass is three events of its wave (its activity scheduled, started,
		// completed) and at most one workflow task (three more) when its completion is not
		// handled in the same task as another's; beside them the page loads and the marker.
		if limit := 6*perRun + 60; m.maxWave > limit {
			t.Errorf("%d mailboxes: a wave run has %d events, over %d for %d mailboxes", m.mailboxes, m.maxWave, limit, perRun)
		}
		if m.mailboxWorkflows != 0 {
			t.Errorf("%d mailboxes: %d of 3 sampled mailboxes ran a workflow of their own, want none", m.mailboxes, m.mailboxWorkflows)
		}
	}
	// Ten times the mailboxes, no longer a job history (give or take how the server happened
	// to batch workflow tasks).
	if large.job > small.job+20 {
		t.Errorf("large.job: want <= small.job+20; job history: %d events with 5 mailboxes, %d with 50: it grows with the job",
			small.job, large.job)
	} else if large.job > 150 {
		t.Errorf("large.job: want <= 150; job history: %d events with 5 mailboxes, %d with 50: it grows with the job",
			small.job, large.job)
	}
}

type jobHistories struct {
	mailboxes, job, waveRuns, maxWave, mailboxWorkflows int
}

func measureJob(t *testing.T, c client.Client, jobID int64, n, perRun int) jobHistories {
	t.Helper()
	f := newFake(jobID, n)
	queue := startFakeWorker(t, c, f)
	spec := jobSpec(jobID, n)
	spec.Concurrency.Mailboxes = 10
	id := emailapi.WorkflowID(spec.JobID)
	ctx := context.Background()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, emailapi.WorkflowName, spec,
		&email.Resume{Tuning: email.Tuning{PageSize: perRun, ContinueAfter: perRun}})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, "delta_sync", func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })
	if err := c.SignalWorkflow(ctx, id, "", emailapi.PresyncNow, emailapi.Request{By: "test"}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, c, id, "presync", func(s emailapi.Status) bool { return s.Presyncs == 1 })
	if st.Gate != model.GateWarning {
		t.Fatalf("st.Gate: want model.GateWarning; after the presync: gate %s, last pass %+v, counts %v, %d listed",
			st.Gate, st.LastPass, st.MailboxCounts, len(st.MailboxDetails))
	}
	if st.LastPass.Mailboxes != int64(n) {
		t.Fatalf("st.LastPass.Mailboxes = %v, want %v (int64(n)); after the presync: gate %s, last pass %+v, counts %v, %d listed",
			st.LastPass.Mailboxes, int64(n), st.Gate, st.LastPass, st.MailboxCounts, len(st.MailboxDetails))
	}
	if st.MailboxCounts[model.MailboxOK] != int64(n) {
		t.Fatalf("st.MailboxCounts[model.MailboxOK] = %v, want %v (int64(n)); after the presync: gate %s, last pass %+v, counts %v, %d listed",
			st.MailboxCounts[model.MailboxOK], int64(n), st.Gate, st.LastPass, st.MailboxCounts, len(st.MailboxDetails))
	}
	if len(st.MailboxDetails) != n {
		t.Fatalf("len(st.MailboxDetails): want n; after the presync: gate %s, last pass %+v, counts %v, %d listed",
			st.Gate, st.LastPass, st.MailboxCounts, len(st.MailboxDetails))
	}
	if err := c.SignalWorkflow(ctx, id, "", emailapi.Abort, emailapi.Request{By: "test", Note: "done measuring"}); err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err == nil || !strings.Contains(err.Error(), "aborted by test") {
		t.Fatalf("job result: %v", err)
	}
	f.mu.Lock()
	if f.passes[model.RunInitial] != n {
		t.Errorf("f.passes[model.RunInitial] = %v, want %v (n); passes = %v, want %d initial and %d delta",
			f.passes[model.RunInitial], n, f.passes, n, n)
	} else if f.passes[model.RunDelta] != n {
		t.Errorf("f.passes[model.RunDelta] = %v, want %v (n); passes = %v, want %d initial and %d delta",
			f.passes[model.RunDelta], n, f.passes, n, n)
	}
	f.mu.Unlock()

	m := jobHistories{mailboxes: n, job: len(history(t, c, id, run.GetRunID()).Events)}
	for seq := 1; seq <= 3; seq++ { // preflight, initial, presync
		for _, r := range runsOf(t, c, emailapi.WaveWorkflowID(spec.JobID, seq)) {
			m.waveRuns++
			m.maxWave = max(m.maxWave, len(history(t, c, emailapi.WaveWorkflowID(spec.JobID, seq), r).Events))
		}
	}
	for _, i := range []int{0, n / 2, n - 1} {
		_, err := c.DescribeWorkflowExecution(ctx, emailapi.MailboxWorkflowID(spec.JobID, f.mailboxes[i].Email), "")
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			m.mailboxWorkflows++
		}
	}
	return m
}

var identityRE = regexp.MustCompile(`"identity": "[^"]*"`)

// record writes a run's history to testdata when EMAIL_RECORD_HISTORIES is set, for the
// replay test (a checked-in history proves later code still replays it).
func record(t *testing.T, c client.Client, name, id, runID string) {
	t.Helper()
	if os.Getenv("EMAIL_RECORD_HISTORIES") == "" {
		return
	}
	h := history(t, c, id, runID)
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: " "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	// Worker identities name the recording machine; replay does not read them.
	b = identityRE.ReplaceAll(b, []byte(`"identity": "recorded"`))
	// The file name carries the workflow id: the job workflow checks its id against the spec.
	path := filepath.Join("testdata", name+"__"+id+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events)", path, len(h.Events))
}

// TestCommandsOverARealServer drives a small job through every phase on the dev server with
// updates and signals as a client sends them: rejections travel back with their reason, the
// job continues as new once on the way, and the histories can be recorded for the replay test.
func TestCommandsOverARealServer(t *testing.T) {
	srv := testenv.SharedTemporal(t)
	c := srv.Client(t)
	f := newFake(602, 2)
	queue := startFakeWorker(t, c, f)
	spec := jobSpec(602, 2)
	spec.Schedule.Soak = jobspec.Duration(time.Hour)
	id := emailapi.WorkflowID(spec.JobID)
	ctx := context.Background()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, emailapi.WorkflowName, spec,
		&email.Resume{Tuning: email.Tuning{HistoryLimit: 60}})
	if err != nil {
		t.Fatal(err)
	}
	update := func(name string, r emailapi.Request) (emailapi.Ack, error) {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: []any{r},
			WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			return emailapi.Ack{}, err
		}
		var ack emailapi.Ack
		return ack, h.Get(ctx, &ack)
	}
	waitStatus(t, c, id, "delta_sync", func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })
	if _, err := update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}); err == nil ||
		!strings.Contains(err.Error(), "the gate is warning, not ready_for_dns") || !strings.Contains(err.Error(), "manual_approval warn") {
		t.Fatalf("DNS before approval: %v", err)
	}
	if _, err := update(emailapi.Close, emailapi.Request{By: "lead"}); err == nil || !strings.Contains(err.Error(), "close refused in phase delta_sync") {
		t.Fatalf("close in delta_sync: %v", err)
	}
	if _, err := update(emailapi.Approve, emailapi.Request{}); err == nil || !strings.Contains(err.Error(), `needs "by"`) {
		t.Fatalf("approve without by: %v", err)
	}
	ack, err := update(emailapi.Approve, emailapi.Request{By: "lead", Note: "ok"})
	if err != nil {
		t.Fatalf("err: want nil; approve: %+v %v", ack, err)
	}
	if ack.Gate != model.GateReadyForDNS {
		t.Fatalf("ack.Gate = %v, want model.GateReadyForDNS; approve: %+v %v", ack.Gate, ack, err)
	}
	if _, err := update(emailapi.PresyncNow, emailapi.Request{By: "ops"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, "presync", func(s emailapi.Status) bool { return s.Presyncs == 1 && s.CurrentPass == nil })
	now := time.Now()
	if _, err := update(emailapi.SetCutoverTime, emailapi.Request{By: "ops", At: &now}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, "cutover_ready", func(s emailapi.Status) bool { return s.Phase == model.PhaseCutoverReady })
	ack, err = update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"})
	if err != nil {
		t.Fatalf("err: want nil; DNS: %+v %v", ack, err)
	}
	if ack.Phase != model.PhaseDNSCutover {
		t.Fatalf("ack.Phase = %v, want model.PhaseDNSCutover; DNS: %+v %v", ack.Phase, ack, err)
	}
	if _, err := update(emailapi.PresyncNow, emailapi.Request{By: "ops"}); err == nil || !strings.Contains(err.Error(), "no presync after DNS cutover") {
		t.Fatalf("presync after DNS: %v", err)
	}
	st := waitStatus(t, c, id, "verified", func(s emailapi.Status) bool { return s.Phase == model.PhaseVerified })
	if err := c.SignalWorkflow(ctx, id, "", emailapi.Close, emailapi.Request{By: "lead", Note: "done"}); err != nil {
		t.Fatal(err)
	}
	// The job continued as new on the way: follow the chain to its end.
	final := c.GetWorkflow(ctx, id, "")
	var res emailapi.Status
	if err := final.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Phase != model.PhaseClosed {
		t.Errorf("res.Phase = %v, want model.PhaseClosed; result %+v (continued runs %d)",
			res.Phase, res, res.ContinuedRuns)
	} else if res.ClosedBy != "lead" {
		t.Errorf("res.ClosedBy = %v, want \"lead\"; result %+v (continued runs %d)",
			res.ClosedBy, res, res.ContinuedRuns)
	} else if res.ContinuedRuns < 1 {
		t.Errorf("res.ContinuedRuns: want >= 1; result %+v (continued runs %d)", res, res.ContinuedRuns)
	} else if st.ContinuedRuns < 1 {
		t.Errorf("st.ContinuedRuns = %v, want >= 1; result %+v (continued runs %d)",
			st.ContinuedRuns, res, res.ContinuedRuns)
	}
	if f.passes[model.RunFinal] != 2 {
		t.Errorf("f.passes[model.RunFinal] = %v, want 2; passes = %v", f.passes[model.RunFinal], f.passes)
	} else if f.passes[model.RunDelta] != 2 {
		t.Errorf("f.passes[model.RunDelta] = %v, want 2; passes = %v", f.passes[model.RunDelta], f.passes)
	}
	var wee *temporal.WorkflowExecutionError
	if err := run.Get(ctx, nil); err != nil && !errors.As(err, &wee) {
		t.Logf("first run: %v", err)
	}
	runs := runsOf(t, c, id)
	if len(runs) < 2 {
		t.Fatalf("runs of %s: %v", id, runs)
	}
	for i, r := range runs {
		record(t, c, fmt.Sprintf("job-run%d", len(runs)-i), id, r)
	}
	record(t, c, "wave-presync", emailapi.WaveWorkflowID(spec.JobID, 3), "")
}
