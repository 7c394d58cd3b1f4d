// Package emailjob is the job-level bookkeeping of the email workflows: it registers a job and
// its mailboxes from a spec, hands mailboxes to the workflows page by page, and records the
// job's phase, gate, approval and DNS cutover into migration_jobs (and the gate checks into
// migration_gate_checks) so a ticket desk can read PostgreSQL alone. The IMAP work itself is
// activities/mail's.
package emailjob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Activities is registered on the worker (RegisterActivities); method names are the activity
// type names, but for RecordEmailJob's.
type Activities struct {
	DB     *store.DB
	Logger *slog.Logger
	// OnRecorded, when set, runs after each state write, a retried one included (activities/report:
	// the phase timeline and metrics, and the report at verified and closed; idempotent, best effort).
	OnRecorded func(ctx context.Context, s store.JobState)
	// Purge, when set, deletes a refused run and starts its redacted replacement
	// (PurgeRefusedStart); the worker gives it its Temporal client.
	Purge func(ctx context.Context, r RefusedStart) error
}

// RegisterActivities registers a's activities on r, RecordEmailJob under the type name recorded
// histories carry (emailapi.RecordJobActivity), the name the workflow schedules.
func RegisterActivities(r worker.ActivityRegistry, a *Activities) {
	r.RegisterActivityWithOptions(a, activity.RegisterOptions{})
	r.RegisterActivityWithOptions(a.RecordEmailJob, activity.RegisterOptions{Name: emailapi.RecordJobActivity})
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// registerBatch bounds one round trip of mailbox upserts.
const registerBatch = 500

// RegisterEmailJob creates (or finds) the job row and upserts the spec's mailboxes with their
// spec entries, in one transaction. Re-running it with the same spec changes nothing.
func (a *Activities) RegisterEmailJob(ctx context.Context, spec jobspec.Spec) (emailapi.Registration, error) {
	defer heartbeat.KeepAlive(ctx, nil)()
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return emailapi.Registration{}, temporal.NewNonRetryableApplicationError(err.Error(), emailapi.ErrTypeBadSpec, nil)
	}
	if spec.JobID <= 0 {
		return emailapi.Registration{}, temporal.NewNonRetryableApplicationError("job spec has no job_id", emailapi.ErrTypeBadSpec, nil)
	}
	var reg emailapi.Registration
	err := a.DB.InTx(ctx, func(st *store.Store) error {
		var err error
		reg, err = RegisterTx(ctx, st, spec)
		return err
	})
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return emailapi.Registration{}, err
	}
	if errors.Is(err, store.ErrJobMismatch) {
		return emailapi.Registration{}, temporal.NewNonRetryableApplicationError(err.Error(), emailapi.ErrTypeBadSpec, nil)
	}
	if err != nil {
		return emailapi.Registration{}, fmt.Errorf("register email job %d: %w", spec.JobID, err)
	}
	if reg.Mailboxes == 0 {
		return emailapi.Registration{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("job %d has no mailboxes registered", spec.JobID), emailapi.ErrTypeBadSpec, nil)
	}
	a.logger().InfoContext(ctx, "email job registered", "job_id", spec.JobID, "domain", spec.Domain,
		"mailboxes", reg.Mailboxes, "created", reg.Created)
	return reg, nil
}

// RegisterTx is RegisterEmailJob's work inside a transaction the caller owns (a CSV import
// stores the mailboxes' secrets in the same one): the job row, the account check, the
// mailboxes upserted with their spec entries. spec has its defaults and is valid.
func RegisterTx(ctx context.Context, st *store.Store, spec jobspec.Spec) (emailapi.Registration, error) {
	reg := emailapi.Registration{JobID: spec.JobID}
	job, created, err := st.EnsureJob(ctx, jobRow(spec))
	if err != nil {
		return reg, err
	}
	reg.Created = created
	if !created && job.Phase != model.PhaseDiscovered {
		p, err := st.GetJobProgress(ctx, spec.JobID)
		if err != nil {
			return reg, err
		}
		reg.Existing = jobProgress(p)
	}
	if err := checkAccounts(ctx, st, spec); err != nil {
		return reg, err
	}
	rows, err := MailboxRows(spec)
	if err != nil {
		return reg, err
	}
	if !created && len(spec.Mailboxes) > 0 {
		if reg.Removed, err = leftOut(ctx, st, spec); err != nil {
			return reg, err
		}
	}
	for len(rows) > 0 {
		n := min(len(rows), registerBatch)
		if err := st.UpsertMailboxesWithSpec(ctx, spec.JobID, rows[:n]); err != nil {
			return reg, err
		}
		rows = rows[n:]
		heartbeat.Record(ctx, n)
	}
	skips, err := st.ListSkips(ctx, spec.JobID)
	if err != nil {
		return reg, err
	}
	for _, sk := range skips {
		reg.Skipped = append(reg.Skipped, emailapi.MailboxSkip(sk))
	}
	counts, err := st.CountMailboxesByStatus(ctx, spec.JobID)
	if err != nil {
		return reg, err
	}
	for _, n := range counts {
		reg.Mailboxes += int(n)
	}
	return reg, nil
}

func jobRow(spec jobspec.Spec) store.Job {
	j := store.Job{ID: spec.JobID, TenantID: spec.TenantID, Domain: spec.Domain, Notes: spec.Notes,
		SourceServerLabel: spec.Source.Label, DestIMAPHost: spec.Destination.Host}
	if spec.TicketID > 0 {
		t := spec.TicketID
		j.TicketID = &t
	}
	return j
}

// MailboxRows turns the spec's mailboxes into rows (the CLI registers through it too).
func MailboxRows(spec jobspec.Spec) ([]store.MailboxWithSpec, error) {
	out := make([]store.MailboxWithSpec, 0, len(spec.Mailboxes))
	for _, m := range spec.Mailboxes {
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s spec: %w", m.Email, err)
		}
		src, _ := spec.Logins(m)
		out = append(out, store.MailboxWithSpec{Spec: b, Mailbox: store.Mailbox{
			Email: m.Email, SourceType: m.SourceType, SourceHost: src.Addr, SourceUser: src.User,
			CredentialsRef: m.CredentialsRef, PSTPath: m.SourcePath, FolderMap: m.FolderMap,
		}})
	}
	return out, nil
}

// Register writes a spec's job and mailboxes outside any workflow (cutover email start, so a
// large job's mailboxes never travel in a workflow input). It returns the mailbox count.
func Register(ctx context.Context, db *store.DB, spec jobspec.Spec) (int, error) {
	a := &Activities{DB: db, Logger: slog.New(slog.DiscardHandler)}
	reg, err := a.RegisterEmailJob(ctx, spec)
	if err != nil {
		return 0, err
	}
	return reg.Mailboxes, nil
}

// LoadEmailMailboxes returns the next page of a job's mailboxes as the engine's MailboxSpecs.
func (a *Activities) LoadEmailMailboxes(ctx context.Context, req emailapi.LoadRequest) ([]emailapi.MailboxSpec, error) {
	defer heartbeat.KeepAlive(ctx, nil)()
	if req.Limit <= 0 || req.Limit > 1000 {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("page size %d: want 1..1000", req.Limit), emailapi.ErrTypeBadSpec, nil)
	}
	spec := req.Spec.WithDefaults()
	rows, err := a.DB.ListMailboxesWithSpec(ctx, spec.JobID, req.AfterID, req.Limit)
	if err != nil {
		return nil, err
	}
	out := make([]emailapi.MailboxSpec, 0, len(rows))
	for _, r := range rows {
		m := jobspec.Mailbox{Email: r.Email, SourceType: r.SourceType, User: r.SourceUser,
			CredentialsRef: r.CredentialsRef, SourcePath: r.PSTPath, FolderMap: r.FolderMap}
		if len(r.Spec) > 0 {
			m = jobspec.Mailbox{}
			if err := json.Unmarshal(r.Spec, &m); err != nil {
				return nil, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("mailbox %d (%s) spec_json: %v", r.ID, r.Email, err), emailapi.ErrTypeBadSpec, nil)
			}
		}
		out = append(out, MailboxSpec(spec, spec.JobID, r.ID, m))
	}
	return out, nil
}

// RecordEmailJob writes the job's state and appends a new gate evaluation in one transaction.
// A retry of a write that already committed changes nothing (keyed by the activity).
func (a *Activities) RecordEmailJob(ctx context.Context, m emailapi.JobRecord) error {
	defer heartbeat.KeepAlive(ctx, nil)()
	key := ""
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		key = info.WorkflowExecution.RunID + "/" + info.ActivityID
	}
	note := ""
	for i, n := range m.Notes {
		if i > 0 {
			note += "\n"
		}
		note += n
	}
	now := time.Now()
	err := a.DB.InTx(ctx, func(st *store.Store) error {
		applied, err := st.RecordJobState(ctx, store.JobState(m.State), key, note)
		if err != nil || !applied {
			return err
		}
		if err := a.applyMailboxOps(ctx, st, m.State.ID, m.Mailboxes); err != nil {
			return err
		}
		if len(m.Checks) == 0 {
			return nil
		}
		return st.RecordGateChecks(ctx, m.State.ID, checkRows(m.Checks, now))
	})
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), emailapi.ErrTypeJobNotFound, nil)
	}
	if err == nil && a.OnRecorded != nil {
		a.OnRecorded(ctx, store.JobState(m.State))
	}
	return err
}

// MarkEmailMailbox sets a mailbox's status and last error.
func (a *Activities) MarkEmailMailbox(ctx context.Context, m emailapi.MailboxMark) error {
	defer heartbeat.KeepAlive(ctx, nil)()
	err := a.DB.SetMailboxStatus(ctx, m.MailboxID, m.Status, m.LastError)
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), emailapi.ErrTypeMailboxNotFound, nil)
	}
	return err
}

// jobProgress maps the job row read on a restart to the contract the workflow resumes from.
func jobProgress(p store.JobProgress) *emailapi.JobProgress {
	return &emailapi.JobProgress{ID: p.ID, TenantID: p.TenantID, TicketID: p.TicketID, Domain: p.Domain,
		Phase: p.Phase, Gate: p.Gate, SourceServerLabel: p.SourceServerLabel, DestIMAPHost: p.DestIMAPHost,
		Notes: p.Notes, ApprovedBy: p.ApprovedBy, ApprovedAt: p.ApprovedAt, DNSCutoverAt: p.DNSCutoverAt,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, FailedPhase: p.FailedPhase, LastError: p.LastError,
		CutoverPlannedAt: p.CutoverPlannedAt, SyncPercent: p.SyncPercent,
		PredictedFinalSyncSeconds: p.PredictedFinalSyncSeconds}
}
