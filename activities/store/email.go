package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/internal/model"
)

// Job is a migration_jobs row: one email domain moving between servers.
type Job struct {
	ID                int64       `db:"id"`
	TenantID          int64       `db:"tenant_id"`
	TicketID          *int64      `db:"ticket_id"`
	Domain            string      `db:"domain"`
	Phase             model.Phase `db:"phase"`
	Gate              model.Gate  `db:"migration_gate"`
	SourceServerLabel string      `db:"source_server_label"`
	DestIMAPHost      string      `db:"dest_imap_host"`
	Notes             string      `db:"notes"`
	ApprovedBy        *string     `db:"approved_by"`
	ApprovedAt        *time.Time  `db:"approved_at"`
	DNSCutoverAt      *time.Time  `db:"dns_cutover_at"`
	CreatedAt         time.Time   `db:"created_at"`
	UpdatedAt         time.Time   `db:"updated_at"`
}

const jobColumns = `id, tenant_id, ticket_id, domain, phase, migration_gate,
	coalesce(source_server_label, '') AS source_server_label, coalesce(dest_imap_host, '') AS dest_imap_host,
	coalesce(notes, '') AS notes, approved_by, approved_at, dns_cutover_at, created_at, updated_at`

// CreateJob inserts a job; ID 0 lets the database pick one, a given ID is kept (spec-assigned).
func (s *Store) CreateJob(ctx context.Context, j Job) (Job, error) {
	if j.Phase == "" {
		j.Phase = model.PhaseDiscovered
	}
	if j.Gate == "" {
		j.Gate = model.GateBlocked
	}
	// A given id keeps the identity sequence ahead of it so later generated ids never collide.
	rows, err := s.q.Query(ctx, `WITH ins AS (
		INSERT INTO migration_jobs
			(id, tenant_id, ticket_id, domain, phase, migration_gate, source_server_label, dest_imap_host, notes)
		VALUES (coalesce(nullif($1, 0), nextval(pg_get_serial_sequence('migration_jobs', 'id'))), $2, $3, $4, $5, $6,
		        nullif($7, ''), nullif($8, ''), nullif($9, ''))
		RETURNING *), bump AS (
		SELECT setval(pg_get_serial_sequence('migration_jobs', 'id'),
			greatest((SELECT id FROM ins), (SELECT last_value FROM migration_jobs_id_seq))) WHERE $1 <> 0)
		SELECT `+jobColumns+` FROM ins LEFT JOIN (SELECT 1 FROM bump) b ON true`,
		j.ID, j.TenantID, j.TicketID, j.Domain, j.Phase, j.Gate, j.SourceServerLabel, j.DestIMAPHost, j.Notes)
	if err != nil {
		return Job{}, fmt.Errorf("create job for %s: %w", j.Domain, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Job])
	if err != nil {
		return Job{}, fmt.Errorf("create job for %s: %w", j.Domain, err)
	}
	return out, nil
}

// GetJob reads one job.
func (s *Store) GetJob(ctx context.Context, id int64) (Job, error) {
	rows, err := s.q.Query(ctx, `SELECT `+jobColumns+` FROM migration_jobs WHERE id = $1`, id)
	if err != nil {
		return Job{}, notFound(err, "job", id)
	}
	j, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Job])
	if err != nil {
		return Job{}, notFound(err, "job", id)
	}
	return j, nil
}

// ListJobs returns jobs, newest first, optionally only those in phase.
func (s *Store) ListJobs(ctx context.Context, phase model.Phase) ([]Job, error) {
	rows, err := s.q.Query(ctx, `SELECT `+jobColumns+` FROM migration_jobs
		WHERE $1 = '' OR phase = $1 ORDER BY id DESC`, string(phase))
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	js, err := pgx.CollectRows(rows, pgx.RowToStructByName[Job])
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// SetJobPhase records the job's phase and gate.
func (s *Store) SetJobPhase(ctx context.Context, id int64, phase model.Phase, gate model.Gate) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_jobs SET phase = $2, migration_gate = $3, updated_at = now()
		WHERE id = $1`, id, phase, gate)
	if err != nil {
		return fmt.Errorf("set job %d phase %s gate %s: %w", id, phase, gate, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set job %d phase: %w", id, ErrNotFound)
	}
	return nil
}

// ApproveJob records the ops lead's approval.
func (s *Store) ApproveJob(ctx context.Context, id int64, by string, at time.Time, note string) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_jobs SET approved_by = $2, approved_at = $3,
		notes = CASE WHEN $4 = '' THEN notes ELSE concat_ws(E'\n', notes, $4) END, updated_at = now()
		WHERE id = $1`, id, by, at, note)
	if err != nil {
		return fmt.Errorf("approve job %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("approve job %d: %w", id, ErrNotFound)
	}
	return nil
}

// SetDNSCutover records when DNS/MX was switched.
func (s *Store) SetDNSCutover(ctx context.Context, id int64, at time.Time) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_jobs SET dns_cutover_at = $2, updated_at = now() WHERE id = $1`, id, at)
	if err != nil {
		return fmt.Errorf("set job %d dns cutover: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set job %d dns cutover: %w", id, ErrNotFound)
	}
	return nil
}

// Mailbox is a migration_mailboxes row.
type Mailbox struct {
	ID             int64               `db:"id"`
	JobID          int64               `db:"job_id"`
	Email          string              `db:"email"`
	SourceType     model.SourceType    `db:"source_type"`
	SourceHost     string              `db:"source_host"`
	SourceUser     string              `db:"source_user"`
	CredentialsRef string              `db:"credentials_ref"`
	PSTPath        string              `db:"pst_path"`
	FolderMap      map[string]string   `db:"folder_map_json"`
	MessagesSource int64               `db:"messages_source"`
	MessagesDest   int64               `db:"messages_dest"`
	BytesSource    int64               `db:"bytes_source"`
	BytesDest      int64               `db:"bytes_dest"`
	SyncPercent    float32             `db:"sync_percent"`
	LastError      string              `db:"last_error"`
	Status         model.MailboxStatus `db:"status"`
	CreatedAt      time.Time           `db:"created_at"`
	UpdatedAt      time.Time           `db:"updated_at"`
}

const mailboxColumns = `id, job_id, email, source_type, coalesce(source_host, '') AS source_host,
	coalesce(source_user, '') AS source_user, coalesce(credentials_ref, '') AS credentials_ref,
	coalesce(pst_path, '') AS pst_path, folder_map_json, messages_source, messages_dest, bytes_source,
	bytes_dest, sync_percent, coalesce(last_error, '') AS last_error, status, created_at, updated_at`

// UpsertMailbox inserts the mailbox or updates its source description, keyed by (job, email).
// Counters and status are left alone so a re-submitted spec does not reset progress.
func (s *Store) UpsertMailbox(ctx context.Context, m Mailbox) (Mailbox, error) {
	var folderMap []byte
	if len(m.FolderMap) > 0 {
		b, err := json.Marshal(m.FolderMap)
		if err != nil {
			return Mailbox{}, fmt.Errorf("mailbox %s folder map: %w", m.Email, err)
		}
		folderMap = b
	}
	rows, err := s.q.Query(ctx, `INSERT INTO migration_mailboxes
		(job_id, email, source_type, source_host, source_user, credentials_ref, pst_path, folder_map_json)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), nullif($6, ''), nullif($7, ''), $8)
		ON CONFLICT (job_id, email) DO UPDATE SET source_type = EXCLUDED.source_type,
			source_host = EXCLUDED.source_host, source_user = EXCLUDED.source_user,
			credentials_ref = EXCLUDED.credentials_ref, pst_path = EXCLUDED.pst_path,
			folder_map_json = EXCLUDED.folder_map_json, updated_at = now()
		RETURNING `+mailboxColumns,
		m.JobID, m.Email, m.SourceType, m.SourceHost, m.SourceUser, m.CredentialsRef, m.PSTPath, folderMap)
	if err != nil {
		return Mailbox{}, fmt.Errorf("upsert mailbox %s: %w", m.Email, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Mailbox])
	if err != nil {
		return Mailbox{}, fmt.Errorf("upsert mailbox %s: %w", m.Email, err)
	}
	return out, nil
}

// GetMailbox reads one mailbox.
func (s *Store) GetMailbox(ctx context.Context, id int64) (Mailbox, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailboxColumns+` FROM migration_mailboxes WHERE id = $1`, id)
	if err != nil {
		return Mailbox{}, notFound(err, "mailbox", id)
	}
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Mailbox])
	if err != nil {
		return Mailbox{}, notFound(err, "mailbox", id)
	}
	return m, nil
}

// ListMailboxes returns a job's mailboxes ordered by email.
func (s *Store) ListMailboxes(ctx context.Context, jobID int64) ([]Mailbox, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailboxColumns+` FROM migration_mailboxes
		WHERE job_id = $1 ORDER BY email`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes of job %d: %w", jobID, err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByName[Mailbox])
	if err != nil {
		return nil, fmt.Errorf("list mailboxes of job %d: %w", jobID, err)
	}
	return ms, nil
}

// MailboxProgress is what a sync pass reports back into migration_mailboxes.
type MailboxProgress struct {
	MessagesSource, MessagesDest int64
	BytesSource, BytesDest       int64
	Status                       model.MailboxStatus
	LastError                    string // empty clears it
}

// SetMailboxProgress records counts and status; sync_percent is derived from the counts.
func (s *Store) SetMailboxProgress(ctx context.Context, id int64, p MailboxProgress) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_mailboxes SET
		messages_source = $2::bigint, messages_dest = $3::bigint, bytes_source = $4, bytes_dest = $5,
		sync_percent = CASE WHEN $2::bigint > 0 THEN least(100, round(100.0 * $3::bigint / $2::bigint, 2))
			WHEN $6 IN ('ok', 'quarantine') THEN 100 ELSE 0 END, -- nothing to copy counts only once synced
		status = CASE WHEN status = 'skipped' THEN status ELSE $6 END,
		last_error = CASE WHEN status = 'skipped' THEN last_error ELSE nullif($7, '') END, updated_at = now()
		WHERE id = $1`, id, p.MessagesSource, p.MessagesDest, p.BytesSource, p.BytesDest, p.Status, p.LastError)
	if err != nil {
		return fmt.Errorf("set mailbox %d progress: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set mailbox %d progress: %w", id, ErrNotFound)
	}
	return nil
}

// SetMailboxSyncing marks a mailbox as being synced, keeping its counts and last error (a
// skipped mailbox stays skipped).
func (s *Store) SetMailboxSyncing(ctx context.Context, id int64) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_mailboxes SET
		status = CASE WHEN status = 'skipped' THEN status ELSE 'syncing' END, updated_at = now()
		WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("set mailbox %d syncing: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set mailbox %d syncing: %w", id, ErrNotFound)
	}
	return nil
}

// Run is a migration_runs row: one tool invocation (a pass, a preflight, a verify).
type Run struct {
	ID             int64           `db:"id"`
	JobID          int64           `db:"job_id"`
	MailboxID      *int64          `db:"mailbox_id"`
	RunType        model.RunType   `db:"run_type"`
	Tool           model.Tool      `db:"tool"`
	Status         model.RunStatus `db:"status"`
	ExitCode       *int32          `db:"exit_code"`
	LogPath        string          `db:"log_path"`
	Stats          json.RawMessage `db:"stats_json"`
	StartedAt      time.Time       `db:"started_at"`
	FinishedAt     *time.Time      `db:"finished_at"`
	TriggeredBy    string          `db:"triggered_by"`
	IdempotencyKey *string         `db:"idempotency_key"`
}

const runColumns = `id, job_id, mailbox_id, run_type, tool, status, exit_code, log_path, stats_json,
	started_at, finished_at, triggered_by, idempotency_key`

// RecordRun inserts a run. With an idempotency key (e.g. workflow id + activity id) a retried
// activity updates its earlier row instead of adding a second one.
func (s *Store) RecordRun(ctx context.Context, r Run) (Run, error) {
	if r.Status == "" {
		r.Status = model.RunQueued
	}
	if r.TriggeredBy == "" {
		r.TriggeredBy = "worker"
	}
	if len(r.Stats) == 0 {
		r.Stats = json.RawMessage(`{}`)
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	rows, err := s.q.Query(ctx, `INSERT INTO migration_runs
		(job_id, mailbox_id, run_type, tool, status, exit_code, log_path, stats_json, started_at, finished_at,
		 triggered_by, idempotency_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (idempotency_key) DO UPDATE SET status = EXCLUDED.status, exit_code = EXCLUDED.exit_code,
			log_path = EXCLUDED.log_path, stats_json = EXCLUDED.stats_json, finished_at = EXCLUDED.finished_at
		RETURNING `+runColumns,
		r.JobID, r.MailboxID, r.RunType, r.Tool, r.Status, r.ExitCode, r.LogPath, r.Stats, r.StartedAt,
		r.FinishedAt, r.TriggeredBy, r.IdempotencyKey)
	if err != nil {
		return Run{}, fmt.Errorf("record %s run of job %d: %w", r.RunType, r.JobID, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Run])
	if err != nil {
		return Run{}, fmt.Errorf("record %s run of job %d: %w", r.RunType, r.JobID, err)
	}
	return out, nil
}

// FinishRun sets a run's outcome.
func (s *Store) FinishRun(ctx context.Context, id int64, status model.RunStatus, exitCode *int32, stats json.RawMessage, logPath string) error {
	if len(stats) == 0 {
		stats = json.RawMessage(`{}`)
	}
	tag, err := s.q.Exec(ctx, `UPDATE migration_runs SET status = $2, exit_code = $3, stats_json = $4,
		log_path = CASE WHEN $5 = '' THEN log_path ELSE $5 END, finished_at = greatest(now(), started_at)
		WHERE id = $1`, id, status, exitCode, stats, logPath)
	if err != nil {
		return fmt.Errorf("finish run %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish run %d: %w", id, ErrNotFound)
	}
	return nil
}

// ListRuns returns a job's runs in start order; mailboxID 0 means all of them.
func (s *Store) ListRuns(ctx context.Context, jobID, mailboxID int64) ([]Run, error) {
	rows, err := s.q.Query(ctx, `SELECT `+runColumns+` FROM migration_runs
		WHERE job_id = $1 AND ($2 = 0 OR mailbox_id = $2) ORDER BY started_at, id`, jobID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("list runs of job %d: %w", jobID, err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Run])
	if err != nil {
		return nil, fmt.Errorf("list runs of job %d: %w", jobID, err)
	}
	return rs, nil
}

// GateCheck is a migration_gate_checks row.
type GateCheck struct {
	ID        int64             `db:"id"`
	JobID     int64             `db:"job_id"`
	CheckID   model.CheckID     `db:"check_id"`
	Status    model.CheckStatus `db:"status"`
	Message   string            `db:"message"`
	CheckedAt time.Time         `db:"checked_at"`
	// Set when an ops lead reviewed and accepted the check's warnings: who, when, why.
	AcceptedBy   *string    `db:"accepted_by"`
	AcceptedAt   *time.Time `db:"accepted_at"`
	AcceptReason *string    `db:"accept_reason"`
}

// RecordGateChecks appends one evaluation of the gate; history is kept, the latest per check wins.
func (s *Store) RecordGateChecks(ctx context.Context, jobID int64, checks []GateCheck) error {
	b := &pgx.Batch{}
	for _, c := range checks {
		at := c.CheckedAt
		if at.IsZero() {
			at = time.Now()
		}
		b.Queue(`INSERT INTO migration_gate_checks (job_id, check_id, status, message, checked_at, accepted_by,
				accepted_at, accept_reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, jobID, c.CheckID, c.Status, c.Message, at, c.AcceptedBy, c.AcceptedAt,
			c.AcceptReason)
	}
	if err := s.q.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record gate checks of job %d: %w", jobID, err)
	}
	return nil
}

// LatestGateChecks returns the most recent result of each check for a job.
func (s *Store) LatestGateChecks(ctx context.Context, jobID int64) ([]GateCheck, error) {
	rows, err := s.q.Query(ctx, `SELECT DISTINCT ON (check_id) id, job_id, check_id, status, message, checked_at,
			accepted_by, accepted_at, accept_reason
		FROM migration_gate_checks WHERE job_id = $1 ORDER BY check_id, checked_at DESC, id DESC`, jobID)
	if err != nil {
		return nil, fmt.Errorf("latest gate checks of job %d: %w", jobID, err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByName[GateCheck])
	if err != nil {
		return nil, fmt.Errorf("latest gate checks of job %d: %w", jobID, err)
	}
	return cs, nil
}
