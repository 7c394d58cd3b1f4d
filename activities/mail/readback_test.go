package mail

import (
	"testing"

	"github.com/cutover/cutover/activities/mail/mailtest"
)

// TestCopiesAreReadBackBesideTheCopy: the destination identities of a folder's copies are
// read back batch by batch on the destination control connection while the appender goes on
// (a NOOP and a UID FETCH per answered batch), not all at the folder's end; every copy's
// destination identity ends in the ledger.
func TestCopiesAreReadBackBesideTheCopy(t *testing.T) {
	ce := newCostEnv(t, 0)
	mailtest.SeedMaildir(t, ce.env.src, "alice", mailtest.Bulk(mailtest.BulkOptions{Messages: 120, Folders: []string{"INBOX"}, Seed: 11, Prefix: "rb"}))
	ce.eng.BatchMessages, ce.eng.ChunkMessages = 10, 40 // 12 batches in 3 chunks
	st, _, dst := ce.pass(t, false)
	if st.Transferred != 120 {
		t.Fatalf("st.Transferred: want 120; transferred %d pending %d", st.Transferred, st.Pending)
	}
	t.Logf("destination: %v", dst)
	// One EXAMINE per chunk, a NOOP before each later batch's read-back: 12 read-backs.
	if got := dst.ByName["EXAMINE"] + dst.ByName["NOOP"]; got < 12 {
		t.Errorf("dst EXAMINE+NOOP = %d, want >= 12 (a read-back per batch); destination %v", got, dst)
	}
	if got := dst.ByName["UID FETCH"]; got < 12 {
		t.Errorf("dst UID FETCH = %d, want >= 12 (a read-back per batch); destination %v", got, dst)
	}
	for _, r := range ledgerRows(t, ce.env, "INBOX") {
		if r.DestIdentity == nil {
			t.Errorf("source UID %d: destination identity not recorded", r.SourceUID)
		} else if *r.DestIdentity != r.Identity {
			t.Errorf("source UID %d: destination identity %s, want the source's %s (Dovecot stores what it gets)",
				r.SourceUID, *r.DestIdentity, r.Identity)
		}
	}
}
