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
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
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
	if reg.JobID != 42 {
		t.Fatalf("reg.JobID = %v, want 42; first registration = %+v", reg.JobID, reg)
	}
	if reg.Mailboxes != 3 {
		t.Fatalf("reg.Mailboxes = %v, want 3; first registration = %+v", reg.Mailboxes, reg)
	}
	if !reg.Created {
		t.Fatalf("reg.Created is false; first registration = %+v", reg)
	}
	if reg.Existing != nil {
		t.Fatalf("reg.Existing = %v, want nil; first registration = %+v", reg.Existing, reg)
	}
	job, err := db.GetJob(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	if job.TenantID != 7 {
		t.Fatalf("job.TenantID = %v, want 7; job row = %+v", job.TenantID, job)
	}
	if *job.TicketID != 99 {
		t.Fatalf("*job.TicketID = %v, want 99; job row = %+v", *job.TicketID, job)
	}
	if job.Domain != "example.com" {
		t.Fatalf("job.Domain = %v, want \"example.com\"; job row = %+v", job.Domain, job)
	}
	if job.Phase != model.PhaseDiscovered {
		t.Fatalf("job.Phase = %v, want model.PhaseDiscovered; job row = %+v", job.Phase, job)
	}
	if job.SourceServerLabel != "old host" {
		t.Fatalf("job.SourceServerLabel = %v, want \"old host\"; job row = %+v", job.SourceServerLabel, job)
	}
	if job.DestIMAPHost != "new.example:993" {
		t.Fatalf("job.DestIMAPHost = %v, want \"new.example:993\"; job row = %+v", job.DestIMAPHost, job)
	}
	mbs, err := db.ListMailboxes(ctx, 42)
	if err != nil {
		t.Fatalf("err: want nil; mailboxes = %v, %v", mbs, err)
	}
	if len(mbs) != 3 {
		t.Fatalf("len(mbs) = %v, want 3; mailboxes = %v, %v", len(mbs), mbs, err)
	}
	if m := mbs[0]; m.SourceHost != "old.example:143" {
		t.Fatalf("m.SourceHost = %v, want \"old.example:143\"; mailbox row = %+v", m.SourceHost, m)
	} else if m.SourceUser != "u0@example.com" {
		t.Fatalf("m.SourceUser = %v, want \"u0@example.com\"; mailbox row = %+v", m.SourceUser, m)
	} else if m.CredentialsRef != refA {
		t.Fatalf("m.CredentialsRef = %v, want %v (refA); mailbox row = %+v", m.CredentialsRef, refA, m)
	} else if m.FolderMap["Sent Items"] != "Sent" {
		t.Fatalf("m.FolderMap[\"Sent Items\"] = %v, want \"Sent\"; mailbox row = %+v", m.FolderMap["Sent Items"], m)
	} else if m.Status != model.MailboxPending {
		t.Fatalf("m.Status = %v, want model.MailboxPending; mailbox row = %+v", m.Status, m)
	}

	// Progress recorded by a pass survives a re-registration of the same spec.
	if err := db.SetMailboxProgress(ctx, mbs[0].ID, store.MailboxProgress{MessagesSource: 10, MessagesDest: 5, Status: model.MailboxSyncing}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordJobState(ctx, store.JobState{ID: 42, Phase: model.PhaseDeltaSync, Gate: model.GateWarning}, "", ""); err != nil {
		t.Fatal(err)
	}
	reg, err = a.RegisterEmailJob(ctx, spec(42, 3))
	if err != nil {
		t.Fatal(err)
	}
	if reg.Created {
		t.Fatalf("reg.Created is true; re-registration = %+v", reg)
	}
	if reg.Mailboxes != 3 {
		t.Fatalf("reg.Mailboxes = %v, want 3; re-registration = %+v", reg.Mailboxes, reg)
	}
	if reg.Existing == nil {
		t.Fatalf("reg.Existing is nil; re-registration = %+v", reg)
	}
	if reg.Existing.Phase != model.PhaseDeltaSync {
		t.Fatalf("reg.Existing.Phase = %v, want model.PhaseDeltaSync; re-registration = %+v",
			reg.Existing.Phase, reg)
	}
	again, _ := db.ListMailboxes(ctx, 42)
	if again[0].ID != mbs[0].ID {
		t.Fatalf("again[0].ID = %v, want %v (mbs[0].ID); progress lost: %+v", again[0].ID, mbs[0].ID, again[0])
	}
	if again[0].MessagesDest != 5 {
		t.Fatalf("again[0].MessagesDest = %v, want 5; progress lost: %+v", again[0].MessagesDest, again[0])
	}
	if again[0].Status != model.MailboxSyncing {
		t.Fatalf("again[0].Status = %v, want model.MailboxSyncing; progress lost: %+v", again[0].Status, again[0])
	}

	// The same id for another domain is a bad spec, not a retry.
	other := spec(42, 1)
	other.Domain = "other.example"
	other.Mailboxes[0].Email = "x@other.example"
	if _, err := a.RegisterEmailJob(ctx, other); appErrType(err) != emailapi.ErrTypeBadSpec || !strings.Contains(err.Error(), "another domain") {
		t.Fatalf("mismatched registration: %v", err)
	}
	bad := spec(43, 1)
	bad.Mailboxes[0].CredentialsRef = "hunter2"
	if _, err := a.RegisterEmailJob(ctx, bad); appErrType(err) != emailapi.ErrTypeBadSpec || !strings.Contains(err.Error(), "not a vault reference") {
		t.Fatalf("invalid spec: %v", err)
	}
	if _, err := a.RegisterEmailJob(ctx, spec(0, 1)); appErrType(err) != emailapi.ErrTypeBadSpec {
		t.Fatalf("spec without job id: %v", err)
	}
	// Registered ahead by the CLI: the spec carries only the count.
	pre := spec(42, 0)
	pre.MailboxCount = 3
	if reg, err := a.RegisterEmailJob(ctx, pre); err != nil {
		t.Fatalf("err: want nil; registration by count = %+v, %v", reg, err)
	} else if reg.Mailboxes != 3 {
		t.Fatalf("reg.Mailboxes = %v, want 3; registration by count = %+v, %v", reg.Mailboxes, reg, err)
	}
	none := spec(44, 0)
	none.MailboxCount = 3
	if _, err := a.RegisterEmailJob(ctx, none); appErrType(err) != emailapi.ErrTypeBadSpec || !strings.Contains(err.Error(), "no mailboxes registered") {
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
		page, err := a.LoadEmailMailboxes(ctx, emailapi.LoadRequest{Spec: jobOnly, AfterID: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		for _, m := range page {
			if m.JobID != 5 {
				t.Fatalf("m.JobID = %v, want 5; spec = %+v", m.JobID, m)
			}
			if m.MailboxID <= after {
				t.Fatalf("m.MailboxID = %v, want > after; spec = %+v", m.MailboxID, m)
			}
			if m.Source.Addr != "old.example:143" {
				t.Fatalf("m.Source.Addr = %v, want \"old.example:143\"; spec = %+v", m.Source.Addr, m)
			}
			if m.Source.Security != "plain" {
				t.Fatalf("m.Source.Security = %v, want \"plain\"; spec = %+v", m.Source.Security, m)
			}
			if m.Dest.Addr != "new.example:993" {
				t.Fatalf("m.Dest.Addr = %v, want \"new.example:993\"; spec = %+v", m.Dest.Addr, m)
			}
			if m.FolderMap["Sent Items"] != "Sent" {
				t.Fatalf("m.FolderMap[\"Sent Items\"] = %v, want \"Sent\"; spec = %+v", m.FolderMap["Sent Items"], m)
			}
			if len(m.Exclude) != 1 {
				t.Fatalf("len(m.Exclude) = %v, want 1; spec = %+v", len(m.Exclude), m)
			}
			after = m.MailboxID
			emails = append(emails, m.Email)
			if m.Email == "u4@example.com" {
				if m.Source.User != "legacy4" {
					t.Fatalf("m.Source.User = %v, want \"legacy4\"; mailbox overrides lost: %+v", m.Source.User, m)
				}
				if m.Dest.CredentialsRef != refA {
					t.Fatalf("m.Dest.CredentialsRef = %v, want %v (refA); mailbox overrides lost: %+v",
						m.Dest.CredentialsRef, refA, m)
				}
				if m.Dest.AuthUser != "" {
					t.Fatalf("m.Dest.AuthUser = %v, want \"\"; mailbox overrides lost: %+v", m.Dest.AuthUser, m)
				}
			} else if m.Dest.AuthUser != "master" {
				t.Fatalf("m.Dest.AuthUser = %v, want \"master\"; job-wide credentials not applied: %+v",
					m.Dest.AuthUser, m)
			} else if m.Dest.CredentialsRef != refB {
				t.Fatalf("m.Dest.CredentialsRef = %v, want %v (refB); job-wide credentials not applied: %+v",
					m.Dest.CredentialsRef, refB, m)
			} else if m.Source.CredentialsRef != refA {
				t.Fatalf("m.Source.CredentialsRef = %v, want %v (refA); job-wide credentials not applied: %+v",
					m.Source.CredentialsRef, refA, m)
			}
		}
	}
	if pages != 3 {
		t.Fatalf("pages: want 3; %d pages: %v", pages, emails)
	}
	if strings.Join(emails, ",") != "u0@example.com,u1@example.com,u2@example.com,u3@example.com,u4@example.com" {
		t.Fatalf("strings.Join(emails, \",\") = %v, want \"u0@example.com,u1@example.com,u2@example.com,u3@example.com,u4@example.com\"; %d pages: %v",
			strings.Join(emails, ","), pages, emails)
	}
	if _, err := a.LoadEmailMailboxes(ctx, emailapi.LoadRequest{Spec: jobOnly, Limit: 0}); appErrType(err) != emailapi.ErrTypeBadSpec {
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
	err := a.RecordEmailJob(ctx, emailapi.JobRecord{
		State: emailapi.JobState{ID: 9, Phase: model.PhaseCutoverReady, Gate: model.GateReadyForDNS, ApprovedBy: "lead",
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
	if p.Phase != model.PhaseCutoverReady {
		t.Fatalf("p.Phase = %v, want model.PhaseCutoverReady; job = %+v", p.Phase, p)
	}
	if p.Gate != model.GateReadyForDNS {
		t.Fatalf("p.Gate = %v, want model.GateReadyForDNS; job = %+v", p.Gate, p)
	}
	if *p.ApprovedBy != "lead" {
		t.Fatalf("*p.ApprovedBy = %v, want \"lead\"; job = %+v", *p.ApprovedBy, p)
	}
	if !p.ApprovedAt.Equal(at) {
		t.Fatalf("p.ApprovedAt.Equal(at) is false; job = %+v", p)
	}
	if !p.CutoverPlannedAt.Equal(at) {
		t.Fatalf("p.CutoverPlannedAt.Equal(at) is false; job = %+v", p)
	}
	if p.SyncPercent != 87.5 {
		t.Fatalf("p.SyncPercent = %v, want 87.5; job = %+v", p.SyncPercent, p)
	}
	if *p.PredictedFinalSyncSeconds != 93.5 {
		t.Fatalf("*p.PredictedFinalSyncSeconds = %v, want 93.5; job = %+v", *p.PredictedFinalSyncSeconds, p)
	}
	if !strings.Contains(p.Notes, "looks good") {
		t.Fatalf("strings.Contains(p.Notes, \"looks good\") is false; job = %+v", p)
	}
	if p.FailedPhase != "" {
		t.Fatalf("p.FailedPhase = %v, want \"\"; job = %+v", p.FailedPhase, p)
	}
	latest, err := db.LatestGateChecks(ctx, 9)
	if err != nil {
		t.Fatalf("err: want nil; checks = %+v, %v", latest, err)
	}
	if len(latest) != 2 {
		t.Fatalf("len(latest) = %v, want 2; checks = %+v, %v", len(latest), latest, err)
	}

	// ready_for_dns without an approval is refused by the schema: the workflow can never write it.
	err = a.RecordEmailJob(ctx, emailapi.JobRecord{State: emailapi.JobState{ID: 9, Phase: model.PhaseCutoverReady, Gate: model.GateReadyForDNS}})
	if err == nil || !strings.Contains(err.Error(), "migration_jobs_ready_needs_approval") {
		t.Fatalf("unapproved ready_for_dns: %v", err)
	}
	// Failing clears the approval and records where to resume.
	err = a.RecordEmailJob(ctx, emailapi.JobRecord{State: emailapi.JobState{ID: 9, Phase: model.PhaseFailed, Gate: model.GateBlocked,
		FailedPhase: model.PhaseFinalSync, LastError: "verify: 2 missing"}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ = db.GetJobProgress(ctx, 9)
	if p.Phase != model.PhaseFailed {
		t.Fatalf("p.Phase = %v, want model.PhaseFailed; failed job = %+v", p.Phase, p)
	}
	if p.FailedPhase != model.PhaseFinalSync {
		t.Fatalf("p.FailedPhase = %v, want model.PhaseFinalSync; failed job = %+v", p.FailedPhase, p)
	}
	if p.LastError != "verify: 2 missing" {
		t.Fatalf("p.LastError = %v, want \"verify: 2 missing\"; failed job = %+v", p.LastError, p)
	}
	if p.ApprovedBy != nil {
		t.Fatalf("p.ApprovedBy = %v, want nil; failed job = %+v", p.ApprovedBy, p)
	}
	if p.ApprovedAt != nil {
		t.Fatalf("p.ApprovedAt = %v, want nil; failed job = %+v", p.ApprovedAt, p)
	}
	if err := a.RecordEmailJob(ctx, emailapi.JobRecord{State: emailapi.JobState{ID: 404, Phase: model.PhaseFailed, Gate: model.GateBlocked}}); appErrType(err) != emailapi.ErrTypeJobNotFound {
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
		applied, err := db.RecordJobState(ctx, st, "run/7", "note once")
		if err != nil {
			t.Fatalf("err: want nil; write %d: applied=%v err=%v", i, applied, err)
		}
		if applied != want {
			t.Fatalf("applied: want want; write %d: applied=%v err=%v", i, applied, err)
		}
	}
	if applied, err := db.RecordJobState(ctx, st, "run/8", ""); err != nil || !applied {
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
	if err := a.MarkEmailMailbox(ctx, emailapi.MailboxMark{MailboxID: mbs[1].ID, Status: model.MailboxError, LastError: "AuthFailed: login refused"}); err != nil {
		t.Fatal(err)
	}
	counts, err := db.CountMailboxesByStatus(ctx, 4)
	if err != nil {
		t.Fatalf("err: want nil; counts = %v, %v", counts, err)
	}
	if counts[model.MailboxError] != 1 {
		t.Fatalf("counts[model.MailboxError] = %v, want 1; counts = %v, %v", counts[model.MailboxError], counts, err)
	}
	if counts[model.MailboxPending] != 1 {
		t.Fatalf("counts[model.MailboxPending] = %v, want 1; counts = %v, %v",
			counts[model.MailboxPending], counts, err)
	}
	m, _ := db.GetMailbox(ctx, mbs[1].ID)
	if m.LastError != "AuthFailed: login refused" {
		t.Fatalf("mailbox = %+v", m)
	}
	if err := a.MarkEmailMailbox(ctx, emailapi.MailboxMark{MailboxID: 999999, Status: model.MailboxError}); appErrType(err) != emailapi.ErrTypeMailboxNotFound {
		t.Fatalf("unknown mailbox: %v", err)
	}
}
