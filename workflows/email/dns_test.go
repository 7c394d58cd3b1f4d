package email

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/dnscheck"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func checkOf(cs []gate.Check, id model.CheckID) gate.Check {
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	return gate.Check{}
}

// The DNS checks against a DNS server on loopback: a TTL above 5 minutes warns until it is
// lowered; after the DNS confirmation the final sync waits while MX points elsewhere, naming
// what it points at, and goes on once MX is switched.
func TestDNSChecksWarnOnHighTTLAndHoldTheFinalSyncUntilMXIsSwitched(t *testing.T) {
	dns := testenv.StartDNS(t)
	dns.Set(t, "example.com", "MX", 3600, "10 mx.old.example.")
	dns.Set(t, "imap.example.com", "A", 300, "192.0.2.1")

	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 7 * time.Minute, final: 10 * time.Minute})
	h.env.RegisterActivity(&dnscheck.Activities{Server: dns.Addr})
	spec := testSpec(2)
	spec.DNS = &jobspec.DNSCheck{IMAPHost: "imap.example.com", MXHosts: []string{"mx.new.example"},
		RecheckEvery: jobspec.Duration(10 * time.Minute)}
	var highTTL, lowered, holding, switched emailapi.Status
	var dnsAck *updateOutcome
	h.at(2*time.Hour, func() { highTTL = h.status() })
	h.at(3*time.Hour, func() { dns.Set(t, "example.com", "MX", 300, "10 mx.old.example.") })
	h.at(7*time.Hour, func() { h.signal(emailapi.PresyncNow, "ops") })
	h.at(8*time.Hour, func() {
		lowered = h.status()
		h.signal(emailapi.Approve, "lead")
	})
	h.at(9*time.Hour, func() { dnsAck = h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.at(9*time.Hour+30*time.Minute, func() { holding = h.status() })
	h.at(10*time.Hour, func() { dns.Set(t, "example.com", "MX", 300, "10 mx.new.example.") })
	h.at(10*time.Hour+30*time.Minute, func() { switched = h.status() })
	h.at(14*time.Hour, func() { h.signal(emailapi.Close, "lead") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}

	h.requireHeartbeatTimeout("CheckDNS", defaultHeartbeatTimeout)
	c := checkOf(highTTL.Checks, model.CheckDNSTTL)
	if highTTL.Gate != model.GateWarning {
		t.Errorf("highTTL.Gate: want model.GateWarning; high TTL: gate %s, dns_ttl %+v", highTTL.Gate, c)
	} else if c.Status != model.CheckWarn {
		t.Errorf("c.Status = %v, want model.CheckWarn; high TTL: gate %s, dns_ttl %+v", c.Status, highTTL.Gate, c)
	} else if !strings.Contains(c.Message, "MX example.com TTL 3600s above 300s") {
		t.Errorf("strings.Contains(c.Message, \"MX example.com TTL 3600s above 300s\") is false; high TTL: gate %s, dns_ttl %+v",
			highTTL.Gate, c)
	}
	if highTTL.DNS == nil {
		t.Errorf("highTTL.DNS is nil; records in the status: %+v", highTTL.DNS)
	} else if len(highTTL.DNS.Records) != 2 {
		t.Errorf("len(highTTL.DNS.Records) = %v, want 2; records in the status: %+v",
			len(highTTL.DNS.Records), highTTL.DNS)
	} else if highTTL.DNS.Records[1].TTL != 300 {
		t.Errorf("highTTL.DNS.Records[1].TTL = %v, want 300; records in the status: %+v",
			highTTL.DNS.Records[1].TTL, highTTL.DNS)
	}
	if c := checkOf(lowered.Checks, model.CheckDNSTTL); c.Status != model.CheckPass {
		t.Errorf("after lowering the TTL and a presync: dns_ttl %+v", c)
	}
	if dnsAck == nil {
		t.Fatalf("dnsAck is nil; DNS confirmation: %+v", dnsAck)
	}
	if dnsAck.Rejected != nil {
		t.Fatalf("dnsAck.Rejected = %v, want nil; DNS confirmation: %+v", dnsAck.Rejected, dnsAck)
	}
	if dnsAck.Err != nil {
		t.Fatalf("dnsAck.Err = %v, want nil; DNS confirmation: %+v", dnsAck.Err, dnsAck)
	}
	if holding.Phase != model.PhaseDNSCutover {
		t.Errorf("holding.Phase: want model.PhaseDNSCutover; MX not switched: phase %s, dns %+v",
			holding.Phase, holding.DNS)
	} else if holding.DNS == nil {
		t.Errorf("holding.DNS is nil; MX not switched: phase %s, dns %+v", holding.Phase, holding.DNS)
	} else if !strings.Contains(holding.DNS.Holding, "MX of example.com points at mx.old.example, not the destination (mx.new.example)") {
		t.Errorf("strings.Contains(holding.DNS.Holding, \"MX of example.com points at mx.old.example, not the destination (mx.new.example)\") is false; MX not switched: phase %s, dns %+v",
			holding.Phase, holding.DNS)
	}
	if c := checkOf(holding.Checks, model.CheckMXSwitched); c.Status != model.CheckWarn {
		t.Errorf("mx_switched while MX is old: %+v", c)
	}
	if !strings.Contains(holding.Next, "--accept mx_switched") || !strings.Contains(holding.Waiting, "mx.old.example") {
		t.Errorf("waiting %q next %q", holding.Waiting, holding.Next)
	}
	if switched.Phase == model.PhaseDNSCutover {
		t.Errorf("switched.Phase: want != model.PhaseDNSCutover; after MX switched: phase %s, mx_switched %+v",
			switched.Phase, checkOf(switched.Checks, model.CheckMXSwitched))
	} else if checkOf(switched.Checks, model.CheckMXSwitched).Status != model.CheckPass {
		t.Errorf("want checkOf(switched.Checks, model.CheckMXSwitched).Status == model.CheckPass; after MX switched: phase %s, mx_switched %+v",
			switched.Phase, checkOf(switched.Checks, model.CheckMXSwitched))
	}
	if res.Phase != model.PhaseClosed {
		t.Errorf("job ended in %s", res.Phase)
	}
	// The final sync ran only once MX was switched.
	for _, c := range h.syncCalls() {
		if c.Req.RunType == model.RunFinal && c.At.Before(t0.Add(10*time.Hour)) {
			t.Errorf("final sync at %v, before MX was switched", c.At)
		}
	}
	if !strings.Contains(h.notes(), "final sync waits: MX of example.com points at mx.old.example") {
		t.Errorf("notes:\n%s", h.notes())
	}
}

// An ops lead accepts the MX as it is (a relay in front of the destination, say): the final
// sync goes on without waiting for the recheck.
func TestAcceptedMXWarningLetsTheFinalSyncGoOn(t *testing.T) {
	dns := testenv.StartDNS(t)
	dns.Set(t, "example.com", "MX", 300, "10 relay.example.net.")
	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 7 * time.Minute, final: 10 * time.Minute})
	h.env.RegisterActivity(&dnscheck.Activities{Server: dns.Addr})
	spec := testSpec(1)
	spec.DNS = &jobspec.DNSCheck{MXHosts: []string{"mx.new.example"}, RecheckEvery: jobspec.Duration(24 * time.Hour)}
	var tooEarly, noReason, accepted *updateOutcome
	h.at(2*time.Hour, func() {
		tooEarly = h.update(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"mx_switched"}, Reason: "relay"})
		h.signal(emailapi.Approve, "lead")
	})
	h.at(3*time.Hour, func() { h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	h.at(4*time.Hour, func() {
		noReason = h.update(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"mx_switched"}})
		accepted = h.update(emailapi.Approve, emailapi.Request{By: "lead", Accept: []string{"mx_switched"},
			Reason: "relay.example.net forwards to the destination"})
	})
	h.at(6*time.Hour, func() { h.signal(emailapi.Close, "lead") })
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, nil)
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if tooEarly == nil {
		t.Errorf("tooEarly is nil; accepting mx_switched before the switch: %+v", tooEarly)
	} else if tooEarly.Rejected == nil {
		t.Errorf("tooEarly.Rejected is nil; accepting mx_switched before the switch: %+v", tooEarly)
	} else if !strings.Contains(tooEarly.Rejected.Error(), "mx_switched does not warn") {
		t.Errorf("strings.Contains(tooEarly.Rejected.Error(), \"mx_switched does not warn\") is false; accepting mx_switched before the switch: %+v",
			tooEarly)
	}
	if noReason == nil {
		t.Errorf("noReason is nil; accept without reason: %+v", noReason)
	} else if noReason.Rejected == nil {
		t.Errorf("noReason.Rejected is nil; accept without reason: %+v", noReason)
	} else if !strings.Contains(noReason.Rejected.Error(), "reason") {
		t.Errorf("strings.Contains(noReason.Rejected.Error(), \"reason\") is false; accept without reason: %+v",
			noReason)
	}
	if accepted == nil {
		t.Fatalf("accepted is nil; accept: %+v", accepted)
	}
	if accepted.Rejected != nil {
		t.Fatalf("accepted.Rejected = %v, want nil; accept: %+v", accepted.Rejected, accepted)
	}
	if accepted.Err != nil {
		t.Fatalf("accepted.Err = %v, want nil; accept: %+v", accepted.Err, accepted)
	}
	c := checkOf(res.Checks, model.CheckMXSwitched)
	if res.Phase != model.PhaseClosed || !c.Accepted || !strings.Contains(c.Message, "relay.example.net forwards") {
		t.Errorf("job ended in %s, mx_switched %+v", res.Phase, c)
	}
}
