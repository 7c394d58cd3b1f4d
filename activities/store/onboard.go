package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// InsertCredentials stores many encrypted secrets in one round trip.
func (s *Store) InsertCredentials(ctx context.Context, cs []Credential) error {
	if len(cs) == 0 {
		return nil
	}
	_, err := s.q.CopyFrom(ctx, pgx.Identifier{"migration_credentials"}, []string{"id", "mailbox_id", "secret_blob", "expires_at"},
		pgx.CopyFromSlice(len(cs), func(i int) ([]any, error) {
			return []any{cs[i].ID, cs[i].MailboxID, cs[i].SecretBlob, cs[i].ExpiresAt}, nil
		}))
	if err != nil {
		return fmt.Errorf("insert %d credentials: %w", len(cs), err)
	}
	return nil
}

// MailboxRefs are the vault references a registered mailbox logs in with.
type MailboxRefs struct {
	ID     int64
	Source string // credentials_ref
	Dest   string // its spec entry's dest_credentials_ref
}

// JobMailboxRefs returns every mailbox of a job (skipped ones included) by email.
func (s *Store) JobMailboxRefs(ctx context.Context, jobID int64) (map[string]MailboxRefs, error) {
	rows, err := s.q.Query(ctx, `SELECT email, id, coalesce(credentials_ref, ''),
		coalesce(spec_json->>'dest_credentials_ref', '') FROM migration_mailboxes WHERE job_id = $1`, jobID)
	if err != nil {
		return nil, fmt.Errorf("mailbox refs of job %d: %w", jobID, err)
	}
	defer rows.Close()
	out := map[string]MailboxRefs{}
	for rows.Next() {
		var email string
		var r MailboxRefs
		if err := rows.Scan(&email, &r.ID, &r.Source, &r.Dest); err != nil {
			return nil, fmt.Errorf("mailbox refs of job %d: %w", jobID, err)
		}
		out[email] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mailbox refs of job %d: %w", jobID, err)
	}
	return out, nil
}

// AttachJobCredentials links every stored secret a mailbox of the job refers to (source or
// destination) to that mailbox; it returns how many links changed.
func (s *Store) AttachJobCredentials(ctx context.Context, jobID int64) (int64, error) {
	tag, err := s.q.Exec(ctx, `UPDATE migration_credentials c SET mailbox_id = m.id, updated_at = now()
		FROM migration_mailboxes m
		WHERE m.job_id = $1 AND c.id::text IN (m.credentials_ref, m.spec_json->>'dest_credentials_ref')
			AND c.mailbox_id IS DISTINCT FROM m.id`, jobID)
	if err != nil {
		return 0, fmt.Errorf("attach credentials of job %d: %w", jobID, err)
	}
	return tag.RowsAffected(), nil
}
