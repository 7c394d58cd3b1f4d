package mail

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/testing/faultproxy"
)

// TestChangedFolderIsOneRoundTrip counts, through proxies in front of both Dovecots, what a
// changed folder adds to a pass over an otherwise unchanged mailbox: a flag change costs the
// source one round trip (EXAMINE, UID SEARCH and the FETCH of flags changed since the ledger's
// modification sequence pipelined) and the destination one SELECT; a new message one round
// trip more on the source (its body's FETCH) and a second SELECT on the destination (after
// appending on the append connection, the folder is selected again to see the copy).
func TestChangedFolderIsOneRoundTrip(t *testing.T) {
	ce := newCostEnv(t, 300)
	if st, _, _ := ce.pass(t, false); st.Transferred != 300 {
		t.Fatalf("initial pass transferred %d, want 300", st.Transferred)
	}
	// A long link on the source, so that commands sent together are seen together: the counter
	// sees each chunk as the proxy reads it, their answers come a link's delay later.
	ce.srcProxy.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, Delay: 25 * time.Millisecond})
	_, base, _ := ce.pass(t, false)
	t.Logf("no-change pass: source %v", base)

	sc := client(t, ce.env.src, srcPassword)
	if _, err := sc.Select("Trash", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	st, src, dst := ce.pass(t, false)
	t.Logf("pass after a flag change: source %v\ndestination %v", src, dst)
	if st.FlagsUpdated != 1 {
		t.Errorf("st.FlagsUpdated: want 1; flag pass: flags updated %d, transferred %d, want 1 and 0",
			st.FlagsUpdated, st.Transferred)
	} else if st.Transferred != 0 {
		t.Errorf("st.Transferred: want 0; flag pass: flags updated %d, transferred %d, want 1 and 0",
			st.FlagsUpdated, st.Transferred)
	}
	if got := src.RTTs - base.RTTs; got > 1 {
		t.Errorf("a flag change in one folder cost the source %d round trips more than a no-change pass, want 1", got)
	}
	if src.ByName["EXAMINE"] != 1 {
		t.Errorf("src.ByName[\"EXAMINE\"] = %v, want 1; flag pass: source commands %v, want one EXAMINE, UID SEARCH and UID FETCH",
			src.ByName["EXAMINE"], src.ByName)
	} else if src.ByName["UID SEARCH"] != 1 {
		t.Errorf("src.ByName[\"UID SEARCH\"] = %v, want 1; flag pass: source commands %v, want one EXAMINE, UID SEARCH and UID FETCH",
			src.ByName["UID SEARCH"], src.ByName)
	} else if src.ByName["UID FETCH"] != 1 {
		t.Errorf("src.ByName[\"UID FETCH\"] = %v, want 1; flag pass: source commands %v, want one EXAMINE, UID SEARCH and UID FETCH",
			src.ByName["UID FETCH"], src.ByName)
	}
	if dst.ByName["SELECT"] != 1 {
		t.Errorf("flag pass selected %d destination folders, want the changed one once", dst.ByName["SELECT"])
	}

	late := time.Date(2023, 5, 1, 9, 0, 0, 0, time.UTC)
	appendMsg(t, sc, "Archive/2022", mailtest.Message{Folder: "Archive/2022", Date: late,
		Raw: mailtest.Text("late@look.example", "Late <late@example.com>", "late", late, "arrived after the last pass")})
	st, src, dst = ce.pass(t, false)
	t.Logf("pass after a new message: source %v\ndestination %v", src, dst)
	if st.Transferred != 1 {
		t.Errorf("st.Transferred: want 1; new-message pass: transferred %d pending %d, want 1 and 0",
			st.Transferred, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; new-message pass: transferred %d pending %d, want 1 and 0",
			st.Transferred, st.Pending)
	}
	if got := src.RTTs - base.RTTs; got > 2 {
		t.Errorf("a new message in one folder cost the source %d round trips more than a no-change pass, want 2", got)
	}
	if dst.ByName["SELECT"] != 2 {
		t.Errorf("new-message pass sent %d destination SELECTs, want 2 (before and after the append)", dst.ByName["SELECT"])
	}
	ce.sameCounts(t)
	ce.requireClean(0)
}
