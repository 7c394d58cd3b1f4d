package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/internal/model"
)

// Repository methods the email workflows' bookkeeping (activities/emailjob) adds: the columns
// of migration 0005 and page-by-page mailbox loading.

// ErrJobMismatch means a job id is already used by a job for another tenant or domain.
var ErrJobMismatch = errors.New("job id already used by another domain or tenant")

// EnsureJob returns the job with j.ID, creating it when absent (created = true). An existing
// job must belong to the same tenant and domain; its descriptive fields are refreshed, its
// progress is left alone.
func (s *Store) EnsureJob(ctx context.Context, j Job) (out Job, created bool, err error) {
	if j.ID <= 0 {
		return Job{}, false, fmt.Errorf("ensure job for %s: need an id", j.Domain)
	}
	existing, err := s.GetJob(ctx, j.ID)
	if errors.Is(err, ErrNotFound) {
		out, err = s.CreateJob(ctx, j)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // created concurrently
			existing, err = s.GetJob(ctx, j.ID)
		} else if err != nil {
			return Job{}, false, err
		} else {
			return out, true, nil
		}
	}
	if err != nil {
		return Job{}, false, err
	}
	if existing.TenantID != j.TenantID || existing.Domain != j.Domain {
		return Job{}, false, fmt.Errorf("job %d (tenant %d, %s) vs spec (tenant %d, %s): %w",
			j.ID, existing.TenantID, existing.Domain, j.TenantID, j.Domain, ErrJobMismatch)
	}
	_, err = s.q.Exec(ctx, `UPDATE migration_jobs SET ticket_id = coalesce($2, ticket_id),
		source_server_label = coalesce(nullif($3, ''), source_server_label),
		dest_imap_host = coalesce(nullif($4, ''), dest_imap_host), updated_at = now() WHERE id = $1`,
		j.ID, j.TicketID, j.SourceServerLabel, j.DestIMAPHost)
	if err != nil {
		return Job{}, false, fmt.Errorf("refresh job %d: %w", j.ID, err)
	}
	return existing, false, nil
}

// JobState is what the email workflow records into migration_jobs on every change.
type JobState struct {
	ID                        int64
	Phase                     model.Phase
	Gate                      model.Gate
	FailedPhase               model.Phase // "" unless Phase is failed
	LastError                 string
	ApprovedBy                string // "" clears the approval
	ApprovedAt                *time.Time
	DNSCutoverAt              *time.Time
	CutoverPlannedAt          *time.Time
	SyncPercent               float64
	PredictedFinalSyncSeconds *float64
}

// JobProgress is a job row with the columns of migration 0005.
type JobProgress struct {
	Job
	FailedPhase               model.Phase `db:"failed_phase"`
	LastError                 string      `db:"last_error"`
	CutoverPlannedAt          *time.Time  `db:"cutover_planned_at"`
	SyncPercent               float32     `db:"sync_percent"`
	PredictedFinalSyncSeconds *float64    `db:"predicted_final_sync_seconds"`
}

// RecordJobState writes st in one statement, appending note to the job's notes, unless key
// is the key of the last write applied (a retried write): then it reports applied = false.
func (s *Store) RecordJobState(ctx context.Context, st JobState, key, note string) (applied bool, err error) {
	var approvedBy *string
	approvedAt := st.ApprovedAt
	if st.ApprovedBy != "" {
		approvedBy = &st.ApprovedBy
	} else {
		approvedAt = nil
	}
	tag, err := s.q.Exec(ctx, `UPDATE migration_jobs SET phase = $2, migration_gate = $3,
		failed_phase = nullif($4, ''), last_error = nullif($5, ''), approved_by = $6, approved_at = $7,
		dns_cutover_at = $8, cutover_planned_at = $9, sync_percent = least(100, greatest(0, $10::real)),
		predicted_final_sync_seconds = $11,
		notes = CASE WHEN $13 = '' THEN notes ELSE concat_ws(E'\n', notes, $13) END,
		mirror_key = nullif($12, ''), updated_at = now()
		WHERE id = $1 AND ($12 = '' OR mirror_key IS DISTINCT FROM $12)`,
		st.ID, st.Phase, st.Gate, string(st.FailedPhase), st.LastError, approvedBy, approvedAt,
		st.DNSCutoverAt, st.CutoverPlannedAt, st.SyncPercent, st.PredictedFinalSyncSeconds, key, note)
	if err != nil {
		return false, fmt.Errorf("record job %d state (phase %s, gate %s): %w", st.ID, st.Phase, st.Gate, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := s.GetJob(ctx, st.ID); err != nil {
		return false, fmt.Errorf("record job %d state: %w", st.ID, err)
	}
	return false, nil // already applied under this key
}

// GetJobProgress reads a job with the columns of migration 0005.
func (s *Store) GetJobProgress(ctx context.Context, id int64) (JobProgress, error) {
	rows, err := s.q.Query(ctx, `SELECT `+jobColumns+`, coalesce(failed_phase, '') AS failed_phase,
		coalesce(last_error, '') AS last_error, cutover_planned_at, sync_percent, predicted_final_sync_seconds
		FROM migration_jobs WHERE id = $1`, id)
	if err != nil {
		return JobProgress{}, notFound(err, "job", id)
	}
	p, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[JobProgress])
	if err != nil {
		return JobProgress{}, notFound(err, "job", id)
	}
	return p, nil
}

// MailboxWithSpec is a mailbox row to upsert along with its spec entry (JSON, no secrets).
type MailboxWithSpec struct {
	Mailbox
	Spec json.RawMessage
}

// UpsertMailboxesWithSpec upserts many mailboxes of one job in one round trip, keyed by
// (job, email) like UpsertMailbox: counters and status are left alone.
func (s *Store) UpsertMailboxesWithSpec(ctx context.Context, jobID int64, ms []MailboxWithSpec) error {
	b := &pgx.Batch{}
	for _, m := range ms {
		var folderMap []byte
		if len(m.FolderMap) > 0 {
			fm, err := json.Marshal(m.FolderMap)
			if err != nil {
				return fmt.Errorf("mailbox %s folder map: %w", m.Email, err)
			}
			folderMap = fm
		}
		var spec []byte
		if len(m.Spec) > 0 {
			spec = m.Spec
		}
		b.Queue(`INSERT INTO migration_mailboxes
			(job_id, email, source_type, source_host, source_user, credentials_ref, pst_path, folder_map_json, spec_json)
			VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), nullif($6, ''), nullif($7, ''), $8, $9)
			ON CONFLICT (job_id, email) DO UPDATE SET source_type = EXCLUDED.source_type,
				source_host = EXCLUDED.source_host, source_user = EXCLUDED.source_user,
				credentials_ref = EXCLUDED.credentials_ref, pst_path = EXCLUDED.pst_path,
				folder_map_json = EXCLUDED.folder_map_json, spec_json = EXCLUDED.spec_json, updated_at = now()`,
			jobID, m.Email, m.SourceType, m.SourceHost, m.SourceUser, m.CredentialsRef, m.PSTPath, folderMap, spec)
	}
	if err := s.q.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("upsert %d mailboxes of job %d: %w", len(ms), jobID, err)
	}
	return nil
}

// ListMailboxesWithSpec returns up to limit mailboxes of a job with id > afterID, by id.
func (s *Store) ListMailboxesWithSpec(ctx context.Context, jobID, afterID int64, limit int) ([]MailboxWithSpec, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailboxColumns+`, spec_json FROM migration_mailboxes
		WHERE job_id = $1 AND id > $2 AND status <> 'skipped' ORDER BY id LIMIT $3`, jobID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes of job %d after %d: %w", jobID, afterID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MailboxWithSpec, error) {
		var m MailboxWithSpec
		var folderMap, spec []byte
		err := r.Scan(&m.ID, &m.JobID, &m.Email, &m.SourceType, &m.SourceHost, &m.SourceUser, &m.CredentialsRef,
			&m.PSTPath, &folderMap, &m.MessagesSource, &m.MessagesDest, &m.BytesSource, &m.BytesDest, &m.SyncPercent,
			&m.LastError, &m.Status, &m.CreatedAt, &m.UpdatedAt, &spec)
		if err != nil {
			return m, err
		}
		if len(folderMap) > 0 {
			if err := json.Unmarshal(folderMap, &m.FolderMap); err != nil {
				return m, fmt.Errorf("mailbox %d folder_map_json: %w", m.ID, err)
			}
		}
		m.Spec = spec
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list mailboxes of job %d after %d: %w", jobID, afterID, err)
	}
	return out, nil
}

// CountMailboxesByStatus counts a job's mailboxes per status.
func (s *Store) CountMailboxesByStatus(ctx context.Context, jobID int64) (map[model.MailboxStatus]int64, error) {
	rows, err := s.q.Query(ctx, `SELECT status, count(*) FROM migration_mailboxes WHERE job_id = $1 GROUP BY status`, jobID)
	if err != nil {
		return nil, fmt.Errorf("count mailboxes of job %d: %w", jobID, err)
	}
	out := map[model.MailboxStatus]int64{}
	var st model.MailboxStatus
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error { out[st] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("count mailboxes of job %d: %w", jobID, err)
	}
	return out, nil
}

// SetMailboxStatus records a mailbox's status and last error without touching its counters
// (a failure the engine could not record itself, e.g. credentials missing before any login).
func (s *Store) SetMailboxStatus(ctx context.Context, id int64, status model.MailboxStatus, lastError string) error {
	// A skipped mailbox stays skipped: only an un-skip (UnskipMailbox) brings it back.
	tag, err := s.q.Exec(ctx, `UPDATE migration_mailboxes SET
		status = CASE WHEN status = 'skipped' THEN status ELSE $2 END,
		last_error = CASE WHEN status = 'skipped' THEN last_error ELSE nullif($3, '') END,
		updated_at = now() WHERE id = $1`, id, status, lastError)
	if err != nil {
		return fmt.Errorf("set mailbox %d status %s: %w", id, status, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set mailbox %d status: %w", id, ErrNotFound)
	}
	return nil
}
