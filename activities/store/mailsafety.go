package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reasons of a mail_deletions row.
const (
	DeletedSourceGone  = "source_gone"   // a copy this job placed; its source message is gone
	DeletedNotOnSource = "not_on_source" // strict_mirror: a destination message the source lacks
)

// MailDeletion is a mail_deletions row: one message a pass deleted on the destination.
type MailDeletion struct {
	ID          int64     `db:"id"`
	MailboxID   int64     `db:"mailbox_id"`
	RunID       *int64    `db:"run_id"`
	DestFolder  string    `db:"dest_folder"`
	DestUID     int64     `db:"dest_uid"`
	Identity    string    `db:"identity"`
	Description string    `db:"description"`
	Size        int64     `db:"size"`
	Mode        string    `db:"mode"`
	Reason      string    `db:"reason"`
	DeletedAt   time.Time `db:"deleted_at"`
}

// RecordMailDeletions writes deletion records; the engine writes them before it expunges, so
// no deletion ever goes unrecorded (a record whose expunge failed names a message still there,
// which verification then shows as an extra).
func (s *Store) RecordMailDeletions(ctx context.Context, ds []MailDeletion) error {
	if len(ds) == 0 {
		return nil
	}
	rows := make([][]any, len(ds))
	for i, d := range ds {
		rows[i] = []any{d.MailboxID, d.RunID, d.DestFolder, d.DestUID, d.Identity, d.Description, d.Size, d.Mode, d.Reason}
	}
	_, err := s.q.CopyFrom(ctx, pgx.Identifier{"mail_deletions"},
		[]string{"mailbox_id", "run_id", "dest_folder", "dest_uid", "identity", "description", "size", "mode", "reason"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("record %d deletions of mailbox %d: %w", len(ds), ds[0].MailboxID, err)
	}
	return nil
}

// ListMailDeletions returns a mailbox's deletion records, oldest first.
func (s *Store) ListMailDeletions(ctx context.Context, mailboxID int64) ([]MailDeletion, error) {
	rows, err := s.q.Query(ctx, `SELECT id, mailbox_id, run_id, dest_folder, dest_uid, identity, description, size,
			mode, reason, deleted_at
		FROM mail_deletions WHERE mailbox_id = $1 ORDER BY id`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("deletions of mailbox %d: %w", mailboxID, err)
	}
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailDeletion])
	if err != nil {
		return nil, fmt.Errorf("deletions of mailbox %d: %w", mailboxID, err)
	}
	return ds, nil
}

// DeletionCount is one mailbox's deletions by reason, for reports.
type DeletionCount struct {
	MailboxID int64  `db:"mailbox_id"`
	Reason    string `db:"reason"`
	Mode      string `db:"mode"`
	Messages  int64  `db:"messages"`
	Bytes     int64  `db:"bytes"`
}

// CountMailDeletions sums a job's deletions per mailbox, reason and mode.
func (s *Store) CountMailDeletions(ctx context.Context, jobID int64) ([]DeletionCount, error) {
	rows, err := s.q.Query(ctx, `SELECT d.mailbox_id, d.reason, d.mode, count(*) AS messages,
			coalesce(sum(d.size), 0)::bigint AS bytes
		FROM mail_deletions d JOIN migration_mailboxes m ON m.id = d.mailbox_id
		WHERE m.job_id = $1 GROUP BY d.mailbox_id, d.reason, d.mode ORDER BY d.mailbox_id, d.reason, d.mode`, jobID)
	if err != nil {
		return nil, fmt.Errorf("deletions of job %d: %w", jobID, err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByName[DeletionCount])
	if err != nil {
		return nil, fmt.Errorf("deletions of job %d: %w", jobID, err)
	}
	return cs, nil
}

// MailClaim is a ledger row claiming a destination message: the copy of SourceUID of FolderID.
type MailClaim struct {
	FolderID  int64  `db:"folder_id"`
	SourceUID int64  `db:"source_uid"`
	DestUID   *int64 `db:"dest_uid"`
	State     string `db:"state"`
	Identity  string `db:"identity"`
}

// MailClaims returns every settled ledger row (copied or adopted) of a mailbox whose copy is in
// the destination folder destName, across the source folders mapped there.
func (s *Store) MailClaims(ctx context.Context, mailboxID int64, destName string) ([]MailClaim, error) {
	rows, err := s.q.Query(ctx, `SELECT m.folder_id, m.source_uid, m.dest_uid, m.state, m.identity
		FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
		WHERE f.mailbox_id = $1 AND f.dest_name = $2 AND m.state <> 'pending'
		ORDER BY m.folder_id, m.source_uid`, mailboxID, destName)
	if err != nil {
		return nil, fmt.Errorf("claims on %q: %w", destName, err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailClaim])
	if err != nil {
		return nil, fmt.Errorf("claims on %q: %w", destName, err)
	}
	return cs, nil
}

// accountCheckLock is the transaction advisory lock (space "mail", key "acct") that makes
// registrations check accounts one at a time.
const (
	accountCheckLockSpace int32 = 0x6d61696c
	accountCheckLockKey   int32 = 0x61636374
)

// LockAccountChecks waits until no other transaction checks accounts and holds that until this
// one ends, so that two jobs registering at once cannot each miss the other's uncommitted
// mailboxes (READ COMMITTED shows neither to the other). Only inside a transaction.
func (s *Store) LockAccountChecks(ctx context.Context) error {
	if _, err := s.q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, accountCheckLockSpace, accountCheckLockKey); err != nil {
		return fmt.Errorf("wait for other jobs' registrations: %w", err)
	}
	return nil
}

// AccountUse is a mailbox of another unfinished job reading or writing an account.
type AccountUse struct {
	JobID int64  `db:"job_id"`
	Email string `db:"email"`
	Phase string `db:"phase"`
	Side  string `db:"side"` // source or dest
	Key   string `db:"key"`  // as jobspec.Spec.Accounts spells it
	Merge bool   `db:"merge"`
}

// AccountsInUse finds mailboxes of other jobs that are neither closed nor failed, and not
// skipped, on any of the accounts named by keys (jobspec.Account spelling).
func (s *Store) AccountsInUse(ctx context.Context, exceptJob int64, keys []string) ([]AccountUse, error) {
	rows, err := s.q.Query(ctx, `SELECT m.job_id, m.email, j.phase, x.side, x.key,
			coalesce((m.spec_json->>'merge')::boolean, false) AS merge
		FROM migration_mailboxes m JOIN migration_jobs j ON j.id = m.job_id
		CROSS JOIN LATERAL (VALUES
			('dest', lower(coalesce(j.dest_imap_host, '') || '/' || coalesce(m.spec_json->>'dest_user', m.email))),
			('source', CASE WHEN m.source_type IN ('pst', 'mbox', 'eml', 'tgz')
					OR (m.source_type IN ('zimbra', 'dovecot') AND coalesce(m.pst_path, '') <> '')
				THEN 'file:' || m.pst_path
				ELSE lower(coalesce(m.source_host, '') || '/' || coalesce(m.source_user, '')) END)) AS x(side, key)
		WHERE m.job_id <> $1 AND j.phase NOT IN ('closed', 'failed') AND m.status <> 'skipped' AND x.key = ANY($2)
		ORDER BY m.job_id, m.email, x.side`, exceptJob, keys)
	if err != nil {
		return nil, fmt.Errorf("accounts in use by other jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[AccountUse])
	if err != nil {
		return nil, fmt.Errorf("accounts in use by other jobs: %w", err)
	}
	return out, nil
}
