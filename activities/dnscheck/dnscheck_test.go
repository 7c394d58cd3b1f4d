package dnscheck

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/internal/testing/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestLooksUpMXAndTheIMAPHostWithTheirTTLs(t *testing.T) {
	t.Parallel()
	s := testenv.StartDNS(t)
	s.Set(t, "example.com", "MX", 3600, "20 mx2.old.example.", "10 mx1.old.example.")
	s.Set(t, "imap.example.com", "CNAME", 600, "mail.old.example.")
	s.Set(t, "mail.new.example", "A", 120, "192.0.2.7")
	a := &Activities{Server: s.Addr}
	req := Request{Domain: "example.com", IMAPHost: "imap.example.com", MXHosts: []string{"mx.new.example"}}

	got, err := a.CheckDNS(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Server: s.Addr, MXSeen: []string{"mx1.old.example", "mx2.old.example"}, Records: []Record{
		{Name: "example.com", Type: "MX", Values: []string{"mx1.old.example", "mx2.old.example"}, TTL: 3600},
		{Name: "imap.example.com", Type: "CNAME", Values: []string{"mail.old.example"}, TTL: 600},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("before the switch (-want +got):\n%s", d)
	}

	s.Set(t, "example.com", "MX", 300, "10 MX.new.example.")
	s.Set(t, "imap.example.com", "CNAME", 300)
	s.Set(t, "imap.example.com", "A", 300, "192.0.2.7")
	got, err = a.CheckDNS(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want = Report{Server: s.Addr, MXSeen: []string{"MX.new.example"}, MXSwitched: true, Records: []Record{
		{Name: "example.com", Type: "MX", Values: []string{"MX.new.example"}, TTL: 300},
		{Name: "imap.example.com", Type: "A", Values: []string{"192.0.2.7"}, TTL: 300},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after the switch (-want +got):\n%s", d)
	}

	// No MX at all: not switched, and said so.
	got, err = a.CheckDNS(context.Background(), Request{Domain: "nomx.example", MXHosts: []string{"mx.new.example"}})
	if err != nil {
		t.Errorf("err: want nil; no MX: %+v, %v", got, err)
	} else if got.MXSwitched {
		t.Errorf("got.MXSwitched is true; no MX: %+v, %v", got, err)
	} else if len(got.MXSeen) != 0 {
		t.Errorf("len(got.MXSeen) = %v, want 0; no MX: %+v, %v", len(got.MXSeen), got, err)
	}
}
