package dbmigrate

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/searchattr"
)

// visibilityChange is the GetVersion change id of the MigrationPhase upserts: executions
// recorded before it replay without them.
const visibilityChange = "operator-visibility"

// setPhase moves the orchestration to p: the status query, the MigrationPhase search attribute
// operators filter on, and the current details the Temporal UI shows.
func (w *orch) setPhase(ctx workflow.Context, p Phase) {
	w.state.Phase = p
	if w.visible && w.shownPhase != p {
		w.shownPhase = p
		_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.Phase.ValueSet(string(p)))
	}
	w.details(ctx)
}

// details is the Temporal UI's "current details" of the migration (no history event: safe to
// call anywhere).
func (w *orch) details(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, Details(w.state))
}

// Details renders a migration's state as the Markdown the Temporal UI shows.
func Details(st *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** · %s · %.1f%% · %d/%d entities · %d errors", st.Phase, st.Status, st.ProgressPercent,
		st.CompletedEntities, st.TotalEntities, st.ErrorCount)
	if st.Passes > 0 {
		fmt.Fprintf(&b, " · %d catch-up passes", st.Passes)
	}
	for _, e := range st.Entities {
		fmt.Fprintf(&b, "\n- `%s` %s: %d/%d rows", e.Name, e.Status, e.Processed+e.Failed, e.Total)
		if e.Failed > 0 {
			fmt.Fprintf(&b, " (%d quarantined)", e.Failed)
		}
		if e.Throughput > 0 {
			fmt.Fprintf(&b, ", %.0f rows/s", e.Throughput)
		}
	}
	for _, op := range st.Ops {
		if op.AwaitingApproval {
			fmt.Fprintf(&b, "\n- schema change `%s` waits for approval (update %s)", op.Name, UpdateApprove)
		}
	}
	if st.Error != "" {
		fmt.Fprintf(&b, "\n\nerror: %s", st.Error)
	}
	return b.String()
}
