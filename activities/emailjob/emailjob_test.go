package emailjob_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

const (
	refA = "0b7f6a52-5d0c-4b0e-9a57-6f1b7f0f3c11"
	refB = "5c1f2e3d-9a8b-4c7d-8e6f-123456789abc"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenAndMigrate(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func spec(jobID int64, n int) jobspec.Spec {
	s := jobspec.Spec{JobID: jobID, TenantID: 7, TicketID: 99, Domain: "example.com",
		Source:      jobspec.Endpoint{Label: "old host", Host: "old.example:143", Security: "plain"},
		Destination: jobspec.Endpoint{Host: "new.example", AuthUser: "master", CredentialsRef: refB}}
	for i := range n {
		s.Mailboxes = append(s.Mailboxes, jobspec.Mailbox{Email: fmt.Sprintf("u%d@example.com", i), CredentialsRef: refA,
			FolderMap: map[string]string{"Sent Items": "Sent"}, Exclude: []string{"^Junk$"}})
	}
	return s.WithDefaults()
}

func appErrType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.NonRetryable() {
		return ae.Type()
	}
	return ""
}

func TestRegisterIsIdempotentAndKeepsProgress(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := &emailjob.Activities{DB: db}

	reg, err := a.RegisterEmailJob(ctx, spec(42, 3))
	if err != nil {
		t.Fatal(err)
	}
	if reg.JobID != 42 || reg.Mailboxes != 3 || !reg.Created || reg.Existing != nil {
		t.Fatalf("first registration = %+v", reg)
	}
	job, err := db.GetJob(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	if job.TenantID != 7 || *job.TicketID != 99 || job.Domain != "example.com" || job.Phase != model.PhaseDiscovered ||
		job.SourceServerLabel != "old host" || job.DestIMAPHost != "new.example:993" {
		t.Fatalf("job row = %+v", job)
	}
	mbs, err := db.ListMailboxes(ctx, 42)
	if err != nil || len(mbs) != 3 {
		t.Fatalf("mailboxes = %v, %v", mbs, err)
	}
	if m := mbs[0]; m.SourceHost != "old.example:143" || m.SourceUser != "u0@example.com" || m.CredentialsRef != refA ||
		m.FolderMap["Sent Items"] != "Sent" || m.Status != model.MailboxPending {
		t.Fatalf("mailbox row = %+v", m)
	}

	// Progress recorded by a pass survives a re-registration of the same spec.
	if err := db.SetMailboxProgress(ctx, mbs[0].ID, store.MailboxProgress{MessagesSource: 10, MessagesDest: 5, Status: model.MailboxSyncing}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MirrorJobState(ctx, store.JobState{ID: 42, Phase: model.PhaseDeltaSync, Gate: model.GateWarning}, "", ""); err != nil {
		t.Fatal(err)
	}
	reg, err = a.RegisterEmailJob(ctx, spec(42, 3))
	if err != nil {
		t.Fatal(err)
	}
	if reg.Created || reg.Mailboxes != 3 || reg.Existing == nil || reg.Existing.Phase != model.PhaseDeltaSync {
		t.Fatalf("re-registration = %+v", reg)
	}
	again, _ := db.ListMailboxes(ctx, 42)
	if again[0].ID != mbs[0].ID || again[0].MessagesDest != 5 || again[0].Status != model.MailboxSyncing {
		t.Fatalf("progress lost: %+v", again[0])
	}

	// The same id for another domain is a bad spec, not a retry.
	other := spec(42, 1)
	other.Domain = "other.example"
	other.Mailboxes[0].Email = "x@other.example"
	if _, err := a.RegisterEmailJob(ctx, other); appErrType(err) != emailjob.ErrTypeBadSpec || !strings.Contains(err.Error(), "another domain") {
		t.Fatalf("mismatched registration: %v", err)
	}
	bad := spec(43, 1)
	bad.Mailboxes[0].CredentialsRef = "hunter2"
	if _, err := a.RegisterEmailJob(ctx, bad); appErrType(err) != emailjob.ErrTypeBadSpec || !strings.Contains(err.Error(), "not a vault reference") {
		t.Fatalf("invalid spec: %v", err)
	}
	if _, err := a.RegisterEmailJob(ctx, spec(0, 1)); appErrType(err) != emailjob.ErrTypeBadSpec {
		t.Fatalf("spec without job id: %v", err)
	}
	// Registered ahead by the CLI: the spec carries only the count.
	pre := spec(42, 0)
	pre.MailboxCount = 3
	if reg, err := a.RegisterEmailJob(ctx, pre); err != nil || reg.Mailboxes != 3 {
		t.Fatalf("registration by count = %+v, %v", reg, err)
	}
	none := spec(44, 0)
	none.MailboxCount = 3
	if _, err := a.RegisterEmailJob(ctx, none); appErrType(err) != emailjob.ErrTypeBadSpec || !strings.Contains(err.Error(), "no mailboxes registered") {
		t.Fatalf("count without rows: %v", err)
	}
}

func TestLoadMailboxesPageByPage(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := &emailjob.Activities{DB: db}
	s := spec(5, 5)
	s.Mailboxes[4].DestCredentialsRef = refA
	s.Mailboxes[4].User = "legacy4"
	if _, err := emailjob.Register(ctx, db, s); err != nil {
		t.Fatal(err)
	}
	jobOnly := s
	jobOnly.Mailboxes = nil
	var emails []string
	var after int64
	pages := 0
	for {
		page, err := a.LoadEmailMailboxes(ctx, emailjob.LoadRequest{Spec: jobOnly, AfterID: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		for _, m := range page {
			if m.JobID != 5 || m.MailboxID <= after || m.Source.Addr != "old.example:143" || m.Source.Security != "plain" ||
				m.Dest.Addr != "new.example:993" || m.FolderMap["Sent Items"] != "Sent" || len(m.Exclude) != 1 {
				t.Fatalf("spec = %+v", m)
			}
			after = m.MailboxID
			emails = append(emails, m.Email)
			if m.Email == "u4@example.com" {
				if m.Source.User != "legacy4" || m.Dest.CredentialsRef != refA || m.Dest.AuthUser != "" {
					t.Fatalf("mailbox overrides lost: %+v", m)
				}
			} else if m.Dest.AuthUser != "master" || m.Dest.CredentialsRef != refB || m.Source.CredentialsRef != refA {
				t.Fatalf("job-wide credentials not applied: %+v", m)
			}
		}
	}
	if pages != 3 || strings.Join(emails, ",") != "u0@example.com,u1@example.com,u2@example.com,u3@example.com,u4@example.com" {
		t.Fatalf("%d pages: %v", pages, emails)
	}
	if _, err := a.LoadEmailMailboxes(ctx, emailjob.LoadRequest{Spec: jobOnly, Limit: 0}); appErrType(err) != emailjob.ErrTypeBadSpec {
		t.Fatalf("page size 0: %v", err)
	}
}

func TestMirrorWritesStateAndChecks(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := &emailjob.Activities{DB: db}
	if _, err := emailjob.Register(ctx, db, spec(9, 1)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	pred := 93.5
	checks := []gate.Check{{ID: model.CheckCountRatio, Status: model.CheckPass, Message: "1/1 mailboxes pass"},
		{ID: model.CheckManualApproval, Status: model.CheckPass, Message: "approved by lead"}}
	err := a.MirrorEmailJob(ctx, emailjob.Mirror{
		State: store.JobState{ID: 9, Phase: model.PhaseCutoverReady, Gate: model.GateReadyForDNS, ApprovedBy: "lead",
			ApprovedAt: &at, CutoverPlannedAt: &at, SyncPercent: 87.5, PredictedFinalSyncSeconds: &pred},
		Checks: checks, Notes: []string{"approved by lead: looks good"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.GetJobProgress(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	if p.Phase != model.PhaseCutoverReady || p.Gate != model.GateReadyForDNS || *p.ApprovedBy != "lead" || !p.ApprovedAt.Equal(at) ||
		!p.CutoverPlannedAt.Equal(at) || p.SyncPercent != 87.5 || *p.PredictedFinalSyncSeconds != 93.5 ||
		!strings.Contains(p.Notes, "looks good") || p.FailedPhase != "" {
		t.Fatalf("job = %+v", p)
	}
	latest, err := db.LatestGateChecks(ctx, 9)
	if err != nil || len(latest) != 2 {
		t.Fatalf("checks = %+v, %v", latest, err)
	}

	// ready_for_dns without an approval is refused by the schema: the workflow can never write it.
	err = a.MirrorEmailJob(ctx, emailjob.Mirror{State: store.JobState{ID: 9, Phase: model.PhaseCutoverReady, Gate: model.GateReadyForDNS}})
	if err == nil || !strings.Contains(err.Error(), "migration_jobs_ready_needs_approval") {
		t.Fatalf("unapproved ready_for_dns: %v", err)
	}
	// Failing clears the approval and records where to resume.
	err = a.MirrorEmailJob(ctx, emailjob.Mirror{State: store.JobState{ID: 9, Phase: model.PhaseFailed, Gate: model.GateBlocked,
		FailedPhase: model.PhaseFinalSync, LastError: "verify: 2 missing"}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ = db.GetJobProgress(ctx, 9)
	if p.Phase != model.PhaseFailed || p.FailedPhase != model.PhaseFinalSync || p.LastError != "verify: 2 missing" || p.ApprovedBy != nil || p.ApprovedAt != nil {
		t.Fatalf("failed job = %+v", p)
	}
	if err := a.MirrorEmailJob(ctx, emailjob.Mirror{State: store.JobState{ID: 404, Phase: model.PhaseFailed, Gate: model.GateBlocked}}); appErrType(err) != "JobNotFound" {
		t.Fatalf("unknown job: %v", err)
	}
}

func TestMirrorKeyMakesRetriesNoOps(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	if _, err := emailjob.Register(ctx, db, spec(3, 1)); err != nil {
		t.Fatal(err)
	}
	st := store.JobState{ID: 3, Phase: model.PhasePreflight, Gate: model.GateBlocked}
	for i, want := range []bool{true, false} {
		applied, err := db.MirrorJobState(ctx, st, "run/7", "note once")
		if err != nil || applied != want {
			t.Fatalf("write %d: applied=%v err=%v", i, applied, err)
		}
	}
	if applied, err := db.MirrorJobState(ctx, st, "run/8", ""); err != nil || !applied {
		t.Fatalf("next key: %v %v", applied, err)
	}
	p, _ := db.GetJobProgress(ctx, 3)
	if strings.Count(p.Notes, "note once") != 1 {
		t.Fatalf("notes = %q", p.Notes)
	}
}

func TestMarkMailbox(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := &emailjob.Activities{DB: db}
	if _, err := emailjob.Register(ctx, db, spec(4, 2)); err != nil {
		t.Fatal(err)
	}
	mbs, _ := db.ListMailboxes(ctx, 4)
	if err := a.MarkEmailMailbox(ctx, emailjob.MailboxMark{MailboxID: mbs[1].ID, Status: model.MailboxError, LastError: "AuthFailed: login refused"}); err != nil {
		t.Fatal(err)
	}
	counts, err := db.CountMailboxesByStatus(ctx, 4)
	if err != nil || counts[model.MailboxError] != 1 || counts[model.MailboxPending] != 1 {
		t.Fatalf("counts = %v, %v", counts, err)
	}
	m, _ := db.GetMailbox(ctx, mbs[1].ID)
	if m.LastError != "AuthFailed: login refused" {
		t.Fatalf("mailbox = %+v", m)
	}
	if err := a.MarkEmailMailbox(ctx, emailjob.MailboxMark{MailboxID: 999999, Status: model.MailboxError}); appErrType(err) != "MailboxNotFound" {
		t.Fatalf("unknown mailbox: %v", err)
	}
}
