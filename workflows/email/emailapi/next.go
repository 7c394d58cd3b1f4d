package emailapi

import (
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/model"
)

// NextAction says what a job needs from a human now, in the CLI's words ("" when nothing):
// the `next:` line of `cutover email status`, the current details in the Temporal UI and the
// next_action of every notification.
func NextAction(st Status) string {
	id := st.JobID
	preDNS := st.Phase == model.PhaseDeltaSync || st.Phase == model.PhaseCutoverReady
	switch {
	case st.Phase == model.PhaseFailed:
		return fmt.Sprintf("failed in %s: %s; fix and run 'cutover email retry %d'", st.FailedPhase, st.LastError, id)
	case st.DNS != nil && st.DNS.Holding != "":
		return fmt.Sprintf("%s; fix the DNS, or accept with 'cutover email approve %d --accept %s --reason TEXT'",
			st.DNS.Holding, id, st.DNS.HoldingCheck)
	case preDNS && st.Gate == model.GateWarning && st.ApprovedBy == "":
		return fmt.Sprintf("review the checks and 'cutover email approve %d' (--accept CHECK[:MAILBOX] --reason TEXT for "+
			"a warning that is acceptable)", id)
	case preDNS && st.Gate == model.GateWarning:
		return fmt.Sprintf("warnings remain: accept the reviewed ones with 'cutover email approve %d --accept CHECK[:MAILBOX] "+
			"--reason TEXT', or skip a mailbox with 'cutover email skip %d MAILBOX --reason TEXT'", id, id)
	case preDNS && st.Gate == model.GateBlocked && len(st.Checks) > 0:
		return fmt.Sprintf("checks fail: fix them, or take a mailbox out with 'cutover email skip %d MAILBOX --reason TEXT'", id)
	case st.Phase == model.PhaseCutoverReady && st.Gate == model.GateReadyForDNS:
		return fmt.Sprintf("switch DNS/MX, then 'cutover email cutover %d'", id)
	case preDNS && st.Gate == model.GateReadyForDNS:
		return fmt.Sprintf("the gate allows DNS: at the migration hour switch DNS/MX, then 'cutover email cutover %d' "+
			"(presyncs go on until then)", id)
	case st.Phase == model.PhaseVerified:
		return fmt.Sprintf("soaking with INBOX post-syncs; 'cutover email close %d' ends it", id)
	}
	return ""
}

// Waiting says what the job is doing or waiting for, in a line ("" when nothing to add).
func Waiting(st Status) string {
	at := func(t *time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
	switch {
	case st.CurrentPass != nil && st.Progress != nil && st.Progress.SourceMessages > 0:
		p := st.Progress
		return fmt.Sprintf("%s pass running: %d of %d messages copied (%.1f%%), %d of %d mailboxes done",
			st.CurrentPass.RunType, p.Copied, p.SourceMessages, p.Percent, p.MailboxesDone, st.Mailboxes)
	case st.CurrentPass != nil:
		return fmt.Sprintf("%s pass running since %s", st.CurrentPass.RunType, at(&st.CurrentPass.Started))
	case st.Phase == model.PhaseFailed:
		return "waiting for a retry"
	case st.DNS != nil && st.DNS.Holding != "":
		return "waiting before the final sync: " + st.DNS.Holding
	case st.Phase == model.PhaseDeltaSync && st.NextPresyncAt != nil:
		return "waiting for the next presync at " + at(st.NextPresyncAt)
	case st.Phase == model.PhaseCutoverReady && st.Gate == model.GateReadyForDNS:
		return "waiting for the DNS cutover confirmation"
	case st.Phase == model.PhaseCutoverReady:
		return "waiting for the gate (" + string(st.Gate) + ") before DNS may be switched"
	case st.Phase == model.PhaseDNSCutover && st.DNSCutoverAt != nil:
		return "waiting for DNS/MX to settle after the switch at " + at(st.DNSCutoverAt)
	case st.Phase == model.PhaseVerified && st.SoakEndsAt != nil:
		return "soak: INBOX post-syncs until " + at(st.SoakEndsAt)
	}
	return ""
}
