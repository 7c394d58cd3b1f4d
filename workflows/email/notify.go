package email

import (
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/notifysend"
)

// startNotifier starts delivering the job's notifications to the spec's webhooks.
func (w *jobRun) startNotifier(ctx workflow.Context) {
	if w.st.NotifiedPhase == "" {
		w.st.NotifiedPhase, w.st.NotifiedGate = w.st.Phase, w.st.Gate
	}
	w.sender = &notifysend.Sender{Target: emailapi.WorkflowID(w.st.JobID), Webhooks: w.spec.Webhooks, Box: &w.st.Notify,
		Options: w.tuning.Notify}
	w.sender.Start(ctx)
}

// notifyChanges queues a notification for each phase and gate change since the last one: the
// phase first, then the gate.
func (w *jobRun) notifyChanges(ctx workflow.Context) {
	st := w.st
	if len(w.spec.Webhooks) == 0 || (st.Phase == st.NotifiedPhase && st.Gate == st.NotifiedGate) {
		return
	}
	s := w.status()
	ev := notify.Event{JobID: st.JobID, Phase: string(st.Phase), Gate: string(st.Gate), SyncPercent: st.SyncPercent,
		TicketID: w.spec.TicketID, NextAction: s.Next, Kind: emailapi.Kind, Domain: st.Domain}
	now := workflow.Now(ctx).UTC()
	if st.Phase != st.NotifiedPhase {
		e := ev
		switch st.Phase {
		case model.PhaseFailed:
			e.Event, e.Message = notify.EventFailed, st.LastError
		case model.PhaseVerified:
			e.Event = notify.EventVerified
		case model.PhaseClosed:
			e.Event = notify.EventClosed
		default:
			e.Event = notify.EventPhaseChanged
		}
		if e.Message == "" {
			e.Message = "phase " + string(st.NotifiedPhase) + " → " + string(st.Phase)
		}
		w.st.Notify.Add(emailapi.WorkflowID(st.JobID), e, now)
		st.NotifiedPhase = st.Phase
	}
	if st.Gate != st.NotifiedGate {
		e := ev
		e.Event = notify.EventGateChanged
		if st.Gate == model.GateReadyForDNS {
			e.Event = notify.EventGateReady
		}
		e.Message = "gate " + string(st.NotifiedGate) + " → " + string(st.Gate)
		w.st.Notify.Add(emailapi.WorkflowID(st.JobID), e, now)
		st.NotifiedGate = st.Gate
	}
}
