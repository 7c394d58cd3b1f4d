package testenv

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is an authoritative DNS server on loopback UDP whose records a test changes while
// it runs (a TTL lowered, MX switched).
type DNSServer struct {
	Addr string // host:port, for CUTOVER_DNS_SERVER
	srv  *dns.Server
	mu   sync.Mutex
	rrs  map[string][]dns.RR // "name.|TYPE"
}

// StartDNS starts a server with no records; Set adds them.
func StartDNS(t testing.TB) *DNSServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	Require(t, "a loopback UDP port", err)
	s := &DNSServer{Addr: pc.LocalAddr().String(), rrs: map[string][]dns.RR{}}
	started := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = s.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.srv.Shutdown() })
	return s
}

// Set replaces the records of one name and type, e.g. Set("example.com", "MX", 3600,
// "10 mx.old.example.") or Set("imap.example.com", "A", 300, "192.0.2.1").
func (s *DNSServer) Set(t testing.TB, name, typ string, ttl uint32, values ...string) {
	t.Helper()
	var rrs []dns.RR
	for _, v := range values {
		rr, err := dns.NewRR(dns.Fqdn(name) + " " + itoa(ttl) + " IN " + typ + " " + v)
		if err != nil {
			t.Fatalf("DNS record %s %s %s: %v", name, typ, v, err)
		}
		rrs = append(rrs, rr)
	}
	s.mu.Lock()
	s.rrs[strings.ToLower(dns.Fqdn(name))+"|"+typ] = rrs
	s.mu.Unlock()
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func (s *DNSServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		s.mu.Lock()
		rrs := s.rrs[strings.ToLower(q.Name)+"|"+dns.TypeToString[q.Qtype]]
		s.mu.Unlock()
		m.Answer = append(m.Answer, rrs...)
	}
	_ = w.WriteMsg(m)
}
