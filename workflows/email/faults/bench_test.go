package faults_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// perfFake stands in for activities/mail and activities/emailjob: instant answers.
type perfFake struct {
	n     int
	calls atomic.Int64
}

func (f *perfFake) RegisterEmailJob(_ context.Context, spec jobspec.Spec) (emailapi.Registration, error) {
	return emailapi.Registration{JobID: spec.JobID, Mailboxes: f.n, Created: true}, nil
}
func (f *perfFake) LoadEmailMailboxes(_ context.Context, req emailapi.LoadRequest) ([]emailapi.MailboxSpec, error) {
	var out []emailapi.MailboxSpec
	for i := int(req.AfterID) + 1; i <= f.n && len(out) < req.Limit; i++ {
		out = append(out, emailapi.MailboxSpec{JobID: req.Spec.JobID, MailboxID: int64(i), Email: fmt.Sprintf("u%05d@x.example", i), SourceType: model.SourceIMAP})
	}
	return out, nil
}
func (f *perfFake) RecordEmailJob(context.Context, emailapi.JobRecord) error     { return nil }
func (f *perfFake) MarkEmailMailbox(context.Context, emailapi.MailboxMark) error { return nil }
func (f *perfFake) PreflightMailbox(context.Context, emailapi.MailboxSpec) (emailapi.PreflightReport, error) {
	f.calls.Add(1)
	return emailapi.PreflightReport{Folders: []emailapi.FolderStats{{Source: "INBOX", SpecialUse: `\Inbox`, SourceMessages: 1}, {Source: "Sent", SpecialUse: `\Sent`}}}, nil
}
func (f *perfFake) SyncMailbox(_ context.Context, req emailapi.PassRequest) (emailapi.PassStats, error) {
	f.calls.Add(1)
	return emailapi.PassStats{Mode: req.Mode, Folders: []emailapi.FolderStats{{Source: "INBOX", SpecialUse: `\Inbox`, SourceMessages: 1, DestMessages: 1}, {Source: "Sent", SpecialUse: `\Sent`}}}, nil
}
func (f *perfFake) VerifyMailbox(context.Context, emailapi.MailboxSpec) (emailapi.VerifyReport, error) {
	return emailapi.VerifyReport{OK: true}, nil
}

// BenchmarkMailboxWave measures what a mailbox child workflow costs the dev server and the
// workflows alone (the activities are in-memory fakes): one job's preflight and initial sync
// over 200 mailboxes, 50 at a time, on the shared dev server; reported per child workflow.
//
//	go test -run '^$' -bench MailboxWave -benchtime 3x ./workflows/email/faults/
func BenchmarkMailboxWave(b *testing.B) {
	const n, conc = 200, 50
	srv := testenv.SharedTemporal(b)
	c := srv.Client(b)
	f := &perfFake{n: n}
	queue := fmt.Sprintf("emailwave-bench-%d", time.Now().UnixNano())
	stop := testenv.StartPoolWorkers(b, c, queue, worker.Options{MaxConcurrentWorkflowTaskPollers: 8, // as workerapp
		MaxConcurrentActivityTaskPollers: 8}, func(w worker.Registry) {
		email.RegisterWorkflows(w)
		w.RegisterActivity(f)
		w.RegisterActivityWithOptions(f.RecordEmailJob, activity.RegisterOptions{Name: emailapi.RecordJobActivity})
	})
	defer stop()
	var total time.Duration
	jobID := 860_000_000 + time.Now().Unix()%1_000_000*100
	for b.Loop() {
		jobID++
		spec := jobspec.Spec{JobID: jobID, TenantID: 3, Domain: "x.example", MailboxCount: n,
			Source:      jobspec.Endpoint{Host: "old.example", Security: "plain", AuthUser: "a", CredentialsRef: "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"},
			Destination: jobspec.Endpoint{Host: "new.example", Security: "plain", AuthUser: "a", CredentialsRef: "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"},
			Concurrency: jobspec.Concurrency{Mailboxes: conc}}
		start := time.Now()
		id := emailapi.WorkflowID(jobID)
		if _, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: queue}, emailapi.WorkflowName, spec, &email.Resume{}); err != nil {
			b.Fatal(err)
		}
		awaitStatus(b, c, id, "initial sync", 10*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })
		total += time.Since(start)
		_ = c.TerminateWorkflow(context.Background(), id, "", "measured")
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(2*n*b.N), "ms/child")
}
