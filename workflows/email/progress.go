package email

import (
	"fmt"
	"math"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// ---- results into state ----

func percent(source, dest, quarantined int64) float64 {
	p := 100 * gate.Ratio(source, dest, quarantined)
	return math.Round(min(100, p)*100) / 100
}

// jobPercent is the share of the job on the destination after a pass: the messages of the
// mailboxes that synced, as the pass counted them on the destination, weighed by the share of
// mailboxes that synced (a failed mailbox's counts are unknown: it counts as 0 %).
func jobPercent(res WaveResult) float64 {
	if res.Mailboxes == 0 || res.OK == 0 {
		return 0
	}
	p := percent(res.SourceMessages, res.DestMessages, res.Quarantined) * float64(res.OK) / float64(res.Mailboxes)
	return math.Round(p*100) / 100
}

// absorbSync takes a sync pass's results: progress, and before DNS cutover the gate.
func (w *jobRun) absorbSync(ctx workflow.Context, res WaveResult, rt model.RunType) {
	st := w.st
	st.SyncPercent = jobPercent(res)
	w.absorbMailboxes(res, rt)
	if !st.CutOver() {
		s := res.Summary
		st.Summary = &s
		st.Unskipped = nil // this pass covered them
		w.evaluate(ctx)
	}
	w.mark(ctx)
}

// evaluate re-runs the gate on the latest facts and the approval.
func (w *jobRun) evaluate(ctx workflow.Context) {
	st := w.st
	if st.Summary == nil || st.CutOver() {
		return
	}
	res := w.evaluateReviewed(ctx)
	if res.VoidApproval {
		w.note(ctx, fmt.Sprintf("approval by %s voided: critical checks fail", st.Approval.By))
		st.Approval, st.ApprovedAt = nil, nil
	}
	st.Gate, st.Checks, st.ChecksPending = res.Gate, res.Checks, true
}

func (w *jobRun) absorbMailboxes(res WaveResult, rt model.RunType) {
	st := w.st
	counts := map[model.MailboxStatus]int64{}
	details := make([]emailapi.MailboxProgress, 0, len(res.Results))
	for _, r := range res.Results {
		details = append(details, progressOf(r, rt))
	}
	// From the totals, not the kept results: large jobs keep only failures.
	counts[model.MailboxError] = res.Failed
	counts[model.MailboxQuarantine] = res.QuarantinedMailboxes
	counts[model.MailboxOK] = res.OK - res.QuarantinedMailboxes
	st.MailboxCounts, st.MailboxDetails = counts, details
}

func progressOf(r MailboxResult, rt model.RunType) emailapi.MailboxProgress {
	f := r.Facts
	p := emailapi.MailboxProgress{Email: r.Email, MessagesSource: f.SourceMessages, MessagesDest: f.DestMessages,
		Quarantined: f.Quarantined, Pending: f.Pending, LastError: r.Error, LastRun: rt,
		SyncPercent: percent(f.SourceMessages, f.DestMessages, f.Quarantined)}
	switch {
	case !r.OK:
		p.Status = model.MailboxError
	case f.Quarantined > 0:
		p.Status = model.MailboxQuarantine
	default:
		p.Status = model.MailboxOK
	}
	if rt == model.RunPreflight || !r.OK {
		// Nothing synced yet (what the destination already holds is not the job's copy), or
		// the pass failed and its counts are unknown.
		p.SyncPercent = 0
	}
	return p
}
