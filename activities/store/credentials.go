package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Credential is a migration_credentials row. SecretBlob is ciphertext; only the vault reads it.
type Credential struct {
	ID         uuid.UUID  `db:"id"`
	MailboxID  *int64     `db:"mailbox_id"`
	SecretBlob []byte     `db:"secret_blob"`
	CreatedAt  time.Time  `db:"created_at"`
	UpdatedAt  time.Time  `db:"updated_at"`
	ExpiresAt  *time.Time `db:"expires_at"`
}

// InsertCredential stores an encrypted secret.
func (s *Store) InsertCredential(ctx context.Context, c Credential) error {
	if _, err := s.q.Exec(ctx, `INSERT INTO migration_credentials (id, mailbox_id, secret_blob, expires_at)
		VALUES ($1, $2, $3, $4)`, c.ID, c.MailboxID, c.SecretBlob, c.ExpiresAt); err != nil {
		return fmt.Errorf("insert credential %s: %w", c.ID, err)
	}
	return nil
}

// GetCredential reads one encrypted secret.
func (s *Store) GetCredential(ctx context.Context, id uuid.UUID) (Credential, error) {
	rows, err := s.q.Query(ctx, `SELECT id, mailbox_id, secret_blob, created_at, updated_at, expires_at
		FROM migration_credentials WHERE id = $1`, id)
	if err != nil {
		return Credential{}, notFound(err, "credential", id)
	}
	c, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Credential])
	if err != nil {
		return Credential{}, notFound(err, "credential", id)
	}
	return c, nil
}

// ListCredentialIDs returns every credential id (for key rotation).
func (s *Store) ListCredentialIDs(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.q.Query(ctx, `SELECT id FROM migration_credentials ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return ids, nil
}

// UpdateCredential replaces the ciphertext (a refreshed token, a re-encryption under a new key).
func (s *Store) UpdateCredential(ctx context.Context, id uuid.UUID, blob []byte, expiresAt *time.Time) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_credentials SET secret_blob = $2, expires_at = $3, updated_at = now()
		WHERE id = $1`, id, blob, expiresAt)
	if err != nil {
		return fmt.Errorf("update credential %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update credential %s: %w", id, ErrNotFound)
	}
	return nil
}

// AttachCredential links a stored secret to the mailbox that uses it.
func (s *Store) AttachCredential(ctx context.Context, id uuid.UUID, mailboxID int64) error {
	tag, err := s.q.Exec(ctx, `UPDATE migration_credentials SET mailbox_id = $2, updated_at = now() WHERE id = $1`,
		id, mailboxID)
	if err != nil {
		return fmt.Errorf("attach credential %s to mailbox %d: %w", id, mailboxID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("attach credential %s: %w", id, ErrNotFound)
	}
	return nil
}
