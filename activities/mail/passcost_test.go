package mail

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// costFolders is the shape of the pass-cost mailbox: six folders, INBOX the largest.
var costFolders = []string{"INBOX", "INBOX", "INBOX", "Sent", "Sent", "Archive/2022", "Archive/2023", "Trash", "Drafts/Old", "Junk"}

// costEnv is newEnv with both servers behind counting proxies.
type costEnv struct {
	*env
	src, dst *imapCounter
	srcProxy *faultproxy.Proxy
}

func newCostEnv(t *testing.T, messages int) *costEnv {
	t.Helper()
	e := newEnv(t, nil, nil)
	mailtest.SeedMaildir(t, e.src, "alice", mailtest.Bulk(mailtest.BulkOptions{Messages: messages, Folders: costFolders, Seed: 7, Prefix: "cost"}))
	ce := &costEnv{env: e}
	for _, side := range []struct {
		ep    *emailapi.Endpoint
		cnt   **imapCounter
		proxy **faultproxy.Proxy
	}{{&e.spec.Source, &ce.src, &ce.srcProxy}, {&e.spec.Dest, &ce.dst, new(*faultproxy.Proxy)}} {
		p, err := faultproxy.New(side.ep.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		side.ep.Addr = p.Addr()
		forgetServers(p.Addr())
		*side.cnt, *side.proxy = countIMAP(p), p
	}
	return ce
}

// pass runs one pass and returns it with what each side saw of it.
func (ce *costEnv) pass(t *testing.T, recheck bool) (emailapi.PassStats, imapTally, imapTally) {
	t.Helper()
	ce.src.reset()
	ce.dst.reset()
	st, err := ce.eng.Sync(context.Background(), emailapi.PassRequest{Spec: ce.spec, Mode: model.ModeCopy, RunType: model.RunDelta,
		Phase: model.PhaseDeltaSync, RecheckDest: recheck}, SyncOptions{})
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	return st, ce.src.tally(), ce.dst.tally()
}

// sameCounts reads both servers directly and fails where a destination folder's count differs
// from its source folder's (the folders map one to one in this mailbox).
func (ce *costEnv) sameCounts(t *testing.T) {
	t.Helper()
	sc, dc := client(t, ce.env.src, srcPassword), client(t, ce.env.dst, dstPassword)
	for src, dst := range map[string]string{"INBOX": "INBOX", "Sent": "INBOX.Sent", "Archive/2022": "INBOX.Archive.2022",
		"Archive/2023": "INBOX.Archive.2023", "Trash": "INBOX.Trash", "Drafts/Old": "INBOX.Drafts.Old", "Junk": "INBOX.Junk"} {
		if s, d := count(t, sc, src), count(t, dc, dst); s != d {
			t.Errorf("%s holds %d messages, its destination %s %d", src, s, dst, d)
		}
	}
}

// TestPassCostIsBoundedByRoundTrips counts, through proxies in front of both Dovecots, the
// logins and commands of passes over a seven-folder mailbox: a pass over an unchanged mailbox
// logs in once per side and costs the source a handful of commands whatever the folder count;
// the destination check of every folder stays on that one session; a change in one folder adds
// only that folder's commands (and the append connection when something is copied).
func TestPassCostIsBoundedByRoundTrips(t *testing.T) {
	ce := newCostEnv(t, 300)
	st, src, dst := ce.pass(t, false)
	if st.Transferred != 300 {
		t.Fatalf("st.Transferred: want 300; initial pass: transferred %d pending %d, want 300/0",
			st.Transferred, st.Pending)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; initial pass: transferred %d pending %d, want 300/0",
			st.Transferred, st.Pending)
	}
	t.Logf("initial pass: source %v\ndestination %v", src, dst)
	ce.sameCounts(t)

	st, src, dst = ce.pass(t, false)
	t.Logf("no-change pass: source %v\ndestination %v", src, dst)
	if st.Transferred != 0 {
		t.Errorf("st.Transferred: want 0; no-change pass: transferred %d pending %d found %d, want 0/0/300",
			st.Transferred, st.Pending, st.Found)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; no-change pass: transferred %d pending %d found %d, want 0/0/300",
			st.Transferred, st.Pending, st.Found)
	} else if st.Found != 300 {
		t.Errorf("st.Found: want 300; no-change pass: transferred %d pending %d found %d, want 0/0/300",
			st.Transferred, st.Pending, st.Found)
	}
	if src.Sessions != 1 {
		t.Errorf("src.Sessions: want 1; no-change pass logged in %d time(s) on the source and %d on the destination, want once each",
			src.Sessions, dst.Sessions)
	} else if dst.Sessions != 1 {
		t.Errorf("dst.Sessions: want 1; no-change pass logged in %d time(s) on the source and %d on the destination, want once each",
			src.Sessions, dst.Sessions)
	}
	// LOGIN, NAMESPACE, LIST (with STATUS), LOGOUT: nothing per folder; and while the server is
	// being learnt, a NOOP behind the LOGIN (behind.go), in its round trip.
	if src.ByName["NOOP"] > 1 {
		t.Errorf("src.ByName[\"NOOP\"] = %d, want at most 1 (the probe behind the LOGIN): %v", src.ByName["NOOP"], src)
	}
	if src.Commands-src.ByName["NOOP"] > 4 {
		t.Errorf("src.Commands: want <= 4 and the probe; no-change pass sent the source %d commands in %d round trips, want at most 4 in 5",
			src.Commands, src.RTTs)
	} else if src.RTTs > 5 {
		t.Errorf("src.RTTs: want <= 5; no-change pass sent the source %d commands in %d round trips, want at most 4 in 5",
			src.Commands, src.RTTs)
	}
	if src.ByName["SELECT"]+src.ByName["EXAMINE"]+src.ByName["STATUS"] != 0 {
		t.Errorf("src.ByName[\"SELECT\"]+src.ByName[\"EXAMINE\"]+src.ByName[\"STATUS\"] = %v, want 0; no-change pass opened folders: source %v, destination %v",
			src.ByName["SELECT"]+src.ByName["EXAMINE"]+src.ByName["STATUS"], src.ByName, dst.ByName)
	} else if dst.ByName["SELECT"] != 0 {
		t.Errorf("dst.ByName[\"SELECT\"] = %v, want 0; no-change pass opened folders: source %v, destination %v",
			dst.ByName["SELECT"], src.ByName, dst.ByName)
	}

	// The destination check compares every folder's UIDs with the ledger, on the one session.
	st, src, dst = ce.pass(t, true)
	t.Logf("no-change pass with the destination check: source %v\ndestination %v", src, dst)
	if st.Transferred != 0 {
		t.Errorf("st.Transferred: want 0; destination check: transferred %d recopied %d, want 0",
			st.Transferred, st.Recopied)
	} else if st.Recopied != 0 {
		t.Errorf("st.Recopied: want 0; destination check: transferred %d recopied %d, want 0",
			st.Transferred, st.Recopied)
	}
	if src.Sessions != 1 {
		t.Errorf("src.Sessions: want 1; destination check logged in %d/%d time(s), %d source commands: want 1/1 and at most 4",
			src.Sessions, dst.Sessions, src.Commands)
	} else if dst.Sessions != 1 {
		t.Errorf("dst.Sessions: want 1; destination check logged in %d/%d time(s), %d source commands: want 1/1 and at most 4",
			src.Sessions, dst.Sessions, src.Commands)
	} else if src.Commands-src.ByName["NOOP"] > 4 {
		t.Errorf("src.Commands: want <= 4 and the probe; destination check logged in %d/%d time(s), %d source commands: want 1/1 and at most 4",
			src.Sessions, dst.Sessions, src.Commands)
	}
	if dst.ByName["SELECT"] != 7 {
		t.Errorf("dst.ByName[\"SELECT\"]: want 7; destination check: %d SELECT and %d UID SEARCH, want 7 each (one per folder)",
			dst.ByName["SELECT"], dst.ByName["UID SEARCH"])
	} else if dst.ByName["UID SEARCH"] != 7 {
		t.Errorf("dst.ByName[\"UID SEARCH\"]: want 7; destination check: %d SELECT and %d UID SEARCH, want 7 each (one per folder)",
			dst.ByName["SELECT"], dst.ByName["UID SEARCH"])
	}

	// One new message in one folder, one flag changed in another.
	sc := client(t, ce.env.src, srcPassword)
	late := time.Date(2023, 5, 1, 9, 0, 0, 0, time.UTC)
	appendMsg(t, sc, "Archive/2022", mailtest.Message{Folder: "Archive/2022", Date: late,
		Raw: mailtest.Text("late@cost.example", "Late <late@example.com>", "late", late, "arrived after the last pass")})
	if _, err := sc.Select("Trash", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	st, src, dst = ce.pass(t, false)
	t.Logf("pass after one new message and one flag change: source %v\ndestination %v", src, dst)
	if st.Transferred != 1 {
		t.Errorf("st.Transferred: want 1; delta pass: transferred %d flags updated %d pending %d, want 1/1/0",
			st.Transferred, st.FlagsUpdated, st.Pending)
	} else if st.FlagsUpdated != 1 {
		t.Errorf("st.FlagsUpdated: want 1; delta pass: transferred %d flags updated %d pending %d, want 1/1/0",
			st.Transferred, st.FlagsUpdated, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; delta pass: transferred %d flags updated %d pending %d, want 1/1/0",
			st.Transferred, st.FlagsUpdated, st.Pending)
	}
	if src.Sessions != 1 {
		t.Errorf("src.Sessions: want 1; delta pass logged in %d time(s) on the source and %d on the destination (%d idle), want 1 and at most 2 (control and append), none idle",
			src.Sessions, dst.Sessions, dst.Idle)
	} else if dst.Sessions > 2 {
		t.Errorf("dst.Sessions: want <= 2; delta pass logged in %d time(s) on the source and %d on the destination (%d idle), want 1 and at most 2 (control and append), none idle",
			src.Sessions, dst.Sessions, dst.Idle)
	} else if dst.Idle != 0 {
		t.Errorf("dst.Idle: want 0; delta pass logged in %d time(s) on the source and %d on the destination (%d idle), want 1 and at most 2 (control and append), none idle",
			src.Sessions, dst.Sessions, dst.Idle)
	}
	if src.ByName["SELECT"]+src.ByName["EXAMINE"] > 2 {
		t.Errorf("delta pass opened %d source folders, want only the two that changed", src.ByName["SELECT"]+src.ByName["EXAMINE"])
	}
	ce.sameCounts(t)
	ce.requireClean(0)
}
