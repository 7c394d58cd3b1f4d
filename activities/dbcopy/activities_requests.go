package dbcopy

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// RecordRequest records an operator's request to a migration in its ledger.
type RecordRequest struct {
	Migration Migration              `json:"migration"`
	Sink      dbmigrateapi.EventSink `json:"sink"`
	// ID makes the record idempotent (a retried activity records one).
	ID      string                     `json:"id"`
	Request dbmigrateapi.RequestRecord `json:"request"`
}

// DBRecordRequest writes what an operator asked the migration for, who and why, into its
// ledger (migration_operator_requests: the report lists them) and publishes it as an
// operator_request event. A migration with no ledger row yet records nothing (not retried).
func (a *Activities) DBRecordRequest(ctx context.Context, r RecordRequest) error {
	defer heartbeat.KeepAlive(ctx, nil)()
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return nonRetryable(fmt.Errorf("%w: request id %q is not a UUID", ErrSpec, r.ID))
	}
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return err
	}
	defer release()
	q := r.Request
	err = e.ledger.RecordOperatorRequest(ctx, store.OperatorRequest{ID: id, MigrationID: e.opt.MigrationID,
		Request: q.Request, Subject: q.Subject, RequestedBy: q.RequestedBy, Reason: q.Reason, RequestedAt: q.At})
	if errors.Is(err, store.ErrNotFound) {
		return nonRetryable(err)
	}
	if err != nil {
		return a.down.judge(r.Migration.ID, err)
	}
	a.emit(ctx, e, r.Sink, Event{EventType: "operator_request", MigrationID: r.Migration.ID,
		Timestamp: q.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Data: map[string]any{"request": q.Request,
			"subject": q.Subject, "requested_by": q.RequestedBy, "reason": q.Reason}})
	return nil
}
