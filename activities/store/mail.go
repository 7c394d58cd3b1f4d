package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MailFolder is a mail_folders row: one source folder of a mailbox and its sync marks.
type MailFolder struct {
	ID              int64     `db:"id"`
	MailboxID       int64     `db:"mailbox_id"`
	SourceName      string    `db:"source_name"`
	DestName        string    `db:"dest_name"`
	SpecialUse      string    `db:"special_use"`
	UIDValidity     int64     `db:"uidvalidity"`
	HighestUID      int64     `db:"highest_uid"`
	HighestModSeq   int64     `db:"highest_modseq"`
	DestUIDValidity int64     `db:"dest_uidvalidity"`
	WindowKey       string    `db:"window_key"`
	SourceMessages  int64     `db:"source_messages"`
	SourceUIDNext   int64     `db:"source_uidnext"`
	UpdatedAt       time.Time `db:"updated_at"`
}

const mailFolderColumns = `id, mailbox_id, source_name, dest_name, special_use, uidvalidity, highest_uid,
	highest_modseq, dest_uidvalidity, window_key, source_messages, source_uidnext, updated_at`

// EnsureMailFolder returns the folder's row, creating it with zero marks. An existing row keeps
// its marks and destination name: the engine compares them and resets explicitly.
func (s *Store) EnsureMailFolder(ctx context.Context, mailboxID int64, sourceName, destName, specialUse string) (MailFolder, error) {
	rows, err := s.q.Query(ctx, `INSERT INTO mail_folders (mailbox_id, source_name, dest_name, special_use)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (mailbox_id, source_name) DO UPDATE SET special_use = EXCLUDED.special_use
		RETURNING `+mailFolderColumns, mailboxID, sourceName, destName, specialUse)
	if err != nil {
		return MailFolder{}, fmt.Errorf("ensure mail folder %q of mailbox %d: %w", sourceName, mailboxID, err)
	}
	f, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[MailFolder])
	if err != nil {
		return MailFolder{}, fmt.Errorf("ensure mail folder %q of mailbox %d: %w", sourceName, mailboxID, err)
	}
	return f, nil
}

// ListMailFolders returns a mailbox's folders ordered by source name.
func (s *Store) ListMailFolders(ctx context.Context, mailboxID int64) ([]MailFolder, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailFolderColumns+` FROM mail_folders WHERE mailbox_id = $1
		ORDER BY source_name`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("list mail folders of mailbox %d: %w", mailboxID, err)
	}
	fs, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailFolder])
	if err != nil {
		return nil, fmt.Errorf("list mail folders of mailbox %d: %w", mailboxID, err)
	}
	return fs, nil
}

// ResetMailFolder forgets a folder's messages and marks (source UIDVALIDITY changed, the
// destination folder changed): the next pass re-identifies messages against the destination.
// Quarantine rows go too: their source UIDs no longer mean anything.
func (s *Store) ResetMailFolder(ctx context.Context, id int64, uidValidity int64, destName string) error {
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM mail_messages WHERE folder_id = $1`, id)
	b.Queue(`DELETE FROM mail_quarantine WHERE folder_id = $1`, id)
	b.Queue(`UPDATE mail_folders SET uidvalidity = $2, dest_name = $3, highest_uid = 0, highest_modseq = 0,
		dest_uidvalidity = 0, window_key = '', source_messages = 0, source_uidnext = 0, updated_at = now()
		WHERE id = $1`, id, uidValidity, destName)
	if err := s.q.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("reset mail folder %d: %w", id, err)
	}
	return nil
}

// MailFolderMarks are the marks a pass records for a folder.
type MailFolderMarks struct {
	HighestUID, HighestModSeq, DestUIDValidity int64
	WindowKey                                  string
	SourceMessages, SourceUIDNext              int64
}

// SetMailFolderMarks records a folder's marks.
func (s *Store) SetMailFolderMarks(ctx context.Context, id int64, m MailFolderMarks) error {
	tag, err := s.q.Exec(ctx, `UPDATE mail_folders SET highest_uid = $2, highest_modseq = $3,
		dest_uidvalidity = $4, window_key = $5, source_messages = $6, source_uidnext = $7, updated_at = now()
		WHERE id = $1`, id, m.HighestUID, m.HighestModSeq, m.DestUIDValidity, m.WindowKey, m.SourceMessages, m.SourceUIDNext)
	if err != nil {
		return fmt.Errorf("set mail folder %d marks: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set mail folder %d marks: %w", id, ErrNotFound)
	}
	return nil
}

// SetMailFolderDestUIDValidity records the destination folder's UIDVALIDITY.
func (s *Store) SetMailFolderDestUIDValidity(ctx context.Context, id, v int64) error {
	if _, err := s.q.Exec(ctx, `UPDATE mail_folders SET dest_uidvalidity = $2 WHERE id = $1`, id, v); err != nil {
		return fmt.Errorf("set mail folder %d dest uidvalidity: %w", id, err)
	}
	return nil
}

// Message states of mail_messages.state.
const (
	MailPending = "pending"
	MailCopied  = "copied"
	MailAdopted = "adopted"
)

// MailMessage is a mail_messages row.
type MailMessage struct {
	FolderID     int64      `db:"folder_id"`
	SourceUID    int64      `db:"source_uid"`
	DestUID      *int64     `db:"dest_uid"`
	State        string     `db:"state"`
	Identity     string     `db:"identity"`
	Size         int64      `db:"size"`
	Flags        []string   `db:"flags"`
	InternalDate *time.Time `db:"internal_date"`
	// DestIdentity is the identity of the copy as the destination stored it (nil until read).
	DestIdentity *string `db:"dest_identity"`
	// DroppedFlags are keywords of the source message the destination refused to store.
	DroppedFlags []string `db:"dropped_flags"`
	// FlagsUnsure: a flag change was sent and its outcome not recorded; Flags may be wrong.
	FlagsUnsure bool `db:"flags_unsure"`
}

const mailMessageColumns = `folder_id, source_uid, dest_uid, state, identity, size, flags, internal_date, dest_identity,
	dropped_flags, flags_unsure`

// PutMailMessages inserts or replaces ledger rows (one statement for the whole slice).
func (s *Store) PutMailMessages(ctx context.Context, ms []MailMessage) error {
	if len(ms) == 0 {
		return nil
	}
	n := len(ms)
	folder, uid, dest := make([]int64, n), make([]int64, n), make([]*int64, n)
	state, ident, flags, destIdent := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	size, date, dropped, unsure := make([]int64, n), make([]*time.Time, n), make([]string, n), make([]bool, n)
	for i, m := range ms {
		folder[i], uid[i], dest[i], state[i], ident[i], size[i], date[i], destIdent[i] =
			m.FolderID, m.SourceUID, m.DestUID, m.State, m.Identity, m.Size, m.InternalDate, m.DestIdentity
		flags[i], dropped[i], unsure[i] = strings.Join(m.Flags, " "), strings.Join(m.DroppedFlags, " "), m.FlagsUnsure
	}
	_, err := s.q.Exec(ctx, `INSERT INTO mail_messages
		(folder_id, source_uid, dest_uid, state, identity, size, flags, internal_date, dest_identity, dropped_flags,
			flags_unsure)
		SELECT f, u, d, st, i, sz, coalesce(string_to_array(nullif(fl, ''), ' '), '{}'), dt, di,
			coalesce(string_to_array(nullif(dr, ''), ' '), '{}'), un
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[],
			$8::timestamptz[], $9::text[], $10::text[], $11::boolean[]) AS t(f, u, d, st, i, sz, fl, dt, di, dr, un)
		ON CONFLICT (folder_id, source_uid) DO UPDATE SET dest_uid = EXCLUDED.dest_uid, state = EXCLUDED.state,
			identity = EXCLUDED.identity, size = EXCLUDED.size, flags = EXCLUDED.flags,
			internal_date = EXCLUDED.internal_date, dest_identity = EXCLUDED.dest_identity,
			dropped_flags = EXCLUDED.dropped_flags, flags_unsure = EXCLUDED.flags_unsure`,
		folder, uid, dest, state, ident, size, flags, date, destIdent, dropped, unsure)
	if err != nil {
		return fmt.Errorf("put %d mail messages: %w", n, err)
	}
	return nil
}

// ConfirmMailMessages turns pending rows into copied or adopted ones with their destination UIDs
// (0 = unknown).
func (s *Store) ConfirmMailMessages(ctx context.Context, folderID int64, state string, srcUIDs, destUIDs []int64) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	_, err := s.q.Exec(ctx, `UPDATE mail_messages m SET state = $2, dest_uid = nullif(t.d, 0)
		FROM unnest($3::bigint[], $4::bigint[]) AS t(u, d)
		WHERE m.folder_id = $1 AND m.source_uid = t.u`, folderID, state, srcUIDs, destUIDs)
	if err != nil {
		return fmt.Errorf("confirm %d mail messages of folder %d: %w", len(srcUIDs), folderID, err)
	}
	return nil
}

// DeleteMailMessages removes ledger rows (a refused batch's pending rows, source messages gone
// in mirror mode).
func (s *Store) DeleteMailMessages(ctx context.Context, folderID int64, srcUIDs []int64) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	if _, err := s.q.Exec(ctx, `DELETE FROM mail_messages WHERE folder_id = $1 AND source_uid = ANY($2)`,
		folderID, srcUIDs); err != nil {
		return fmt.Errorf("delete %d mail messages of folder %d: %w", len(srcUIDs), folderID, err)
	}
	return nil
}

// SetMailMessageFlags records the flags now on the destination (and that they are known).
func (s *Store) SetMailMessageFlags(ctx context.Context, folderID int64, srcUIDs []int64, flags [][]string) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	joined := make([]string, len(flags))
	for i, f := range flags {
		joined[i] = strings.Join(f, " ")
	}
	_, err := s.q.Exec(ctx, `UPDATE mail_messages m SET flags = coalesce(string_to_array(nullif(t.fl, ''), ' '), '{}'),
			flags_unsure = false
		FROM unnest($2::bigint[], $3::text[]) AS t(u, fl)
		WHERE m.folder_id = $1 AND m.source_uid = t.u`, folderID, srcUIDs, joined)
	if err != nil {
		return fmt.Errorf("set flags of %d mail messages of folder %d: %w", len(srcUIDs), folderID, err)
	}
	return nil
}

// MailMessages returns a folder's ledger rows in source UID order; aboveUID > 0 restricts to
// UIDs above it, and uids, when non-nil, to those UIDs.
func (s *Store) MailMessages(ctx context.Context, folderID, aboveUID int64, uids []int64) ([]MailMessage, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailMessageColumns+` FROM mail_messages
		WHERE folder_id = $1 AND source_uid > $2 AND ($3::bigint[] IS NULL OR source_uid = ANY($3))
		ORDER BY source_uid`, folderID, aboveUID, uids)
	if err != nil {
		return nil, fmt.Errorf("mail messages of folder %d: %w", folderID, err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailMessage])
	if err != nil {
		return nil, fmt.Errorf("mail messages of folder %d: %w", folderID, err)
	}
	return ms, nil
}

// MailSourceUIDs returns the source UIDs a folder's ledger knows above aboveUID (any state).
func (s *Store) MailSourceUIDs(ctx context.Context, folderID, aboveUID int64) ([]int64, error) {
	rows, err := s.q.Query(ctx, `SELECT source_uid FROM mail_messages WHERE folder_id = $1 AND source_uid > $2
		ORDER BY source_uid`, folderID, aboveUID)
	if err != nil {
		return nil, fmt.Errorf("source uids of folder %d: %w", folderID, err)
	}
	uids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("source uids of folder %d: %w", folderID, err)
	}
	return uids, nil
}

// MailDestUIDs returns the destination UIDs the ledger claims in a destination folder, across
// every source folder of the mailbox mapped there.
func (s *Store) MailDestUIDs(ctx context.Context, mailboxID int64, destName string) ([]int64, error) {
	rows, err := s.q.Query(ctx, `SELECT m.dest_uid FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
		WHERE f.mailbox_id = $1 AND f.dest_name = $2 AND m.dest_uid IS NOT NULL ORDER BY m.dest_uid`, mailboxID, destName)
	if err != nil {
		return nil, fmt.Errorf("dest uids of %q: %w", destName, err)
	}
	uids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("dest uids of %q: %w", destName, err)
	}
	return uids, nil
}

// WatchLateCopies records identities of a folder that were copied again because an interrupted
// APPEND of theirs was not found on the destination: that APPEND may still land later.
func (s *Store) WatchLateCopies(ctx context.Context, folderID int64, identities []string) error {
	if len(identities) == 0 {
		return nil
	}
	if _, err := s.q.Exec(ctx, `INSERT INTO mail_late_copy_watch (folder_id, identity)
		SELECT $1, i FROM unnest($2::text[]) AS t(i) ON CONFLICT DO NOTHING`, folderID, identities); err != nil {
		return fmt.Errorf("watch %d late copies of folder %d: %w", len(identities), folderID, err)
	}
	return nil
}

// LateCopyWatches maps each folder of a mailbox (by id) to its watched identities.
func (s *Store) LateCopyWatches(ctx context.Context, mailboxID int64) (map[int64]map[string]bool, error) {
	rows, err := s.q.Query(ctx, `SELECT w.folder_id, w.identity FROM mail_late_copy_watch w
		JOIN mail_folders f ON f.id = w.folder_id WHERE f.mailbox_id = $1`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("late copy watches of mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	out := map[int64]map[string]bool{}
	for rows.Next() {
		var id int64
		var identity string
		if err := rows.Scan(&id, &identity); err != nil {
			return nil, fmt.Errorf("late copy watches of mailbox %d: %w", mailboxID, err)
		}
		if out[id] == nil {
			out[id] = map[string]bool{}
		}
		out[id][identity] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("late copy watches of mailbox %d: %w", mailboxID, err)
	}
	return out, nil
}

// MailFolderCount is a folder's ledger summary.
type MailFolderCount struct {
	FolderID    int64 `db:"folder_id"`
	Messages    int64 `db:"messages"` // copied + adopted
	Bytes       int64 `db:"bytes"`
	Pending     int64 `db:"pending"`
	Quarantined int64 `db:"quarantined"` // unresolved
	Dropped     int64 `db:"dropped"`     // stored without some of their keywords (see MailDroppedKeywords)
}

// MailFolderCounts summarises the ledger of every folder of a mailbox. It reads one row per
// folder and the unresolved quarantine rows, never the folders' messages: PostgreSQL keeps
// the per-folder summaries as the ledger is written (schema migration 0025).
func (s *Store) MailFolderCounts(ctx context.Context, mailboxID int64) (map[int64]MailFolderCount, error) {
	rows, err := s.q.Query(ctx, `SELECT f.id AS folder_id, f.ledger_messages AS messages, f.ledger_bytes AS bytes,
			f.ledger_pending AS pending, coalesce(q.quarantined, 0) AS quarantined, f.ledger_dropped AS dropped
		FROM mail_folders f
		LEFT JOIN (SELECT folder_id, count(*) AS quarantined FROM mail_quarantine
			WHERE mailbox_id = $1 AND resolved_at IS NULL GROUP BY folder_id) q ON q.folder_id = f.id
		WHERE f.mailbox_id = $1`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("mail folder counts of mailbox %d: %w", mailboxID, err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailFolderCount])
	if err != nil {
		return nil, fmt.Errorf("mail folder counts of mailbox %d: %w", mailboxID, err)
	}
	out := make(map[int64]MailFolderCount, len(cs))
	for _, c := range cs {
		out[c.FolderID] = c
	}
	return out, nil
}

// MailQuarantine is a mail_quarantine row.
type MailQuarantine struct {
	ID           int64      `db:"id"`
	MailboxID    int64      `db:"mailbox_id"`
	FolderID     int64      `db:"folder_id"`
	SourceUID    int64      `db:"source_uid"`
	Identity     string     `db:"identity"`
	Description  string     `db:"description"`
	Size         int64      `db:"size"`
	InternalDate *time.Time `db:"internal_date"`
	ErrorClass   string     `db:"error_class"`
	Reason       string     `db:"reason"`
	Retry        bool       `db:"retry"`
	Attempts     int32      `db:"attempts"`
	RunID        *int64     `db:"run_id"`
	FirstSeenAt  time.Time  `db:"first_seen_at"`
	LastSeenAt   time.Time  `db:"last_seen_at"`
	ResolvedAt   *time.Time `db:"resolved_at"`
}

const mailQuarantineColumns = `id, mailbox_id, folder_id, source_uid, identity, description, size, internal_date,
	error_class, reason, retry, attempts, run_id, first_seen_at, last_seen_at, resolved_at`

// QuarantineMailMessage records (or re-records) a refused message.
func (s *Store) QuarantineMailMessage(ctx context.Context, q MailQuarantine) error {
	_, err := s.q.Exec(ctx, `INSERT INTO mail_quarantine (mailbox_id, folder_id, source_uid, identity, description,
			size, internal_date, error_class, reason, retry, run_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (folder_id, source_uid) DO UPDATE SET identity = EXCLUDED.identity,
			description = EXCLUDED.description, size = EXCLUDED.size, error_class = EXCLUDED.error_class,
			reason = EXCLUDED.reason, retry = EXCLUDED.retry, run_id = EXCLUDED.run_id,
			attempts = mail_quarantine.attempts + 1, last_seen_at = now(), resolved_at = NULL`,
		q.MailboxID, q.FolderID, q.SourceUID, q.Identity, q.Description, q.Size, q.InternalDate, q.ErrorClass,
		q.Reason, q.Retry, q.RunID)
	if err != nil {
		return fmt.Errorf("quarantine message %d of folder %d: %w", q.SourceUID, q.FolderID, err)
	}
	return nil
}

// ResolveMailQuarantine marks quarantine rows resolved (the message was copied after all).
func (s *Store) ResolveMailQuarantine(ctx context.Context, folderID int64, srcUIDs []int64) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	if _, err := s.q.Exec(ctx, `UPDATE mail_quarantine SET resolved_at = now()
		WHERE folder_id = $1 AND source_uid = ANY($2) AND resolved_at IS NULL`, folderID, srcUIDs); err != nil {
		return fmt.Errorf("resolve quarantine of folder %d: %w", folderID, err)
	}
	return nil
}

// ListMailQuarantine returns a mailbox's unresolved quarantine rows (all rows with all=true);
// folderID 0 means every folder.
func (s *Store) ListMailQuarantine(ctx context.Context, mailboxID, folderID int64, all bool) ([]MailQuarantine, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailQuarantineColumns+` FROM mail_quarantine
		WHERE mailbox_id = $1 AND ($2 = 0 OR folder_id = $2) AND ($3 OR resolved_at IS NULL)
		ORDER BY folder_id, source_uid`, mailboxID, folderID, all)
	if err != nil {
		return nil, fmt.Errorf("quarantine of mailbox %d: %w", mailboxID, err)
	}
	qs, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailQuarantine])
	if err != nil {
		return nil, fmt.Errorf("quarantine of mailbox %d: %w", mailboxID, err)
	}
	return qs, nil
}
