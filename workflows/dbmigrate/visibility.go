package dbmigrate

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// visibilityChange is the GetVersion change id of the MigrationPhase upserts: executions
// recorded before it replay without them.
const visibilityChange = "operator-visibility"

// setPhase moves the orchestration to p: the status query, the MigrationPhase search attribute
// operators filter on, and the current details the Temporal UI shows.
func (w *orch) setPhase(ctx workflow.Context, p dbmigrateapi.Phase) {
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
func Details(st *dbmigrateapi.State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** · %s · %.1f%% · %d/%d entities · %d errors", st.Phase, st.Status, st.ProgressPercent,
		st.CompletedEntities, st.TotalEntities, st.ErrorCount)
	if st.Passes > 0 {
		fmt.Fprintf(&b, " · %d catch-up passes", st.Passes)
	}
	if c := st.Capture; c != nil {
		if c.Removed {
			fmt.Fprintf(&b, "\n- change capture removed from the sources (%d changes applied)", c.ChangesApplied)
		} else {
			fmt.Fprintf(&b, "\n- change capture: %d changes pending at the last pass, %.0f changes/s, final pass ≈ %.1f s",
				c.ChangesPending, c.RowsPerSecond, c.PredictedFinalSeconds)
			for _, s := range c.Sources {
				if s.Slot != "" {
					fmt.Fprintf(&b, "\n- replication slot `%s` on source %s (drop happens at the end or on rollback)", s.Slot, s.Source)
				}
			}
		}
	}
	if r := st.Reverse; r != nil {
		if r.Removed {
			fmt.Fprintf(&b, "\n- reverse flow stopped (%d changes written back to the sources)", r.ChangesApplied)
		} else {
			fmt.Fprintf(&b, "\n- reverse flow: the target's writes go back to the sources (%d so far); close or roll back (signals %s, %s)",
				r.ChangesApplied, dbmigrateapi.SignalClose, dbmigrateapi.SignalRollback)
		}
	}
	if st.CutoverWindowSeconds > 0 {
		fmt.Fprintf(&b, "\n- cutover window: %.1f s", st.CutoverWindowSeconds)
	}
	if p := st.Partitions; p != nil {
		fmt.Fprintf(&b, "\n- partitions of the coming months made daily until close (last %s; %d made)",
			p.LastRun.Format("2006-01-02 15:04 UTC"), len(p.Created))
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
			fmt.Fprintf(&b, "\n- schema change `%s` waits for approval (update %s)",
				op.Name, dbmigrateapi.UpdateApprove)
		}
	}
	if n := len(st.Requests); n > 0 {
		r := st.Requests[n-1]
		fmt.Fprintf(&b, "\n- last request: %s", r.Request)
		if r.Subject != "" {
			fmt.Fprintf(&b, " `%s`", r.Subject)
		}
		fmt.Fprintf(&b, " by %s at %s", orUnknown(r.RequestedBy), r.At.Format("2006-01-02 15:04 UTC"))
		if r.Reason != "" {
			fmt.Fprintf(&b, ": %s", r.Reason)
		}
	}
	if n := len(st.Retrying); n > 0 {
		last := st.Retrying[n-1]
		what := "retrying"
		if last.Final {
			what = "failed"
		}
		msg := last.Message
		if last.Type != "" {
			msg = last.Type + ": " + msg
		}
		fmt.Fprintf(&b, "\n\n⚠ %s entity `%s` (%s, attempt %d): %s", what, last.Entity, last.Activity, last.Attempt, msg)
		if n > 1 {
			fmt.Fprintf(&b, " (and %d more entities)", n-1)
		}
	}
	if st.Error != "" {
		fmt.Fprintf(&b, "\n\nerror: %s", st.Error)
	}
	b.WriteString(silence.Report{Notes: st.WorkerSilent}.Details())
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// maxRetrying bounds the failed attempts a migration keeps for its page (one per entity).
const maxRetrying = 20

// maxAttemptMessage bounds an attempt's error as the page shows it.
const maxAttemptMessage = 500

// noteAttempt keeps an entity's newest failed attempt for the status and the current details.
func (w *orch) noteAttempt(a dbmigrateapi.EntityAttempt) {
	if len(a.Message) > maxAttemptMessage {
		a.Message = strings.ToValidUTF8(a.Message[:maxAttemptMessage], "") + "…"
	}
	w.clearAttempts(a.Entity)
	w.state.Retrying = append(w.state.Retrying, a)
	if n := len(w.state.Retrying); n > maxRetrying {
		w.state.Retrying = w.state.Retrying[n-maxRetrying:]
	}
}

// clearAttempts forgets an entity's failed attempts (its workflow ended).
func (w *orch) clearAttempts(entity string) {
	kept := w.state.Retrying[:0]
	for _, a := range w.state.Retrying {
		if a.Entity != entity {
			kept = append(kept, a)
		}
	}
	w.state.Retrying = kept
	if len(kept) == 0 {
		w.state.Retrying = nil
	}
}
