// Package emailjob is the job-level bookkeeping of the email workflows: it registers a job and
// its mailboxes from a spec, hands mailboxes to the workflows page by page, and mirrors the
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

	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// ErrTypeBadSpec is the non-retryable error type of a spec that cannot be registered; it is the
// engine's spelling, so workflows classify both alike.
const ErrTypeBadSpec = mail.ErrTypeBadSpec

// Activities is registered on the worker; method names are the activity type names.
type Activities struct {
	DB     *store.DB
	Logger *slog.Logger
	// OnMirrored, when set, runs after each state write, a retried one included (activities/report:
	// the phase timeline and metrics, and the report at verified and closed; idempotent, best effort).
	OnMirrored func(ctx context.Context, s store.JobState)
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// Registration is what RegisterEmailJob found and did.
type Registration struct {
	JobID     int64
	Mailboxes int
	Created   bool // the job row is new
	// Existing is the job's recorded state when the row already existed and had progressed past
	// discovered: a job restarted after an abort resumes from it instead of starting over (and
	// never mirrors again if DNS was already cut over).
	Existing *store.JobProgress
}

// registerBatch bounds one round trip of mailbox upserts.
const registerBatch = 500

// RegisterEmailJob creates (or finds) the job row and upserts the spec's mailboxes with their
// spec entries, in one transaction. Re-running it with the same spec changes nothing.
func (a *Activities) RegisterEmailJob(ctx context.Context, spec jobspec.Spec) (Registration, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return Registration{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadSpec, nil)
	}
	if spec.JobID <= 0 {
		return Registration{}, temporal.NewNonRetryableApplicationError("job spec has no job_id", ErrTypeBadSpec, nil)
	}
	reg := Registration{JobID: spec.JobID}
	err := a.DB.InTx(ctx, func(st *store.Store) error {
		job, created, err := st.EnsureJob(ctx, jobRow(spec))
		if err != nil {
			return err
		}
		reg.Created = created
		if !created && job.Phase != model.PhaseDiscovered {
			p, err := st.GetJobProgress(ctx, spec.JobID)
			if err != nil {
				return err
			}
			reg.Existing = &p
		}
		rows, err := MailboxRows(spec)
		if err != nil {
			return err
		}
		for len(rows) > 0 {
			n := min(len(rows), registerBatch)
			if err := st.UpsertMailboxesWithSpec(ctx, spec.JobID, rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
			heartbeat.Record(ctx, n)
		}
		counts, err := st.CountMailboxesByStatus(ctx, spec.JobID)
		if err != nil {
			return err
		}
		for _, n := range counts {
			reg.Mailboxes += int(n)
		}
		return nil
	})
	if errors.Is(err, store.ErrJobMismatch) {
		return Registration{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadSpec, nil)
	}
	if err != nil {
		return Registration{}, fmt.Errorf("register email job %d: %w", spec.JobID, err)
	}
	if reg.Mailboxes == 0 {
		return Registration{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("job %d has no mailboxes registered", spec.JobID), ErrTypeBadSpec, nil)
	}
	a.logger().InfoContext(ctx, "email job registered", "job_id", spec.JobID, "domain", spec.Domain,
		"mailboxes", reg.Mailboxes, "created", reg.Created)
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
		ms := spec.MailboxSpec(spec.JobID, 0, m)
		out = append(out, store.MailboxWithSpec{Spec: b, Mailbox: store.Mailbox{
			Email: m.Email, SourceType: m.SourceType, SourceHost: ms.Source.Addr, SourceUser: ms.Source.User,
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

// LoadRequest asks for one page of a job's mailboxes.
type LoadRequest struct {
	Spec    jobspec.Spec // job-level settings (endpoints); its Mailboxes are ignored
	AfterID int64        // last migration_mailboxes.id of the previous page
	Limit   int
}

// LoadEmailMailboxes returns the next page of a job's mailboxes as the engine's MailboxSpecs.
func (a *Activities) LoadEmailMailboxes(ctx context.Context, req LoadRequest) ([]mail.MailboxSpec, error) {
	if req.Limit <= 0 || req.Limit > 1000 {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("page size %d: want 1..1000", req.Limit), ErrTypeBadSpec, nil)
	}
	spec := req.Spec.WithDefaults()
	rows, err := a.DB.ListMailboxesWithSpec(ctx, spec.JobID, req.AfterID, req.Limit)
	if err != nil {
		return nil, err
	}
	out := make([]mail.MailboxSpec, 0, len(rows))
	for _, r := range rows {
		m := jobspec.Mailbox{Email: r.Email, SourceType: r.SourceType, User: r.SourceUser,
			CredentialsRef: r.CredentialsRef, SourcePath: r.PSTPath, FolderMap: r.FolderMap}
		if len(r.Spec) > 0 {
			m = jobspec.Mailbox{}
			if err := json.Unmarshal(r.Spec, &m); err != nil {
				return nil, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("mailbox %d (%s) spec_json: %v", r.ID, r.Email, err), ErrTypeBadSpec, nil)
			}
		}
		out = append(out, spec.MailboxSpec(spec.JobID, r.ID, m))
	}
	return out, nil
}

// Mirror is one write of the job's state.
type Mirror struct {
	State  store.JobState
	Checks []gate.Check // a new gate evaluation to append; nil = none
	Notes  []string     // lines appended to migration_jobs.notes (approval note, abort reason, ...)
}

// MirrorEmailJob writes the job's state and appends a new gate evaluation in one transaction.
// A retry of a write that already committed changes nothing (keyed by the activity).
func (a *Activities) MirrorEmailJob(ctx context.Context, m Mirror) error {
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
		applied, err := st.MirrorJobState(ctx, m.State, key, note)
		if err != nil || !applied || len(m.Checks) == 0 {
			return err
		}
		rows := make([]store.GateCheck, len(m.Checks))
		for i, c := range m.Checks {
			rows[i] = store.GateCheck{CheckID: c.ID, Status: c.Status, Message: c.Message, CheckedAt: now}
		}
		return st.RecordGateChecks(ctx, m.State.ID, rows)
	})
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "JobNotFound", nil)
	}
	if err == nil && a.OnMirrored != nil {
		a.OnMirrored(ctx, m.State)
	}
	return err
}

// MailboxMark records a mailbox failure the engine may not have recorded.
type MailboxMark struct {
	MailboxID int64
	Status    model.MailboxStatus
	LastError string
}

// MarkEmailMailbox sets a mailbox's status and last error.
func (a *Activities) MarkEmailMailbox(ctx context.Context, m MailboxMark) error {
	err := a.DB.SetMailboxStatus(ctx, m.MailboxID, m.Status, m.LastError)
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "MailboxNotFound", nil)
	}
	return err
}
