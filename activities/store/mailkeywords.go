package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// MarkMailFlagsUnsure records, before flag changes are sent, that the rows' flags may no longer
// be what the destination holds (see MailMessage.FlagsUnsure); SetMailMessageFlags clears it.
func (s *Store) MarkMailFlagsUnsure(ctx context.Context, folderID int64, srcUIDs []int64) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	if _, err := s.q.Exec(ctx, `UPDATE mail_messages SET flags_unsure = true WHERE folder_id = $1 AND source_uid = ANY($2)`,
		folderID, srcUIDs); err != nil {
		return fmt.Errorf("mark flags of %d mail messages of folder %d unsure: %w", len(srcUIDs), folderID, err)
	}
	return nil
}

// MailFlagsUnsure returns a folder's rows whose flags are unsure, in source UID order.
func (s *Store) MailFlagsUnsure(ctx context.Context, folderID int64) ([]MailMessage, error) {
	rows, err := s.q.Query(ctx, `SELECT `+mailMessageColumns+` FROM mail_messages
		WHERE folder_id = $1 AND flags_unsure ORDER BY source_uid`, folderID)
	if err != nil {
		return nil, fmt.Errorf("unsure flags of folder %d: %w", folderID, err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByName[MailMessage])
	if err != nil {
		return nil, fmt.Errorf("unsure flags of folder %d: %w", folderID, err)
	}
	return ms, nil
}

// AddMailDroppedFlags adds keywords the destination refused to rows' dropped_flags.
func (s *Store) AddMailDroppedFlags(ctx context.Context, folderID int64, srcUIDs []int64, dropped [][]string) error {
	if len(srcUIDs) == 0 {
		return nil
	}
	joined := make([]string, len(dropped))
	for i, d := range dropped {
		joined[i] = strings.Join(d, " ")
	}
	_, err := s.q.Exec(ctx, `UPDATE mail_messages m SET dropped_flags = (SELECT coalesce(array_agg(DISTINCT f ORDER BY f), '{}')
			FROM unnest(m.dropped_flags || coalesce(string_to_array(nullif(t.d, ''), ' '), '{}')) AS x(f))
		FROM unnest($2::bigint[], $3::text[]) AS t(u, d)
		WHERE m.folder_id = $1 AND m.source_uid = t.u`, folderID, srcUIDs, joined)
	if err != nil {
		return fmt.Errorf("record dropped keywords of %d mail messages of folder %d: %w", len(srcUIDs), folderID, err)
	}
	return nil
}

// DroppedKeywords summarises what a mailbox's destination refused to store: how many messages
// lost keywords, and which keywords (sorted, at most limit of them).
type DroppedKeywords struct {
	Messages int64
	Keywords []string
}

// MailDroppedKeywords summarises a mailbox's dropped keywords.
func (s *Store) MailDroppedKeywords(ctx context.Context, mailboxID int64, limit int) (DroppedKeywords, error) {
	var d DroppedKeywords
	err := s.q.QueryRow(ctx, `SELECT count(*) FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
		WHERE f.mailbox_id = $1 AND cardinality(m.dropped_flags) > 0`, mailboxID).Scan(&d.Messages)
	if err != nil {
		return d, fmt.Errorf("dropped keywords of mailbox %d: %w", mailboxID, err)
	}
	if d.Messages == 0 {
		return d, nil
	}
	rows, err := s.q.Query(ctx, `SELECT DISTINCT k FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id,
			unnest(m.dropped_flags) AS k
		WHERE f.mailbox_id = $1 ORDER BY k LIMIT $2`, mailboxID, limit)
	if err != nil {
		return d, fmt.Errorf("dropped keywords of mailbox %d: %w", mailboxID, err)
	}
	if d.Keywords, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return d, fmt.Errorf("dropped keywords of mailbox %d: %w", mailboxID, err)
	}
	return d, nil
}

// JobDroppedKeywords is MailDroppedKeywords for every mailbox of a job that has any, by
// mailbox id, in two scans (reports).
func (s *Store) JobDroppedKeywords(ctx context.Context, jobID int64, limit int) (map[int64]DroppedKeywords, error) {
	rows, err := s.q.Query(ctx, `SELECT f.mailbox_id, count(*) FROM mail_messages m
			JOIN mail_folders f ON f.id = m.folder_id JOIN migration_mailboxes mb ON mb.id = f.mailbox_id
		WHERE mb.job_id = $1 AND cardinality(m.dropped_flags) > 0 GROUP BY f.mailbox_id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("dropped keywords of job %d: %w", jobID, err)
	}
	out := map[int64]DroppedKeywords{}
	var id, n int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		out[id] = DroppedKeywords{Messages: n}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("dropped keywords of job %d: %w", jobID, err)
	}
	if len(out) == 0 {
		return out, nil
	}
	rows, err = s.q.Query(ctx, `SELECT DISTINCT f.mailbox_id, k FROM mail_messages m
			JOIN mail_folders f ON f.id = m.folder_id JOIN migration_mailboxes mb ON mb.id = f.mailbox_id,
			unnest(m.dropped_flags) AS k
		WHERE mb.job_id = $1 ORDER BY 1, 2`, jobID)
	if err != nil {
		return nil, fmt.Errorf("dropped keywords of job %d: %w", jobID, err)
	}
	var k string
	if _, err := pgx.ForEachRow(rows, []any{&id, &k}, func() error {
		if d := out[id]; len(d.Keywords) < limit {
			d.Keywords = append(d.Keywords, k)
			out[id] = d
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("dropped keywords of job %d: %w", jobID, err)
	}
	return out, nil
}
