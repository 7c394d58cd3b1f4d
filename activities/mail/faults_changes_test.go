package mail

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestFaultSourceChangesBetweenPasses changes both servers behind the engine's back between a
// first pass and a mirror presync: the source's Archive gets a new UIDVALIDITY, the
// destination's INBOX too, the source renames Projects/Big to Projects/Huge and deletes Old
// (with its messages). The presync must succeed, re-identify instead of re-copying, bring the
// renamed folder over exactly once under its new name, and leave what the destination holds
// in folders the source no longer has untouched (a destination folder is never deleted; the
// renamed folder's old copy stays until an operator removes it). A third pass finds nothing
// to do.
func TestFaultSourceChangesBetweenPasses(t *testing.T) {
	e := newEnv(t, nil, nil)
	corpus := mailtest.Bulk(mailtest.BulkOptions{Messages: 160, Folders: []string{"INBOX", "Archive", "Projects/Big", "Old"}, Seed: 5})
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	if st := e.sync(model.ModeCopy); st.Transferred != 160 {
		t.Fatalf("st.Transferred: want 160; first pass: transferred %d pending %d", st.Transferred, st.Pending)
	} else if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; first pass: transferred %d pending %d", st.Transferred, st.Pending)
	}
	e.requireClean(0)
	before := rawMessages(t, client(t, e.dst, dstPassword))

	for _, args := range [][]string{
		{"mailbox", "update", "-u", "alice", "--uid-validity", "424242", "Archive"},
		{"mailbox", "rename", "-u", "alice", "-s", "Projects/Big", "Projects/Huge"},
		{"mailbox", "delete", "-u", "alice", "-s", "Old"},
	} {
		if _, err := e.src.Doveadm(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.dst.Doveadm(t, "mailbox", "update", "-u", "alice", "--uid-validity", "535353", "INBOX"); err != nil {
		t.Fatal(err)
	}

	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: model.ModeMirror}, SyncOptions{})
	if err != nil {
		t.Fatalf("mirror pass after the changes: %v", err)
	}
	t.Logf("mirror pass: transferred %d deleted %d pending %d errors %v", st.Transferred, st.Deleted, st.Pending, st.ErrorsByClass)
	// Only the renamed folder's 40 messages are new to their (new) destination folder.
	if st.Transferred != 40 {
		t.Errorf("st.Transferred: want 40; transferred %d pending %d quarantined %d, want 40, 0, 0",
			st.Transferred, st.Pending, st.Quarantined)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; transferred %d pending %d quarantined %d, want 40, 0, 0",
			st.Transferred, st.Pending, st.Quarantined)
	} else if st.Quarantined != 0 {
		t.Errorf("st.Quarantined: want 0; transferred %d pending %d quarantined %d, want 40, 0, 0",
			st.Transferred, st.Pending, st.Quarantined)
	}
	if st.ErrorsByClass["uidvalidity_reset"] != 1 {
		t.Errorf("source UIDVALIDITY change not recorded: %v", st.ErrorsByClass)
	}
	e.requireClean(0)

	src := rawMessages(t, client(t, e.src, srcPassword))
	dst := rawMessages(t, client(t, e.dst, dstPassword))
	for k, bodies := range src {
		got := dst[k]
		if len(got) != 1 || !bytes.Equal(got[0], bodies[0]) {
			t.Errorf("%s: %d copies on the destination (want 1, byte-identical)", k, len(got))
		}
	}
	// What the source no longer has stays on the destination as it was.
	for k, bodies := range before {
		if strings.HasPrefix(k, "Projects/Big ") || strings.HasPrefix(k, "Old ") {
			if len(dst[k]) != len(bodies) {
				t.Errorf("%s: %d copies before the pass, %d after: a folder the source lost was changed", k, len(bodies), len(dst[k]))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(dst)) {
		if _, ok := src[k]; !ok && !strings.HasPrefix(k, "Projects/Big ") && !strings.HasPrefix(k, "Old ") {
			t.Errorf("%s: on the destination only", k)
		}
	}
	if st := e.sync(model.ModeMirror); st.Transferred != 0 {
		t.Errorf("st.Transferred: want 0; third pass: transferred %d deleted %d pending %d, want nothing",
			st.Transferred, st.Deleted, st.Pending)
	} else if st.Deleted != 0 {
		t.Errorf("st.Deleted: want 0; third pass: transferred %d deleted %d pending %d, want nothing",
			st.Transferred, st.Deleted, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; third pass: transferred %d deleted %d pending %d, want nothing",
			st.Transferred, st.Deleted, st.Pending)
	}
}
