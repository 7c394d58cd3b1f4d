package email

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/dnscheck"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// The DNS checks of the migration plan (spec dns:): TTLs of MX and the IMAP host name before
// the switch (gate check dns_ttl), MX pointing at the destination after it (mx_switched, which
// holds the final sync). Both are job-level warnings an ops lead may accept with approve
// --accept CHECK --reason.

const dnsVersion = "dns-checks"

// jobChecks are the job-level checks, accepted without a mailbox.
var jobChecks = model.DNSCheckIDs

func (w *jobRun) dnsEnabled(ctx workflow.Context) bool {
	return w.spec.DNS != nil && workflow.GetVersion(ctx, dnsVersion, workflow.DefaultVersion, 1) == 1
}

// lookupDNS asks the worker's resolver; a failure is reported, never a job failure.
func (w *jobRun) lookupDNS(ctx workflow.Context) (dnscheck.Report, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    defaultHeartbeatTimeout, // the lookup keeps a heartbeat: a killed worker holds it 15 s, not the minute
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 2 * time.Second, MaximumAttempts: 3},
	})
	d := w.spec.DNS
	var a *dnscheck.Activities
	var rep dnscheck.Report
	err := workflow.ExecuteActivity(actx, a.CheckDNS, dnscheck.Request{Domain: w.spec.Domain, IMAPHost: d.IMAPHost,
		MXHosts: d.MXHosts}).Get(ctx, &rep)
	return rep, err
}

// refreshDNS looks the records up again before the gate decides (preflight, each presync).
func (w *jobRun) refreshDNS(ctx workflow.Context) {
	if !w.dnsEnabled(ctx) {
		return
	}
	rep, err := w.lookupDNS(ctx)
	now := workflow.Now(ctx).UTC()
	info := &emailapi.DNSInfo{CheckedAt: &now, MXSeen: rep.MXSeen}
	if err != nil {
		info.Error = errorText(err)
	}
	for _, r := range rep.Records {
		info.Records = append(info.Records, emailapi.DNSRecord{Name: r.Name, Type: r.Type, Values: r.Values, TTL: r.TTL})
	}
	w.st.DNS = info
	w.mark(ctx)
}

// dnsTTLCheck is the dns_ttl check on the latest lookup (nil without DNS checks).
func (w *jobRun) dnsTTLCheck() *gate.Check {
	st := w.st
	if w.spec.DNS == nil || st.DNS == nil || st.CutOver() {
		return nil
	}
	maxTTL := uint32(w.spec.DNS.MaxTTL.D() / time.Second)
	c := &gate.Check{ID: model.CheckDNSTTL, Status: model.CheckPass}
	var high, all []string
	for _, r := range st.DNS.Records {
		s := fmt.Sprintf("%s %s TTL %ds", r.Type, r.Name, r.TTL)
		all = append(all, s)
		if r.TTL > maxTTL {
			high = append(high, s)
		}
	}
	switch {
	case st.DNS.Error != "":
		c.Status, c.Message = model.CheckWarn, "DNS lookup failed: "+st.DNS.Error
	case len(high) > 0:
		c.Status = model.CheckWarn
		c.Message = fmt.Sprintf("%s above %ds: lower them at least one old TTL before the migration hour, "+
			"so the switch reaches every client fast", strings.Join(high, ", "), maxTTL)
	default:
		c.Message = fmt.Sprintf("%s, within %ds", strings.Join(all, ", "), maxTTL)
	}
	acceptJobCheck(c, st.Reviews)
	return c
}

// mxCheck is the mx_switched check after the DNS confirmation (nil before).
func (w *jobRun) mxCheck() *gate.Check {
	st := w.st
	if w.spec.DNS == nil || st.DNS == nil || !st.CutOver() || st.DNS.CheckedAt == nil {
		return nil
	}
	c := &gate.Check{ID: model.CheckMXSwitched, Status: model.CheckPass,
		Message: fmt.Sprintf("MX %s → %s", w.spec.Domain, strings.Join(st.DNS.MXSeen, ", "))}
	if !st.DNS.MXSwitched {
		c.Status = model.CheckWarn
		c.Message = mxMessage(w.spec.Domain, st.DNS, w.spec.DNS.MXHosts)
	}
	acceptJobCheck(c, st.Reviews)
	return c
}

func mxMessage(domain string, d *emailapi.DNSInfo, want []string) string {
	if d.Error != "" {
		return fmt.Sprintf("MX of %s could not be looked up after the DNS switch: %s", domain, d.Error)
	}
	seen := "no MX record"
	if len(d.MXSeen) > 0 {
		seen = strings.Join(d.MXSeen, ", ")
	}
	return fmt.Sprintf("MX of %s points at %s, not the destination (%s)", domain, seen, strings.Join(want, ", "))
}

// acceptJobCheck marks a warning accepted when a review of exactly these words stands.
func acceptJobCheck(c *gate.Check, reviews []gate.Review) {
	if c.Status != model.CheckWarn {
		return
	}
	i := slices.IndexFunc(reviews, func(r gate.Review) bool { return r.Check == c.ID && r.Message == c.Message })
	if i < 0 {
		return
	}
	r := reviews[i]
	c.Accepted, c.Reviews = true, []gate.Review{r}
	c.Message += fmt.Sprintf("; accepted by %s at %s: %s", r.By, r.At.UTC().Format(time.RFC3339), r.Reason)
}

// withJobChecks adds the job-level checks before manual_approval and decides the gate again.
func (w *jobRun) withJobChecks(res gate.Result) gate.Result {
	c := w.dnsTTLCheck()
	if c == nil {
		return res
	}
	at := len(res.Checks)
	if at > 0 && res.Checks[at-1].ID == model.CheckManualApproval {
		at--
	}
	res.Checks = slices.Insert(slices.Clone(res.Checks), at, *c)
	statuses := make([]model.CheckStatus, len(res.Checks))
	for i, c := range res.Checks {
		statuses[i] = c.Effective()
	}
	if res.Gate != model.GateBlocked || !slices.Contains(statuses, model.CheckFail) {
		res.Gate = gate.Decide(statuses)
	}
	return res
}

// jobAcceptances splits an approve's acceptances into job-level checks and mailbox ones.
func jobAcceptances(accept []string) (job []model.CheckID, rest []string) {
	for _, a := range accept {
		id := model.CheckID(strings.TrimSpace(a))
		if slices.Contains(jobChecks, id) {
			job = append(job, id)
			continue
		}
		rest = append(rest, a)
	}
	return job, rest
}

// validateJobAccept checks acceptances of job-level checks: each must warn now.
func (w *jobRun) validateJobAccept(ids []model.CheckID) error {
	for _, id := range ids {
		c := w.currentJobCheck(id)
		if c == nil || c.Status != model.CheckWarn {
			return fmt.Errorf("approve refused: %s does not warn now; nothing to accept", id)
		}
	}
	return nil
}

func (w *jobRun) currentJobCheck(id model.CheckID) *gate.Check {
	switch id {
	case model.CheckDNSTTL:
		return w.dnsTTLCheck()
	case model.CheckMXSwitched:
		return w.mxCheck()
	}
	return nil
}

// acceptJobChecks records reviews of job-level warnings.
func (w *jobRun) acceptJobChecks(ids []model.CheckID, by, reason string, now time.Time) []string {
	var names []string
	for _, id := range ids {
		c := w.currentJobCheck(id)
		if c == nil || c.Status != model.CheckWarn {
			continue
		}
		w.st.Reviews = slices.DeleteFunc(w.st.Reviews, func(r gate.Review) bool { return r.Check == id })
		w.st.Reviews = append(w.st.Reviews, gate.Review{Check: id, Message: c.Message, By: by, At: now, Reason: reason})
		names = append(names, string(id))
	}
	return names
}

// checkMX runs after the DNS confirmation, before the final sync: the final sync waits while
// MX does not point at the destination, looking again every recheck_every, until it does or
// an ops lead accepts what it points at.
func (w *jobRun) checkMX(ctx workflow.Context) error {
	if !w.dnsEnabled(ctx) {
		return nil
	}
	st := w.st
	for {
		rep, err := w.lookupDNS(ctx)
		now := workflow.Now(ctx).UTC()
		if st.DNS == nil {
			st.DNS = &emailapi.DNSInfo{}
		}
		st.DNS.CheckedAt, st.DNS.MXSeen, st.DNS.MXSwitched, st.DNS.Error = &now, rep.MXSeen, rep.MXSwitched, ""
		if err != nil {
			st.DNS.Error = errorText(err)
		}
		c := w.mxCheck()
		st.Checks = append(slices.DeleteFunc(slices.Clone(st.Checks), func(x gate.Check) bool {
			return x.ID == model.CheckMXSwitched
		}), *c)
		st.ChecksPending = true
		if c.Effective() == model.CheckPass {
			st.DNS.Holding, st.DNS.HoldingCheck = "", ""
			w.note(ctx, "DNS check: "+c.Message)
			w.mark(ctx)
			return nil
		}
		if st.DNS.Holding != c.Message {
			w.note(ctx, "final sync waits: "+c.Message)
		}
		st.DNS.Holding, st.DNS.HoldingCheck = c.Message, string(model.CheckMXSwitched)
		w.mark(ctx)
		wake := w.wake
		if _, err := workflow.AwaitWithTimeout(ctx, w.spec.DNS.RecheckEvery.D(), func() bool { return w.wake != wake }); err != nil {
			return err
		}
		if c := w.mxCheck(); c != nil && c.Effective() == model.CheckPass { // accepted meanwhile
			st.DNS.Holding, st.DNS.HoldingCheck = "", ""
			st.Checks = append(slices.DeleteFunc(slices.Clone(st.Checks), func(x gate.Check) bool {
				return x.ID == model.CheckMXSwitched
			}), *c)
			st.ChecksPending = true
			w.mark(ctx)
			return nil
		}
	}
}
