package mail

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
)

// TestUnsureFlagsSurviveUIDValidityChange (defects 4 and 5 together): a pass sends a flag
// change (a keyword added on the source) and dies before it records the outcome, so the
// ledger's flags for that copy are unsure; the source then drops the keyword again and its
// UIDVALIDITY changes (a restore) before the next pass. The copy becomes a prior claim and is
// adopted again; the flags its claim carries are not what the destination holds, so the
// adoption must compare the source's flags with the destination's, or the keyword the failed
// attempt stored stays there for ever.
func TestUnsureFlagsSurviveUIDValidityChange(t *testing.T) {
	t.Parallel()
	e, src, dst := keywordStoreLeftUnsure(t)
	before := folderView(t, dst.alice, "INBOX")
	if !cmp.Equal(before[0], "<ascii@example.org> [$Todo]") {
		t.Fatalf("the stopped attempt did not store the keyword (the test needs it): %v", before)
	}

	setFlags(t, src.alice, "INBOX", "<ascii@example.org>", nil)
	if _, err := src.dovecot.Doveadm(t, "mailbox", "update", "--uid-validity", "7654321", "-u", "alice", "INBOX"); err != nil {
		t.Fatal(err)
	}
	for pass := range 2 {
		if st := e.sync(model.ModeCopy); st.Transferred != 0 {
			t.Errorf("pass %d after the UIDVALIDITY change transferred %d, want 0", pass+1, st.Transferred)
		}
		if diff := cmp.Diff(folderView(t, src.alice, "INBOX"), folderView(t, dst.alice, "INBOX")); diff != "" {
			t.Errorf("pass %d: destination differs from the source (-source +destination):\n%s", pass+1, diff)
		}
	}
	e.requireClean(0)
}

// TestCyrusAdoptsRewrittenMailAlreadyThere: the destination already holds the mailbox's 8-bit
// messages (another tool copied them before), stored rewritten by Cyrus. The first pass finds
// them by the rewrite-tolerant key instead of copying them again, and verification reports
// them present and rewritten.
func TestCyrusAdoptsRewrittenMailAlreadyThere(t *testing.T) {
	t.Parallel()
	e, src, dst := newInteropEnv(t, dovecot, cyrus)
	corpus := eightBit()
	mailtest.SeedIMAP(t, src.alice, corpus)
	for _, m := range corpus {
		dst.alice.Append(t, "INBOX", m.Raw, m.Flags, m.Date)
	}
	if st := e.sync(model.ModeCopy); st.Transferred != 0 {
		t.Errorf("first pass transferred %d, want 0 (all four are on the destination)", st.Transferred)
	}
	if n := len(dst.alice.Messages(t, "INBOX").Messages); n != len(corpus) {
		t.Errorf("destination INBOX holds %d messages, want %d", n, len(corpus))
	}
	if rep := e.requireClean(0); rep.Rewritten != 3 {
		t.Errorf("verify: %d rewritten, want 3", rep.Rewritten)
	}
}
