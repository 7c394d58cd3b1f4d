package mail

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
)

// TestChangedFolderLookInterop runs the pipelined look at changed folders (look.go) against
// each server on each side: after an initial pass, one folder gets a new message and another a
// flag change; the next pass copies the one and carries the other, and both folders read the
// same on the destination as on the source. Courier's login process drops what is pipelined
// right behind LOGIN, and neither Courier nor Cyrus answers every command as Dovecot does.
func TestChangedFolderLookInterop(t *testing.T) {
	for _, pair := range [][2]string{{cyrus, dovecot}, {courier, dovecot}, {dovecot, cyrus}, {dovecot, courier}} {
		t.Run(pair[0]+"_to_"+pair[1], func(t *testing.T) {
			t.Parallel()
			e, src, dst := newInteropEnv(t, pair[0], pair[1])
			d := time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)
			var msgs []mailtest.Message
			for i := range 6 {
				folder := []string{"INBOX", "Work"}[i%2]
				msgs = append(msgs, mailtest.Message{Folder: folder, Date: d.Add(time.Duration(i) * time.Hour),
					Raw: mailtest.Text(fmt.Sprintf("m%d@look.example", i), "A <a@example.com>", fmt.Sprintf("message %d", i), d, "body\n")})
			}
			names := mailtest.SeedIMAP(t, src.alice, msgs)
			if st := e.sync(model.ModeCopy); st.Transferred != 6 {
				t.Fatalf("initial pass transferred %d, want 6", st.Transferred)
			}
			mailtest.SeedIMAP(t, src.alice, []mailtest.Message{{Folder: "INBOX", Date: d.Add(time.Hour * 24),
				Raw: mailtest.Text("late@look.example", "A <a@example.com>", "late", d, "late\n")}})
			setFlags(t, src.alice, names["Work"], "<m1@look.example>", []string{`\Flagged`, `\Seen`})
			time.Sleep(1100 * time.Millisecond) // Courier's UIDVALIDITY counts seconds
			st := e.sync(model.ModeCopy)
			if st.Transferred != 1 {
				t.Errorf("st.Transferred: want 1; delta pass: transferred %d, flags updated %d, pending %d; want 1, 1, 0",
					st.Transferred, st.FlagsUpdated, st.Pending)
			} else if st.FlagsUpdated != 1 {
				t.Errorf("st.FlagsUpdated: want 1; delta pass: transferred %d, flags updated %d, pending %d; want 1, 1, 0",
					st.Transferred, st.FlagsUpdated, st.Pending)
			} else if st.Pending != 0 {
				t.Errorf("st.Pending: want 0; delta pass: transferred %d, flags updated %d, pending %d; want 1, 1, 0",
					st.Transferred, st.FlagsUpdated, st.Pending)
			}
			for _, f := range st.Folders {
				if diff := cmp.Diff(folderView(t, src.alice, f.Source), folderView(t, dst.alice, f.Dest)); diff != "" {
					t.Errorf("%s → %s differs (-source +destination):\n%s", f.Source, f.Dest, diff)
				}
			}
			e.requireClean(0)
		})
	}
}
