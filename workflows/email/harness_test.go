package email

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

const (
	testRef  = "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"
	testRef2 = "5c1f2e3d-9a8b-4c7d-8e6f-123456789abc"
	testJob  = 42
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func testSpec(n int) jobspec.Spec {
	s := jobspec.Spec{JobID: testJob, TenantID: 7, Domain: "example.com",
		Source:      jobspec.Endpoint{Host: "old.example:143", Security: "plain"},
		Destination: jobspec.Endpoint{Host: "new.example:143", Security: "plain", AuthUser: "master", CredentialsRef: testRef2},
		Schedule: jobspec.Schedule{PresyncInterval: jobspec.Duration(6 * time.Hour), Soak: jobspec.Duration(3 * time.Hour),
			FinalSyncDelay: jobspec.Duration(5 * time.Minute)},
	}
	for i := range n {
		s.Mailboxes = append(s.Mailboxes, jobspec.Mailbox{Email: fmt.Sprintf("u%d@example.com", i), CredentialsRef: testRef})
	}
	return s
}

type syncCall struct {
	Req emailapi.PassRequest
	At  time.Time
	// Where the pass ran: the workflow type that scheduled it and its activity id.
	Workflow, ActivityID string
}

// harness is a testsuite environment with every activity mocked by an in-memory fake that
// records what the workflows asked.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu        sync.Mutex
	mailboxes []emailapi.MailboxSpec
	existing  *emailapi.Registration // returned by RegisterEmailJob when set
	skipped   map[string]bool        // mailboxes skipped through RecordEmailJob, left out of loads
	records   []emailapi.JobRecord
	marks     []emailapi.MailboxMark
	syncs     []syncCall
	preflight map[string]int // attempts per email
	verifies  int
	updateSeq int
	queues    map[string]map[string]bool // task queues each activity type was scheduled on
	heartbeat map[string]time.Duration   // the heartbeat timeout each activity type was last scheduled with
	timers    []string                   // the summaries of the timers the workflows started

	// Behaviour, changeable by callbacks; all under mu.
	preflightErr    map[string]error
	preflightReport func(spec emailapi.MailboxSpec) (emailapi.PreflightReport, error)
	registerErr     error
	syncStats       func(req emailapi.PassRequest) (emailapi.PassStats, error)
	verifyReport    func(spec emailapi.MailboxSpec) (emailapi.VerifyReport, error)
}

type syncDelays struct{ initial, delta, final time.Duration }

func newHarness(t *testing.T, delays syncDelays) *harness {
	h := &harness{t: t, preflight: map[string]int{}, preflightErr: map[string]error{}, queues: map[string]map[string]bool{},
		heartbeat: map[string]time.Duration{}}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.SetTestTimeout(60 * time.Second)
	// A loaded machine (CI runs packages in parallel on two cores) can hold a workflow task past
	// the SDK's 1 s deadlock detection without any deadlock in the code.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: time.Minute,
		Interceptors: []interceptor.WorkerInterceptor{&timerSummaries{h: h}}})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: emailapi.WorkflowID(testJob)})
	RegisterWorkflows(env)
	env.RegisterActivity(&mail.Activities{})
	emailjob.RegisterActivities(env, &emailjob.Activities{})
	h.env = env
	// Passes are recorded when they start (a mock with a delay runs its function at the end).
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		h.mu.Lock()
		if h.queues[info.ActivityType.Name] == nil {
			h.queues[info.ActivityType.Name] = map[string]bool{}
		}
		h.queues[info.ActivityType.Name][info.TaskQueue] = true
		h.heartbeat[info.ActivityType.Name] = info.HeartbeatTimeout
		h.mu.Unlock()
		if info.ActivityType.Name != "SyncMailbox" {
			return
		}
		var req emailapi.PassRequest
		if err := args.Get(&req); err != nil {
			t.Errorf("decode SyncMailbox input: %v", err)
		}
		h.mu.Lock()
		h.syncs = append(h.syncs, syncCall{Req: req, At: env.Now(), Workflow: info.WorkflowType.Name, ActivityID: info.ActivityID})
		h.mu.Unlock()
	})

	env.OnActivity(jobActs.RegisterEmailJob, mock.Anything, mock.Anything).Return(h.register)
	env.OnActivity(jobActs.LoadEmailMailboxes, mock.Anything, mock.Anything).Return(h.load)
	env.OnActivity(jobActs.RecordEmailJob, mock.Anything, mock.Anything).Return(h.record)
	env.OnActivity(jobActs.MarkEmailMailbox, mock.Anything, mock.Anything).Return(h.mark)
	env.OnActivity(mailActs.PreflightMailbox, mock.Anything, mock.Anything).Return(h.preflightFn)
	env.OnActivity(mailActs.VerifyMailbox, mock.Anything, mock.Anything).Return(h.verify)
	// One mock per run type so each can take its own (simulated) time.
	for rt, d := range map[model.RunType]time.Duration{model.RunInitial: delays.initial, model.RunDelta: delays.delta, model.RunFinal: delays.final} {
		c := env.OnActivity(mailActs.SyncMailbox, mock.Anything, mock.MatchedBy(func(r emailapi.PassRequest) bool { return r.RunType == rt })).Return(h.sync)
		if d > 0 {
			c.After(d)
		}
	}
	return h
}

func (h *harness) register(_ context.Context, spec jobspec.Spec) (emailapi.Registration, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.registerErr != nil {
		return emailapi.Registration{}, h.registerErr
	}
	spec = spec.WithDefaults()
	if len(h.mailboxes) == 0 {
		for i, m := range spec.Mailboxes {
			h.mailboxes = append(h.mailboxes, emailjob.MailboxSpec(spec, spec.JobID, int64(10+i), m))
		}
	}
	if h.existing != nil {
		r := *h.existing
		r.Mailboxes = len(h.mailboxes)
		return r, nil
	}
	return emailapi.Registration{JobID: spec.JobID, Mailboxes: len(h.mailboxes), Created: true}, nil
}

func (h *harness) load(_ context.Context, req emailapi.LoadRequest) ([]emailapi.MailboxSpec, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []emailapi.MailboxSpec
	for _, m := range h.mailboxes {
		if m.MailboxID > req.AfterID && len(out) < req.Limit && !h.skipped[m.Email] {
			out = append(out, m)
		}
	}
	return out, nil
}

func (h *harness) record(_ context.Context, m emailapi.JobRecord) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, m)
	// As PostgreSQL would: skipped mailboxes leave the loads, new references reach the specs.
	for _, op := range m.Mailboxes {
		switch op.Op {
		case emailapi.OpSkip, emailapi.OpUnskip:
			if h.skipped == nil {
				h.skipped = map[string]bool{}
			}
			h.skipped[op.Email] = op.Op == emailapi.OpSkip
		case emailapi.OpCredentials:
			for i := range h.mailboxes {
				if h.mailboxes[i].Email != op.Email {
					continue
				}
				if op.Side == "source" {
					h.mailboxes[i].Source.CredentialsRef = op.Ref
				} else {
					h.mailboxes[i].Dest.CredentialsRef = op.Ref
				}
			}
		}
	}
	return nil
}

func (h *harness) mark(_ context.Context, m emailapi.MailboxMark) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.marks = append(h.marks, m)
	return nil
}

// folders is a clean mailbox: INBOX 10 and Sent 5 messages, all on the destination.
func folders() []emailapi.FolderStats {
	return []emailapi.FolderStats{
		{Source: "INBOX", Dest: "INBOX", SpecialUse: `\Inbox`, SourceMessages: 10, DestMessages: 10, SourceBytes: 10000, DestBytes: 10000},
		{Source: "Sent", Dest: "Sent", SpecialUse: `\Sent`, SourceMessages: 5, DestMessages: 5, SourceBytes: 5000, DestBytes: 5000},
	}
}

func (h *harness) preflightFn(_ context.Context, spec emailapi.MailboxSpec) (emailapi.PreflightReport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.preflight[spec.Email]++
	if err := h.preflightErr[spec.Email]; err != nil {
		return emailapi.PreflightReport{}, err
	}
	if h.preflightReport != nil {
		return h.preflightReport(spec)
	}
	fs := folders()
	for i := range fs {
		fs[i].DestMessages, fs[i].DestBytes = 0, 0
	}
	return emailapi.PreflightReport{Folders: fs}, nil
}

func (h *harness) sync(_ context.Context, req emailapi.PassRequest) (emailapi.PassStats, error) {
	h.mu.Lock()
	fn := h.syncStats
	h.mu.Unlock()
	if fn != nil {
		return fn(req)
	}
	return emailapi.PassStats{Mode: req.Mode, Folders: folders(), Found: 15}, nil
}

func (h *harness) verify(_ context.Context, spec emailapi.MailboxSpec) (emailapi.VerifyReport, error) {
	h.mu.Lock()
	h.verifies++
	fn := h.verifyReport
	h.mu.Unlock()
	if fn != nil {
		return fn(spec)
	}
	return emailapi.VerifyReport{OK: true, Folders: []emailapi.FolderDiff{{Source: "INBOX", Dest: "INBOX", SourceMessages: 10, DestMessages: 10}}}, nil
}

// testLogger sends warnings and errors to the test log (set EMAIL_TEST_DEBUG=1 for everything).
func testLogger(t *testing.T) log.Logger {
	level := slog.LevelWarn
	if os.Getenv("EMAIL_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level})))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// at schedules fn at d after the start (simulated time).
func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *harness) signal(name, by string) {
	h.env.SignalWorkflow(name, emailapi.Request{By: by})
}

type updateOutcome struct {
	Name     string
	Rejected error // by the validator
	Err      error // by the handler
	Ack      emailapi.Ack
	Done     bool
	At       time.Time // workflow time of the answer
}

// update sends an update; its outcome is collected in the returned record (filled as the
// workflow runs, so read it after ExecuteWorkflow).
func (h *harness) update(name string, r emailapi.Request) *updateOutcome {
	o := &updateOutcome{Name: name}
	h.updateSeq++
	h.env.UpdateWorkflow(name, fmt.Sprintf("%s-%d", name, h.updateSeq), &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { o.Rejected, o.Done, o.At = err, true, h.env.Now() },
		OnComplete: func(v any, err error) {
			o.Err, o.Done, o.At = err, true, h.env.Now()
			if a, ok := v.(emailapi.Ack); ok {
				o.Ack = a
			}
		},
	}, r)
	return o
}

func (h *harness) status() emailapi.Status {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(emailapi.QueryStatus)
	if err != nil {
		h.t.Fatalf("query status: %v", err)
	}
	var s emailapi.Status
	if err := v.Get(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// recordedPhases lists the phases written to PostgreSQL, consecutive repeats folded.
func (h *harness) recordedPhases() []model.Phase {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []model.Phase
	for _, m := range h.records {
		if len(out) == 0 || out[len(out)-1] != m.State.Phase {
			out = append(out, m.State.Phase)
		}
	}
	return out
}

func (h *harness) lastRecord() emailapi.JobRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.records) == 0 {
		h.t.Fatal("nothing recorded")
	}
	return h.records[len(h.records)-1]
}

func (h *harness) syncCalls() []syncCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]syncCall(nil), h.syncs...)
}

func (h *harness) notes() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var all []string
	for _, m := range h.records {
		all = append(all, m.Notes...)
	}
	return strings.Join(all, "\n")
}

func (h *harness) result() (emailapi.Status, error) {
	h.t.Helper()
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	var s emailapi.Status
	err := h.env.GetWorkflowError()
	if err == nil {
		if gerr := h.env.GetWorkflowResult(&s); gerr != nil {
			h.t.Fatal(gerr)
		}
	}
	return s, err
}

// The activities the workflows call, for mocking them by typed reference (method values: the
// SDK takes the activity type name from the method's name).
var (
	jobActs  *emailjob.Activities
	mailActs *mail.Activities
)

// requireHeartbeatTimeout fails the test unless activity type typ ran with heartbeat timeout
// want: a worker killed inside it holds the job that long, not its start-to-close timeout.
func (h *harness) requireHeartbeatTimeout(typ string, want time.Duration) {
	h.t.Helper()
	h.mu.Lock()
	got, ran := h.heartbeat[typ]
	h.mu.Unlock()
	if !ran {
		h.t.Errorf("%s never ran", typ)
		return
	}
	if got != want {
		h.t.Errorf("%s ran with heartbeat timeout %v, want %v", typ, got, want)
	}
}
