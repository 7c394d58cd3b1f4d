package mail

import (
	"context"
	"testing"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func bulk(n int) []mailtest.Message {
	return mailtest.Bulk(mailtest.BulkOptions{Messages: n, Folders: []string{"INBOX", "Archive", "Projects/Big"}, Seed: 7})
}

// proxied puts a fault-injecting proxy in front of one side of the environment.
func proxied(t *testing.T, e *env, dest bool) *faultproxy.Proxy {
	t.Helper()
	target := e.src.Addr()
	if dest {
		target = e.dst.Addr()
	}
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	forgetServers(p.Addr())
	if dest {
		e.spec.Dest.Addr = p.Addr()
	} else {
		e.spec.Source.Addr = p.Addr()
	}
	return p
}

// A connection killed mid-pass — while a MULTIAPPEND literal streams, while a FETCH answer
// streams, or right before the server's OK for a stored batch reaches us — is redialled and
// the folder resumes from the ledger: every message arrives exactly once.
func TestResumeAfterConnectionCut(t *testing.T) {
	cases := []struct {
		name  string
		dest  bool
		fault faultproxy.Fault
	}{
		{"append literal cut", true, faultproxy.Fault{Dir: faultproxy.ClientToServer, CutAfter: 1 << 20, Times: 1}},
		{"fetch answer cut", false, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAfter: 1 << 20, Times: 1}},
		{"append OK lost", true, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAt: []byte("OK [APPENDUID"), Times: 1}},
		{"reset twice", true, faultproxy.Fault{Dir: faultproxy.ClientToServer, CutAfter: 1 << 20, Reset: true, Times: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			// Small chunks and batches: several workers append into one folder at once when
			// the fault hits, and the lost chunk is copied again only after the others.
			e.eng.ChunkMessages, e.eng.BatchMessages = 60, 20
			corpus := bulk(600)
			mailtest.SeedMaildir(t, e.src, "alice", corpus)
			p := proxied(t, e, c.dest)
			p.Set(c.fault)
			st := e.sync(model.ModeCopy)
			if p.Cuts() == 0 {
				t.Fatal("the fault never fired: the test proves nothing")
			}
			if st.ErrorsByClass["reconnect"] == 0 {
				t.Errorf("no reconnect recorded: %v", st.ErrorsByClass)
			}
			if st.Transferred != 600 {
				t.Errorf("st.Transferred: want 600; transferred %d pending %d, want 600 and 0 (errors %v)",
					st.Transferred, st.Pending, st.ErrorsByClass)
			} else if st.Pending != 0 {
				t.Errorf("st.Pending: want 0; transferred %d pending %d, want 600 and 0 (errors %v)",
					st.Transferred, st.Pending, st.ErrorsByClass)
			}
			dc := client(t, e.dst, dstPassword)
			total := count(t, dc, "INBOX") + count(t, dc, "INBOX.Archive") + count(t, dc, "INBOX.Projects.Big")
			if total != 600 {
				t.Fatalf("destination holds %d messages, want exactly 600", total)
			}
			e.requireClean(0)
			if st := e.sync(model.ModeCopy); st.Transferred != 0 {
				t.Errorf("next pass transferred %d", st.Transferred)
			}
			rows, _ := e.db.MailFolderCounts(context.Background(), e.spec.MailboxID)
			for id, r := range rows {
				if r.Pending != 0 {
					t.Errorf("folder %d kept %d pending rows", id, r.Pending)
				}
			}
		})
	}
}

// A server that allows fewer connections than the pass's parallelism: the extra workers hand
// their work back and the pass completes on the connections it has.
func TestConnectionLimitDegradesGracefully(t *testing.T) {
	// Three connections per user and IP on the destination: one worker (control + appender)
	// fits, a second's control connection too, but not its appender.
	e := newEnv(t, nil, []string{"mail_max_userip_connections = 3"})
	e.eng.ChunkMessages = 50
	mailtest.SeedMaildir(t, e.src, "alice", bulk(300))
	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, Parallelism: 4}, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Transferred != 300 {
		t.Fatalf("st.Transferred: want 300; transferred %d pending %d errors %v",
			st.Transferred, st.Pending, st.ErrorsByClass)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; transferred %d pending %d errors %v",
			st.Transferred, st.Pending, st.ErrorsByClass)
	}
	if st.ErrorsByClass["connection_limit"] == 0 {
		t.Fatalf("st.ErrorsByClass[\"connection_limit\"] = %v, want != 0; transferred %d pending %d errors %v",
			st.ErrorsByClass["connection_limit"], st.Transferred, st.Pending, st.ErrorsByClass)
	}
	e.requireClean(0)
}
