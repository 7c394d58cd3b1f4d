package dbcopy

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// AcceptRequest records an operator's acceptance of a migration's quarantined rows.
type AcceptRequest struct {
	Migration Migration `json:"migration"`
	// ID makes the acceptance idempotent (a retried activity records one).
	ID         string `json:"id"`
	AcceptedBy string `json:"accepted_by"`
	Reason     string `json:"reason"`
}

// AcceptResult is the recorded acceptance: the quarantined rows it covers.
type AcceptResult struct {
	QuarantinedRows int64 `json:"quarantined_rows"`
}

// DBAcceptErrors records that an operator accepts the migration's quarantined rows as they are
// (cutover db accept-errors): the completeness checks then allow them, naming the reason.
func (a *Activities) DBAcceptErrors(ctx context.Context, r AcceptRequest) (AcceptResult, error) {
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return AcceptResult{}, nonRetryable(fmt.Errorf("acceptance id %q is not a UUID", r.ID))
	}
	if r.AcceptedBy == "" || r.Reason == "" {
		return AcceptResult{}, nonRetryable(fmt.Errorf("accepting quarantined rows needs who accepts and a reason"))
	}
	e, release, err := a.engine(ctx, r.Migration)
	if err != nil {
		return AcceptResult{}, err
	}
	defer release()
	acc, err := e.AcceptErrors(ctx, id, r.AcceptedBy, r.Reason)
	if err != nil {
		return AcceptResult{}, a.down.judge(r.Migration.ID, err)
	}
	return AcceptResult{QuarantinedRows: acc.QuarantinedRows}, nil
}
