package mail

import (
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
)

// TestListingBehindLoginInterop runs passes against each server on each side, a 30 ms link
// and a counting proxy in front of it: the first passes learn whether the server keeps what is
// pipelined behind a LOGIN (a NOOP, probesToKeep sessions in a row), and later passes send
// NAMESPACE and the listing behind the LOGIN where it does (Dovecot, Cyrus: one round trip
// after the greeting). Courier's login process drops what follows the LOGIN when the bytes
// arrive together: it is learnt as dropping, or, if its probes were all answered, the
// pipelined pass falls back and it is learnt then. Every pass is right.
func TestListingBehindLoginInterop(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		side     string // the side under test
		keeps    bool   // the server under test keeps pipelined input
	}{
		{dovecot, dovecot, "source", true},
		{cyrus, dovecot, "source", true},
		{courier, dovecot, "source", false},
		{dovecot, cyrus, "destination", true},
		{dovecot, courier, "destination", false},
	} {
		t.Run(fmt.Sprintf("%s_%s_to_%s", tc.side, tc.src, tc.dst), func(t *testing.T) {
			t.Parallel()
			e, src, _ := newInteropEnv(t, tc.src, tc.dst)
			d := time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)
			var msgs []mailtest.Message
			for i := range 8 {
				folder := []string{"INBOX", "Work", "Work/Old"}[i%3]
				msgs = append(msgs, mailtest.Message{Folder: folder, Date: d.Add(time.Duration(i) * time.Hour),
					Raw: mailtest.Text(fmt.Sprintf("m%d@behind.example", i), "A <a@example.com>", fmt.Sprintf("message %d", i), d, "body\n")})
			}
			mailtest.SeedIMAP(t, src.alice, msgs)
			ep := &e.spec.Source
			if tc.side == "destination" {
				ep = &e.spec.Dest
			}
			p, err := faultproxy.New(ep.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			ep.Addr = p.Addr()
			forgetServers(p.Addr())
			cnt := countIMAP(p)
			p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: 30 * time.Millisecond})
			if st := e.sync(model.ModeCopy); st.Transferred != 8 {
				t.Fatalf("st.Transferred = %d, want 8 (the initial pass)", st.Transferred)
			}
			cfg := endpointConfig(*ep)
			for pass := range probesToKeep + 1 {
				_, before := recall(cfg)
				cnt.reset()
				st, took := e.timedSync(model.ModeCopy)
				tally := cnt.tally()
				_, after := recall(cfg)
				t.Logf("no-change pass %d: %v, keeps %d then %d; %s side: %v", pass, took.Round(time.Millisecond), before, after, tc.side, tally)
				if st.Transferred != 0 {
					t.Errorf("st.Transferred = %d in no-change pass %d, want 0", st.Transferred, pass)
				}
				if st.Found != 8 {
					t.Errorf("st.Found = %d in no-change pass %d, want 8", st.Found, pass)
				}
				if st.Pending != 0 {
					t.Errorf("st.Pending = %d in no-change pass %d, want 0", st.Pending, pass)
				}
				if !tc.keeps {
					if took >= behindWait && after != -1 {
						t.Errorf("no-change pass %d waited %v, and the server is still not known to drop pipelined input (keeps %d)", pass, took, after)
					}
					continue
				}
				if took >= behindWait {
					t.Errorf("no-change pass %d took %v, want less than %v (no wait for an answer that never came)", pass, took, behindWait)
				}
				if tally.Sessions != 1 {
					t.Errorf("tally.Sessions = %d in no-change pass %d, want 1: %v", tally.Sessions, pass, tally)
				}
				if pass < probesToKeep-1 {
					continue // still probing
				}
				if after != 1 {
					t.Errorf("keeps = %d after no-change pass %d, want 1 (%d probes answered)", after, pass, probesToKeep)
				}
				if before == 1 && tally.RTTs > 2 {
					t.Errorf("tally.RTTs = %d in no-change pass %d, want 2 (the greeting; LOGIN, NAMESPACE and LIST together): %v",
						tally.RTTs, pass, tally)
				}
				if before == 1 && tally.ByName["NOOP"] != 0 {
					t.Errorf("tally.ByName[\"NOOP\"] = %d in no-change pass %d, want 0 (the server is known): %v", tally.ByName["NOOP"], pass, tally)
				}
			}
			if _, keeps := recall(cfg); tc.keeps && keeps != 1 {
				t.Errorf("keeps = %d after the passes, want 1", keeps)
			}
			e.requireClean(0)
		})
	}
}

// forceMemo sets what this process knows of a server, past remember's rule that a server once
// seen dropping pipelined input stays so.
func forceMemo(cfg imapx.Config, caps imap.CapSet, keeps int) {
	servers.Lock()
	servers.m[serverKey(cfg)] = &serverMemo{caps: caps, keeps: keeps}
	servers.Unlock()
}

// TestListingBehindLoginFallsBack: where what is known of a server is wrong, a pass still
// comes right. Dovecot remembered with capabilities it no longer has (no LIST-STATUS): the
// listing sent behind the LOGIN is in the wrong shape, so it is read, dropped and sent again
// in the right one. (A server taken for one that keeps pipelined input when it drops it:
// TestPlanningSessionLearnsAServerDropsPipelinedInput.)
func TestListingBehindLoginFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  string
		caps  func(imap.CapSet) imap.CapSet
		keeps int // after the pass
		lists int // LIST commands of the pass
		conns int
	}{
		{"dovecot_with_old_capabilities", dovecot, func(imap.CapSet) imap.CapSet {
			return imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}}
		}, 1, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, src, _ := newInteropEnv(t, tc.kind, dovecot)
			d := time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)
			mailtest.SeedIMAP(t, src.alice, []mailtest.Message{{Folder: "INBOX", Date: d,
				Raw: mailtest.Text("m@behind.example", "A <a@example.com>", "m", d, "body\n")}})
			p, err := faultproxy.New(e.spec.Source.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			e.spec.Source.Addr = p.Addr()
			forgetServers(p.Addr())
			cnt := countIMAP(p)
			if st := e.sync(model.ModeCopy); st.Transferred != 1 {
				t.Fatalf("st.Transferred = %d, want 1 (the initial pass)", st.Transferred)
			}
			cfg := endpointConfig(e.spec.Source)
			caps, _ := recall(cfg)
			forceMemo(cfg, tc.caps(caps), 1)
			cnt.reset()
			st, took := e.timedSync(model.ModeCopy)
			tally := cnt.tally()
			t.Logf("pass: %v; source: %v", took.Round(time.Millisecond), tally)
			if st.Found != 1 {
				t.Errorf("st.Found = %d, want 1", st.Found)
			}
			if st.Transferred != 0 {
				t.Errorf("st.Transferred = %d, want 0", st.Transferred)
			}
			if took > behindWait+5*time.Second {
				t.Errorf("the pass took %v, want at most behindWait and a new dial", took)
			}
			if _, keeps := recall(cfg); keeps != tc.keeps {
				t.Errorf("keeps = %d after the pass, want %d", keeps, tc.keeps)
			}
			if tc.lists > 0 && tally.ByName["LIST"] != tc.lists {
				t.Errorf("tally.ByName[\"LIST\"] = %d, want %d: %v", tally.ByName["LIST"], tc.lists, tally)
			}
			if len(tally.Conns) != tc.conns {
				t.Errorf("len(tally.Conns) = %d, want %d: %v", len(tally.Conns), tc.conns, tally)
			}
			e.requireClean(0)
		})
	}
}
