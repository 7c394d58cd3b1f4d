package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SetMailDestIdentities records the identities the destination gave copies (see
// MailMessage.DestIdentity), by source UID.
func (s *Store) SetMailDestIdentities(ctx context.Context, folderID int64, srcUIDs []int64, identities []string) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	_, err := s.q.Exec(ctx, `UPDATE mail_messages m SET dest_identity = t.i
		FROM unnest($2::bigint[], $3::text[]) AS t(u, i)
		WHERE m.folder_id = $1 AND m.source_uid = t.u`, folderID, srcUIDs, identities)
	if err != nil {
		return fmt.Errorf("set dest identities of %d mail messages of folder %d: %w", len(srcUIDs), folderID, err)
	}
	return nil
}

// MailDestIdentitiesUnread returns a folder's copies whose destination identity was not read
// yet, in source UID order.
func (s *Store) MailDestIdentitiesUnread(ctx context.Context, folderID int64) ([]MailMessage, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailMessageColumns+` FROM mail_messages
		WHERE folder_id = $1 AND state <> 'pending' AND dest_uid IS NOT NULL AND dest_identity IS NULL
		ORDER BY source_uid`, folderID)
	if err != nil {
		return nil, fmt.Errorf("unread dest identities of folder %d: %w", folderID, err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailMessage])
	if err != nil {
		return nil, fmt.Errorf("unread dest identities of folder %d: %w", folderID, err)
	}
	return ms, nil
}

// ResetMailFolderKeepingClaims is ResetMailFolder for a source whose UIDVALIDITY changed while
// the destination folder stayed the same: the folder's copies become prior claims (see
// mail_prior_claims), replacing older claims on the same destination UIDs, in the same
// transaction as the reset.
func (s *Store) ResetMailFolderKeepingClaims(ctx context.Context, id, uidValidity int64) error {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO mail_prior_claims (folder_id, dest_name, dest_uidvalidity, dest_uid, state, identity,
			dest_identity, size, flags, flags_unsure)
		SELECT m.folder_id, f.dest_name, f.dest_uidvalidity, m.dest_uid, m.state, m.identity, m.dest_identity,
			m.size, m.flags, m.flags_unsure
		FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
		WHERE m.folder_id = $1 AND m.state <> 'pending' AND m.dest_uid IS NOT NULL AND f.dest_uidvalidity > 0
		ON CONFLICT (folder_id, dest_uid) DO UPDATE SET dest_name = EXCLUDED.dest_name,
			dest_uidvalidity = EXCLUDED.dest_uidvalidity, state = EXCLUDED.state, identity = EXCLUDED.identity,
			dest_identity = EXCLUDED.dest_identity, size = EXCLUDED.size, flags = EXCLUDED.flags,
			flags_unsure = EXCLUDED.flags_unsure, recorded_at = now()`, id)
	b.Queue(`DELETE FROM mail_messages WHERE folder_id = $1`, id)
	b.Queue(`DELETE FROM mail_quarantine WHERE folder_id = $1`, id)
	b.Queue(`UPDATE mail_folders SET uidvalidity = $2, highest_uid = 0, highest_modseq = 0, window_key = '',
		source_messages = 0, source_uidnext = 0, updated_at = now() WHERE id = $1`, id, uidValidity)
	if err := s.q.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("reset mail folder %d keeping its claims: %w", id, err)
	}
	return nil
}

// MailPriorClaim is a mail_prior_claims row.
type MailPriorClaim struct {
	FolderID        int64    `db:"folder_id"`
	DestName        string   `db:"dest_name"`
	DestUIDValidity int64    `db:"dest_uidvalidity"`
	DestUID         int64    `db:"dest_uid"`
	State           string   `db:"state"`
	Identity        string   `db:"identity"`
	DestIdentity    *string  `db:"dest_identity"`
	Size            int64    `db:"size"`
	Flags           []string `db:"flags"`
	// FlagsUnsure: the copy's flags were unsure (see MailMessage.FlagsUnsure) when the claim
	// was made; Flags may not be what the destination holds.
	FlagsUnsure bool `db:"flags_unsure"`
}

// MailPriorClaims returns a folder's prior claims on a destination folder as it is now (name
// and UIDVALIDITY), deleting the others: their UIDs name nothing any more.
func (s *Store) MailPriorClaims(ctx context.Context, folderID int64, destName string, destUIDValidity int64) ([]MailPriorClaim, error) {
	if _, err := s.q.Exec(ctx, `DELETE FROM mail_prior_claims WHERE folder_id = $1
		AND (dest_name <> $2 OR dest_uidvalidity <> $3)`, folderID, destName, destUIDValidity); err != nil {
		return nil, fmt.Errorf("drop stale prior claims of folder %d: %w", folderID, err)
	}
	rows, err := s.q.Query(ctx, `SELECT folder_id, dest_name, dest_uidvalidity, dest_uid, state, identity,
			dest_identity, size, flags, flags_unsure
		FROM mail_prior_claims WHERE folder_id = $1 ORDER BY dest_uid`, folderID)
	if err != nil {
		return nil, fmt.Errorf("prior claims of folder %d: %w", folderID, err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailPriorClaim])
	if err != nil {
		return nil, fmt.Errorf("prior claims of folder %d: %w", folderID, err)
	}
	return cs, nil
}

// DeleteMailPriorClaims drops claims by destination UID (adopted again, or gone).
func (s *Store) DeleteMailPriorClaims(ctx context.Context, folderID int64, destUIDs []int64) error {
	if len(destUIDs) == 0 {
		return nil
	}
	if _, err := s.q.Exec(ctx, `DELETE FROM mail_prior_claims WHERE folder_id = $1 AND dest_uid = ANY($2)`,
		folderID, destUIDs); err != nil {
		return fmt.Errorf("delete %d prior claims of folder %d: %w", len(destUIDs), folderID, err)
	}
	return nil
}

// DeleteMailFolder forgets a source folder of a mailbox with everything the ledger holds for
// it (its destination folder was deleted).
func (s *Store) DeleteMailFolder(ctx context.Context, id int64) error {
	if _, err := s.q.Exec(ctx, `DELETE FROM mail_folders WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete mail folder %d: %w", id, err)
	}
	return nil
}
