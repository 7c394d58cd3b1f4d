package dbcopy

import (
	"context"
	"time"

	"github.com/cutover/cutover/internal/heartbeat"
)

// PartitionsResult is what a partition upkeep created.
type PartitionsResult struct {
	Created []string `json:"created,omitempty"`
}

// DBKeepPartitions makes every partitioned entity's coming months (partition.ahead, 3 by
// default, from now) and its DEFAULT partition: the migration workflow's timer while a
// cut-over migration stays open. Idempotent.
func (a *Activities) DBKeepPartitions(ctx context.Context, m Migration) (PartitionsResult, error) {
	e, release, err := a.engine(ctx, m)
	if err != nil {
		return PartitionsResult{}, err
	}
	defer release()
	defer heartbeat.KeepAlive(ctx, nil)()
	var out PartitionsResult
	for _, ent := range e.spec.Entities {
		if ent.Partition == nil {
			continue
		}
		ahead := ent.Partition.Ahead
		if ahead == 0 {
			ahead = defaultPartitionsAhead
		}
		made, err := e.PartitionsAhead(ctx, ent.Name, time.Now(), ahead)
		if err != nil {
			return out, a.down.judge(m.ID, err)
		}
		out.Created = append(out.Created, made...)
	}
	return out, nil
}
