package email

import (
	"math"

	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/silence"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// liveStep: during the initial sync the synced percentage (and its search attribute) moves in
// steps of this many points, so a long sync shows progress without a history event per report.
const liveStep = 5.0

// receiveProgress keeps the running pass's progress from the worker's MailboxProgress signals.
func (w *jobRun) receiveProgress(ctx workflow.Context) {
	ch := workflow.GetSignalChannelWithOptions(ctx, emailapi.MailboxProgressSignal, workflow.SignalChannelOptions{
		Description: "sent by the worker while a mailbox's sync pass copies: {email, run_type, copied, done}; " +
			"the job's live progress",
	})
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var p emailapi.PassProgress
			if !ch.Receive(gctx, &p) {
				return
			}
			w.noteProgress(gctx, p)
		}
	})
}

// startProgress resets the live progress when a pass starts.
func (w *jobRun) startProgress(rt model.RunType) {
	st := w.st
	st.Progress, st.LiveCopied = &emailapi.LiveProgress{}, nil
	if rt == model.RunInitial && st.Preflight != nil {
		st.Progress.SourceMessages = st.Preflight.Messages
	}
}

// receiveReports takes the worker's gathered reports (MailboxReportsSignal): every progress and
// failed attempt they hold, then one update of the job's row or visibility for all of them.
func (w *jobRun) receiveReports(ctx workflow.Context) {
	ch := workflow.GetSignalChannelWithOptions(ctx, emailapi.MailboxReportsSignal,
		workflow.SignalChannelOptions{Description: emailapi.Descriptions[emailapi.MailboxReportsSignal]})
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var r emailapi.MailboxReports
			if !ch.Receive(gctx, &r) {
				return
			}
			stepped := false
			for _, p := range r.Progress {
				stepped = w.applyProgress(gctx, p) || stepped
			}
			for _, a := range r.Attempts {
				w.applyAttempt(gctx, a)
			}
			if stepped {
				w.mark(gctx)
			} else {
				w.visibility(gctx)
			}
		}
	})
}

// receiveSilence takes a worker's report of this job's activities whose worker stopped
// heartbeating (silence.Signal) into the current details; it writes no history of its own.
func (w *jobRun) receiveSilence(ctx workflow.Context) {
	ch := workflow.GetSignalChannelWithOptions(ctx, silence.Signal, workflow.SignalChannelOptions{Description: silence.SignalDescription})
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var r silence.Report
			if !ch.Receive(gctx, &r) {
				return
			}
			w.silent = r
			w.visibility(gctx)
		}
	})
}

func (w *jobRun) noteProgress(ctx workflow.Context, p emailapi.PassProgress) {
	if w.applyProgress(ctx, p) {
		w.mark(ctx) // the job row and the SyncPercent search attribute, every few points
		return
	}
	w.visibility(ctx)
}

// applyProgress adds one mailbox's report to the live progress; it says whether the initial
// sync's percentage reached a new step (the job's row and search attribute then follow).
func (w *jobRun) applyProgress(ctx workflow.Context, p emailapi.PassProgress) bool {
	st := w.st
	if st.CurrentPass == nil || st.Progress == nil || p.RunType != st.CurrentPass.RunType {
		return false // late: that pass is over
	}
	if st.LiveCopied == nil {
		st.LiveCopied = map[string]int64{}
	}
	lp := st.Progress
	if prev, ok := st.LiveCopied[p.Email]; ok {
		lp.Copied -= prev
	}
	st.LiveCopied[p.Email] = p.Copied
	lp.Copied += p.Copied
	if p.Done {
		lp.MailboxesDone++
	}
	lp.Updated = workflow.Now(ctx).UTC()
	if lp.SourceMessages > 0 {
		lp.Percent = math.Round(min(100, 100*float64(lp.Copied)/float64(lp.SourceMessages))*10) / 10
	}
	if st.CurrentPass.RunType == model.RunInitial && lp.SourceMessages > 0 {
		if step := math.Floor(lp.Percent/liveStep) * liveStep; step > st.SyncPercent {
			st.SyncPercent = step
			return true
		}
	}
	return false
}
