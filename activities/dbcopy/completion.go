package dbcopy

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/cutover/cutover/internal/model"
)

// SetEntityStatus records an entity's status; an entity that completes also gets its
// entity_completion checkpoint (migration_checkpoints): the last batch, the last source key, the rows
// processed and quarantined then. One per entity and last batch: a completion recorded again
// (an activity retried) keeps the first, and a later run that completes the entity after more
// batches (a catch-up, a recovery run) records its own.
func (e *Engine) SetEntityStatus(ctx context.Context, entity string, status model.EntityStatus) error {
	id := e.EntityStatusID(entity)
	if err := e.ledger.SetEntityStatus(ctx, id, status); err != nil {
		return err
	}
	if status != model.EntityCompleted {
		return nil
	}
	_, err := e.pool.Exec(ctx, `INSERT INTO migration_checkpoints
		(id, migration_id, entity_name, checkpoint_type, batch_number, last_source_id, records_processed, system_state)
		SELECT $1, s.migration_id, s.entity_name, 'entity_completion', b.last, s.last_processed_id, s.records_processed,
			jsonb_build_object('records_total', s.records_total, 'records_failed', s.records_failed,
				'batches', b.n, 'completed_at', s.completed_at, 'target_table', s.target_entity)
		FROM entity_migration_status s,
			LATERAL (SELECT coalesce(max(batch_number), 0) AS last, count(*) AS n FROM batch_processing_status
				WHERE entity_status_id = s.id AND status = 'completed') b
		WHERE s.id = $2
		ON CONFLICT (migration_id, entity_name, checkpoint_type, batch_number) DO NOTHING`,
		uuid.New(), id)
	if err != nil {
		return fmt.Errorf("entity %s: completion checkpoint: %w", entity, err)
	}
	return nil
}
