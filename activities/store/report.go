package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Repository methods of the operator reports (activities/report) and the phase timing behind
// the cutover_phase_duration_seconds metric: migration 0007.

// PhaseSpan is a migration_phase_log row: one stay in one phase.
type PhaseSpan struct {
	Phase     string     `db:"phase" json:"phase"`
	EnteredAt time.Time  `db:"entered_at" json:"entered_at"`
	LeftAt    *time.Time `db:"left_at" json:"left_at,omitempty"`
}

// Duration is how long the stay lasted, or has lasted until now when still open.
func (p PhaseSpan) Duration(now time.Time) time.Duration {
	if p.LeftAt != nil {
		return p.LeftAt.Sub(p.EnteredAt)
	}
	return now.Sub(p.EnteredAt)
}

// EnterPhase records that a migration (kind email or database, ref its job id or UUID) is now
// in phase. When that ends a stay in another phase, the closed stay is returned; entering the
// phase it is already in changes nothing (both results zero). Safe to repeat.
func (s *Store) EnterPhase(ctx context.Context, kind, ref, phase string) (left *PhaseSpan, entered bool, err error) {
	rows, err := s.q.Query(ctx, `UPDATE migration_phase_log SET left_at = greatest(clock_timestamp(), entered_at)
		WHERE kind = $1 AND ref = $2 AND left_at IS NULL AND phase <> $3
		RETURNING phase, entered_at, left_at`, kind, ref, phase)
	if err != nil {
		return nil, false, fmt.Errorf("close phase of %s %s: %w", kind, ref, err)
	}
	closed, err := pgx.CollectRows(rows, pgx.RowToStructByName[PhaseSpan])
	if err != nil {
		return nil, false, fmt.Errorf("close phase of %s %s: %w", kind, ref, err)
	}
	if len(closed) > 0 {
		left = &closed[0]
	}
	tag, err := s.q.Exec(ctx, `INSERT INTO migration_phase_log (kind, ref, phase) VALUES ($1, $2, $3)
		ON CONFLICT (kind, ref) WHERE left_at IS NULL DO NOTHING`, kind, ref, phase)
	if err != nil {
		return left, false, fmt.Errorf("enter phase %s of %s %s: %w", phase, kind, ref, err)
	}
	return left, tag.RowsAffected() == 1, nil
}

// ListPhases returns a migration's phase stays in order.
func (s *Store) ListPhases(ctx context.Context, kind, ref string) ([]PhaseSpan, error) {
	rows, err := s.q.Query(ctx, `SELECT phase, entered_at, left_at FROM migration_phase_log
		WHERE kind = $1 AND ref = $2 ORDER BY entered_at, id`, kind, ref)
	if err != nil {
		return nil, fmt.Errorf("phases of %s %s: %w", kind, ref, err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByName[PhaseSpan])
	if err != nil {
		return nil, fmt.Errorf("phases of %s %s: %w", kind, ref, err)
	}
	return ps, nil
}

// ListGateChecks returns every evaluation of a job's gate, oldest first.
func (s *Store) ListGateChecks(ctx context.Context, jobID int64) ([]GateCheck, error) {
	rows, err := s.q.Query(ctx, `SELECT id, job_id, check_id, status, message, checked_at, accepted_by, accepted_at,
			accept_reason
		FROM migration_gate_checks WHERE job_id = $1 ORDER BY checked_at, id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("gate checks of job %d: %w", jobID, err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByName[GateCheck])
	if err != nil {
		return nil, fmt.Errorf("gate checks of job %d: %w", jobID, err)
	}
	return cs, nil
}

// QuarantinedMessage is an unresolved mail_quarantine row with the names a report shows.
type QuarantinedMessage struct {
	MailQuarantine
	Email  string `db:"email"`
	Folder string `db:"folder"`
}

// ListJobQuarantine returns a job's unresolved quarantined messages, by mailbox and folder.
func (s *Store) ListJobQuarantine(ctx context.Context, jobID int64) ([]QuarantinedMessage, error) {
	rows, err := s.q.Query(ctx, `SELECT q.id, q.mailbox_id, q.folder_id, q.source_uid, q.identity, q.description,
			q.size, q.internal_date, q.error_class, q.reason, q.retry, q.attempts, q.run_id, q.first_seen_at,
			q.last_seen_at, q.resolved_at, m.email, f.source_name AS folder
		FROM mail_quarantine q JOIN migration_mailboxes m ON m.id = q.mailbox_id JOIN mail_folders f ON f.id = q.folder_id
		WHERE m.job_id = $1 AND q.resolved_at IS NULL ORDER BY m.email, f.source_name, q.source_uid`, jobID)
	if err != nil {
		return nil, fmt.Errorf("quarantine of job %d: %w", jobID, err)
	}
	qs, err := pgx.CollectRows(rows, pgx.RowToStructByName[QuarantinedMessage])
	if err != nil {
		return nil, fmt.Errorf("quarantine of job %d: %w", jobID, err)
	}
	return qs, nil
}

// ReportKey is the idempotency key of a job's report run: one row per job, rewritten by every
// report so log_path always names the newest.
func ReportKey(jobID int64) string { return fmt.Sprintf("report/%d", jobID) }

// JobReportPath returns the path of a job's latest report, "" when none was written.
func (s *Store) JobReportPath(ctx context.Context, jobID int64) (string, error) {
	var path string
	err := s.q.QueryRow(ctx, `SELECT log_path FROM migration_runs WHERE idempotency_key = $1 AND job_id = $2`,
		ReportKey(jobID), jobID).Scan(&path)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("report of job %d: %w", jobID, err)
	}
	return path, nil
}

// SetOrchestrationReport records where a database migration's report was written.
func (s *Store) SetOrchestrationReport(ctx context.Context, id uuid.UUID, path string) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_orchestrations SET report_path = $2, updated_at = now() WHERE id = $1`, id, path)
	if err != nil {
		return fmt.Errorf("record report of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record report of %s: %w", id, ErrNotFound)
	}
	return nil
}

// OrchestrationReport returns where a database migration's report was written ("" if not yet).
func (s *Store) OrchestrationReport(ctx context.Context, id uuid.UUID) (string, error) {
	var path *string
	if err := s.q.QueryRow(ctx, `SELECT report_path FROM migration_orchestrations WHERE id = $1`, id).Scan(&path); err != nil {
		return "", notFound(err, "orchestration", id)
	}
	if path == nil {
		return "", nil
	}
	return *path, nil
}

// LedgerMessageCounts counts, per mailbox email of a job, the messages the sync ledger maps to
// the destination (copied or adopted) right now: live progress while a pass runs, which the
// mailbox row only shows once the pass ends.
func (s *Store) LedgerMessageCounts(ctx context.Context, jobID int64, emails []string) (map[string]int64, error) {
	rows, err := s.q.Query(ctx, `SELECT mb.email, count(*) FROM migration_mailboxes mb
		JOIN mail_folders f ON f.mailbox_id = mb.id JOIN mail_messages m ON m.folder_id = f.id
		WHERE mb.job_id = $1 AND mb.email = ANY($2) AND m.state IN ('copied', 'adopted') GROUP BY mb.email`, jobID, emails)
	if err != nil {
		return nil, fmt.Errorf("ledger counts of job %d: %w", jobID, err)
	}
	out := map[string]int64{}
	var email string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&email, &n}, func() error { out[email] = n; return nil }); err != nil {
		return nil, fmt.Errorf("ledger counts of job %d: %w", jobID, err)
	}
	return out, nil
}
