// Package dnscheck looks up what the migration plan says to watch in DNS: the domain's MX and
// the IMAP host name users connect to, with their TTLs (lowered to a few minutes before the
// migration hour, so the switch takes effect fast), and after the switch whether MX points at
// the destination. It asks one resolver directly (CUTOVER_DNS_SERVER, else the system's) so
// the TTLs it reports are the ones that resolver hands out.
package dnscheck

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/heartbeat"
)

// EnvServer names the resolver to ask, host or host:port (default port 53).
const EnvServer = "CUTOVER_DNS_SERVER"

// ErrTypeLookup is the error type of a failed lookup (retried).
const ErrTypeLookup = "DNSLookup"

// Request asks for the records of a job.
type Request struct {
	Domain   string `json:"domain"`
	IMAPHost string `json:"imap_host,omitempty"` // the name users' IMAP clients connect to
	// MXHosts are the destination's mail exchangers: after the switch every MX must be one.
	MXHosts []string `json:"mx_hosts,omitempty"`
}

// Record is one name's answer.
type Record struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"` // MX | A | AAAA | CNAME
	Values []string `json:"values"`
	TTL    uint32   `json:"ttl"` // seconds, the smallest of the answer's records
}

// Report is what the lookups found.
type Report struct {
	Records    []Record `json:"records"`
	MXSeen     []string `json:"mx_seen"`     // the MX hosts, by preference
	MXSwitched bool     `json:"mx_switched"` // every MX host is one of MXHosts
	Server     string   `json:"server"`      // the resolver asked
}

// Activities is registered on the worker; CheckDNS is the activity type name.
type Activities struct {
	// Server is the resolver, host:port; "" = the first nameserver of /etc/resolv.conf.
	Server  string
	Timeout time.Duration // per query, default 5s
}

// CheckDNS looks up the domain's MX and the IMAP host name.
func (a *Activities) CheckDNS(ctx context.Context, req Request) (Report, error) {
	defer heartbeat.KeepAlive(ctx, nil)() // a resolver that does not answer takes Timeout per query
	server, err := a.server()
	if err != nil {
		return Report{}, err
	}
	rep := Report{Server: server}
	mx, err := a.query(ctx, server, req.Domain, dns.TypeMX)
	if err != nil {
		return rep, err
	}
	rep.Records = append(rep.Records, mx)
	rep.MXSeen = mx.Values
	rep.MXSwitched = len(mx.Values) > 0
	for _, h := range mx.Values {
		rep.MXSwitched = rep.MXSwitched && slices.ContainsFunc(req.MXHosts, func(w string) bool { return sameName(w, h) })
	}
	if req.IMAPHost != "" && net.ParseIP(req.IMAPHost) == nil {
		for _, t := range []uint16{dns.TypeCNAME, dns.TypeA} {
			r, err := a.query(ctx, server, req.IMAPHost, t)
			if err != nil {
				return rep, err
			}
			if len(r.Values) > 0 {
				rep.Records = append(rep.Records, r)
				break // a CNAME's TTL is the one clients cache for the name
			}
		}
	}
	return rep, nil
}

func sameName(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func (a *Activities) server() (string, error) {
	s := a.Server
	if s == "" {
		cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cfg.Servers) == 0 {
			return "", temporal.NewNonRetryableApplicationError(
				"no resolver: set "+EnvServer+" on the worker (host or host:port)", ErrTypeLookup, nil)
		}
		s = net.JoinHostPort(cfg.Servers[0], cfg.Port)
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(s, "53")
	}
	return s, nil
}

// query asks one question; an empty answer (NXDOMAIN, no data) is a record without values.
func (a *Activities) query(ctx context.Context, server, name string, t uint16) (Record, error) {
	rec := Record{Name: strings.TrimSuffix(name, "."), Type: dns.TypeToString[t]}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	c := &dns.Client{Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	m.RecursionDesired = true
	in, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return rec, temporal.NewApplicationError(fmt.Sprintf("%s %s at %s: %v", rec.Type, rec.Name, server, err), ErrTypeLookup)
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return rec, temporal.NewApplicationError(fmt.Sprintf("%s %s at %s: %s", rec.Type, rec.Name, server,
			dns.RcodeToString[in.Rcode]), ErrTypeLookup)
	}
	type mxv struct {
		pref uint16
		host string
	}
	var mxs []mxv
	for _, rr := range in.Answer {
		if rr.Header().Rrtype != t {
			continue // the CNAME chain of an A answer
		}
		if rec.TTL == 0 || rr.Header().Ttl < rec.TTL {
			rec.TTL = rr.Header().Ttl
		}
		switch v := rr.(type) {
		case *dns.MX:
			mxs = append(mxs, mxv{v.Preference, strings.TrimSuffix(v.Mx, ".")})
		case *dns.A:
			rec.Values = append(rec.Values, v.A.String())
		case *dns.AAAA:
			rec.Values = append(rec.Values, v.AAAA.String())
		case *dns.CNAME:
			rec.Values = append(rec.Values, strings.TrimSuffix(v.Target, "."))
		}
	}
	slices.SortStableFunc(mxs, func(x, y mxv) int { return int(x.pref) - int(y.pref) })
	for _, m := range mxs {
		rec.Values = append(rec.Values, m.host)
	}
	return rec, nil
}
