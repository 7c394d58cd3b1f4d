package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotificationDelivery is a notification_deliveries row: one event's delivery to one webhook.
type NotificationDelivery struct {
	Target      string     `db:"target"`
	Seq         int64      `db:"seq"`
	URL         string     `db:"url"`
	Event       string     `db:"event"`
	Status      string     `db:"status"` // retrying | delivered | refused
	Attempts    int32      `db:"attempts"`
	HTTPStatus  *int32     `db:"http_status"`
	LastError   string     `db:"last_error"`
	CreatedAt   time.Time  `db:"created_at"`
	UpdatedAt   time.Time  `db:"updated_at"`
	DeliveredAt *time.Time `db:"delivered_at"`
}

// NotificationDelivered reports whether the event already reached the webhook.
func (s *Store) NotificationDelivered(ctx context.Context, target string, seq int64, url string) (bool, error) {
	var ok bool
	err := s.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notification_deliveries
		WHERE target = $1 AND seq = $2 AND url = $3 AND status = 'delivered')`, target, seq, url).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("notification %s:%d: %w", target, seq, err)
	}
	return ok, nil
}

// RecordNotificationAttempt writes one attempt's outcome (status retrying, delivered or refused).
func (s *Store) RecordNotificationAttempt(ctx context.Context, d NotificationDelivery) error {
	_, err := s.q.Exec(ctx, `INSERT INTO notification_deliveries
			(target, seq, url, event, status, attempts, http_status, last_error, delivered_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $5 = 'delivered' THEN now() END)
		ON CONFLICT (target, seq, url) DO UPDATE SET status = EXCLUDED.status,
			attempts = GREATEST(notification_deliveries.attempts, EXCLUDED.attempts),
			http_status = EXCLUDED.http_status, last_error = EXCLUDED.last_error,
			delivered_at = COALESCE(notification_deliveries.delivered_at, EXCLUDED.delivered_at), updated_at = now()
		WHERE notification_deliveries.status <> 'delivered'`,
		d.Target, d.Seq, d.URL, d.Event, d.Status, d.Attempts, d.HTTPStatus, d.LastError)
	if err != nil {
		return fmt.Errorf("record notification %s:%d: %w", d.Target, d.Seq, err)
	}
	return nil
}

// ListNotificationDeliveries returns a migration's latest deliveries, newest first.
func (s *Store) ListNotificationDeliveries(ctx context.Context, target string, limit int) ([]NotificationDelivery, error) {
	rows, err := s.q.Query(ctx, `SELECT target, seq, url, event, status, attempts, http_status, last_error,
			created_at, updated_at, delivered_at
		FROM notification_deliveries WHERE target = $1 ORDER BY seq DESC, url LIMIT $2`, target, limit)
	if err != nil {
		return nil, fmt.Errorf("list notifications of %s: %w", target, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[NotificationDelivery])
	if err != nil {
		return nil, fmt.Errorf("list notifications of %s: %w", target, err)
	}
	return out, nil
}
