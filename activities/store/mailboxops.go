package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MailboxSkip is a mailbox an operator took out of its job, with who, when and why.
type MailboxSkip struct {
	MailboxID int64     `db:"id"`
	Email     string    `db:"email"`
	By        string    `db:"skipped_by"`
	At        time.Time `db:"skipped_at"`
	Reason    string    `db:"skip_reason"`
}

// SkipMailbox marks a job's mailbox skipped (no pass runs for it; it leaves the gate). It
// reports false when the job has no such mailbox. Skipping a skipped mailbox keeps the first
// record.
func (s *Store) SkipMailbox(ctx context.Context, jobID int64, email, by, reason string, at time.Time) (bool, error) {
	tag, err := s.q.Exec(ctx, `UPDATE migration_mailboxes SET status = 'skipped', skipped_by = $3, skipped_at = $4,
			skip_reason = $5, updated_at = now()
		WHERE job_id = $1 AND email = $2 AND status <> 'skipped'`, jobID, email, by, at, reason)
	if err != nil {
		return false, fmt.Errorf("skip mailbox %s of job %d: %w", email, jobID, err)
	}
	if tag.RowsAffected() > 0 {
		return true, nil
	}
	return s.hasMailbox(ctx, jobID, email)
}

// UnskipMailbox brings a skipped mailbox back (status pending until its next pass).
func (s *Store) UnskipMailbox(ctx context.Context, jobID int64, email string) (bool, error) {
	tag, err := s.q.Exec(ctx, `UPDATE migration_mailboxes SET status = 'pending', skipped_by = NULL, skipped_at = NULL,
			skip_reason = NULL, last_error = NULL, updated_at = now()
		WHERE job_id = $1 AND email = $2 AND status = 'skipped'`, jobID, email)
	if err != nil {
		return false, fmt.Errorf("un-skip mailbox %s of job %d: %w", email, jobID, err)
	}
	if tag.RowsAffected() > 0 {
		return true, nil
	}
	return s.hasMailbox(ctx, jobID, email)
}

func (s *Store) hasMailbox(ctx context.Context, jobID int64, email string) (bool, error) {
	var ok bool
	err := s.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM migration_mailboxes WHERE job_id = $1 AND email = $2)`,
		jobID, email).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("mailbox %s of job %d: %w", email, jobID, err)
	}
	return ok, nil
}

// ListSkips returns a job's skipped mailboxes by email.
func (s *Store) ListSkips(ctx context.Context, jobID int64) ([]MailboxSkip, error) {
	rows, err := s.q.Query(ctx, `SELECT id, email, skipped_by, skipped_at, skip_reason FROM migration_mailboxes
		WHERE job_id = $1 AND status = 'skipped' ORDER BY email`, jobID)
	if err != nil {
		return nil, fmt.Errorf("skipped mailboxes of job %d: %w", jobID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailboxSkip])
	if err != nil {
		return nil, fmt.Errorf("skipped mailboxes of job %d: %w", jobID, err)
	}
	return out, nil
}

// SetMailboxCredentials gives a mailbox a new credentials_ref for one side ("source" or
// "dest"): in its spec entry (which the next pass reads) and, for the source, in the row's
// credentials_ref column. It reports false when the job has no such mailbox.
func (s *Store) SetMailboxCredentials(ctx context.Context, jobID int64, email, side, ref string) (bool, error) {
	key := map[string]string{"source": "credentials_ref", "dest": "dest_credentials_ref"}[side]
	if key == "" {
		return false, fmt.Errorf("set credentials of %s: side %q: want source or dest", email, side)
	}
	val, err := json.Marshal(ref)
	if err != nil {
		return false, err
	}
	tag, err := s.q.Exec(ctx, `UPDATE migration_mailboxes SET
			spec_json = jsonb_set(coalesce(spec_json, jsonb_build_object('email', email)), ARRAY[$3::text], $4::jsonb),
			credentials_ref = CASE WHEN $3 = 'credentials_ref' THEN $5 ELSE credentials_ref END, updated_at = now()
		WHERE job_id = $1 AND email = $2`, jobID, email, key, string(val), ref)
	if err != nil {
		return false, fmt.Errorf("set %s credentials of mailbox %s of job %d: %w", side, email, jobID, err)
	}
	return tag.RowsAffected() > 0, nil
}

// SkipMailboxesNotIn skips the job's mailboxes whose email is not in emails (a restart with a
// spec that no longer lists them) and returns them.
func (s *Store) SkipMailboxesNotIn(ctx context.Context, jobID int64, emails []string, by, reason string,
	at time.Time) ([]string, error) {
	rows, err := s.q.Query(ctx, `UPDATE migration_mailboxes SET status = 'skipped', skipped_by = $3, skipped_at = $4,
			skip_reason = $5, updated_at = now()
		WHERE job_id = $1 AND NOT (email = ANY($2)) AND status <> 'skipped' RETURNING email`, jobID, emails, by, at, reason)
	if err != nil {
		return nil, fmt.Errorf("skip mailboxes left out of job %d's spec: %w", jobID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("skip mailboxes left out of job %d's spec: %w", jobID, err)
	}
	return out, nil
}
