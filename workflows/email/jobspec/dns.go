package jobspec

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultMaxTTL is the longest TTL the DNS checks accept for MX and the IMAP host name before
// the migration hour (the migration plan lowers both to 5 minutes).
const DefaultMaxTTL = 5 * time.Minute

// DNSCheck turns on the DNS checks: at preflight and before every presync the domain's MX and
// the IMAP host name are looked up and the gate warns (dns_ttl) while a TTL is above MaxTTL;
// after the DNS cutover confirmation the final sync waits (mx_switched) until MX points at
// MXHosts, or an ops lead accepts what it points at.
type DNSCheck struct {
	// IMAPHost is the name users' mail clients connect to (default: the source's host name).
	IMAPHost string `json:"imap_host,omitempty" yaml:"imap_host,omitempty"`
	// MXHosts are the destination's mail exchangers (default: the destination's host name).
	MXHosts []string `json:"mx_hosts,omitempty" yaml:"mx_hosts,omitempty"`
	// MaxTTL (default 5m).
	MaxTTL Duration `json:"max_ttl,omitempty" yaml:"max_ttl,omitempty"`
	// RecheckEvery: how often the MX is looked up again while it does not point at the
	// destination after the cutover confirmation (default 5m).
	RecheckEvery Duration `json:"recheck_every,omitempty" yaml:"recheck_every,omitempty"`
}

// withDefaults fills the names from the endpoints.
func (d DNSCheck) withDefaults(s Spec) DNSCheck {
	if d.IMAPHost == "" {
		d.IMAPHost = hostName(s.Source.Host)
	}
	if len(d.MXHosts) == 0 && hostName(s.Destination.Host) != "" {
		d.MXHosts = []string{hostName(s.Destination.Host)}
	}
	if d.MaxTTL == 0 {
		d.MaxTTL = Duration(DefaultMaxTTL)
	}
	if d.RecheckEvery == 0 {
		d.RecheckEvery = Duration(5 * time.Minute)
	}
	return d
}

func hostName(hostport string) string {
	h := hostport
	if x, _, err := net.SplitHostPort(hostport); err == nil {
		h = x
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

func (d DNSCheck) validate(p *problems) {
	if len(d.MXHosts) == 0 {
		p.add("dns.mx_hosts", "required: the destination's mail exchangers (no destination host name to default to)")
	}
	for i, h := range d.MXHosts {
		if !domainRE.MatchString(strings.ToLower(strings.TrimSuffix(h, "."))) {
			p.add(fmt.Sprintf("dns.mx_hosts[%d]", i), fmt.Sprintf("%q is not a host name", h))
		}
	}
	if d.MaxTTL < 0 || d.RecheckEvery < 0 {
		p.add("dns", "max_ttl and recheck_every must not be negative")
	}
}
