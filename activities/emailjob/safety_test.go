package emailjob_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// A job whose mailbox writes into an account another unfinished job writes into is refused
// when it starts, naming both entries; once the other job has failed (or closed) it starts.
func TestRegisterRefusesAnAccountAnotherJobUses(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := &emailjob.Activities{DB: db}
	if _, err := a.RegisterEmailJob(ctx, spec(50, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordJobState(ctx, store.JobState{ID: 50, Phase: model.PhaseDeltaSync, Gate: model.GateBlocked}, "", ""); err != nil {
		t.Fatal(err)
	}
	other := spec(51, 1)
	other.Domain = "example.net"
	other.Mailboxes[0].Email = "bob@example.net"
	other.Mailboxes[0].User = "bob"
	other.Mailboxes[0].DestUser = "U1@example.com" // job 50's second mailbox, on the same server
	_, err := a.RegisterEmailJob(ctx, other)
	if appErrType(err) != emailjob.ErrTypeAccountInUse ||
		!strings.Contains(err.Error(), "bob@example.net uses the same destination account new.example:993/u1@example.com as u1@example.com of job 50 (phase delta_sync)") {
		t.Fatalf("second job on the same destination account: %v", err)
	}
	if _, err := db.GetJob(ctx, 51); err == nil {
		t.Error("the refused job was registered anyway")
	}
	// Both entries merging on purpose may share it.
	if _, err := db.RecordJobState(ctx, store.JobState{ID: 50, Phase: model.PhaseFailed, FailedPhase: model.PhaseDeltaSync,
		Gate: model.GateBlocked}, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RegisterEmailJob(ctx, other); err != nil {
		t.Fatalf("after the other job failed: %v", err)
	}
}

// Two jobs registering at the same time onto one destination account: each transaction's
// mailboxes are invisible to the other until it commits, so both checks would find nothing.
// The second registration waits for the first to commit, then is refused naming both entries.
func TestConcurrentRegistrationsOnOneAccountRefuseTheSecond(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := &emailjob.Activities{DB: db}
	other := spec(71, 1)
	other.Domain = "example.net"
	other.Mailboxes[0].Email = "bob@example.net"
	other.Mailboxes[0].User = "bob"
	other.Mailboxes[0].DestUser = "U0@example.com" // job 70's mailbox, on the same server
	second := make(chan error, 1)
	var early error
	endedEarly := false
	err := db.InTx(ctx, func(st *store.Store) error {
		if _, err := emailjob.RegisterTx(ctx, st, spec(70, 1)); err != nil {
			return err
		}
		go func() {
			_, err := a.RegisterEmailJob(ctx, other)
			second <- err
		}()
		// Commit once the second registration waits on a lock, or has ended (it must not).
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case early = <-second:
				endedEarly = true
				return nil
			default:
			}
			var waiting int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
				return err
			}
			if waiting > 0 {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if endedEarly {
		t.Errorf("the second registration ended before the first committed (it could not see the first's "+
			"mailboxes): %v", early)
	}
	got := early
	if !endedEarly {
		select {
		case got = <-second:
		case <-time.After(time.Minute):
			t.Fatal("the second registration did not end within a minute of the first's commit")
		}
	}
	if appErrType(got) != emailjob.ErrTypeAccountInUse {
		t.Fatalf("appErrType(got) = %q, want %q; second job on the same destination account: %v",
			appErrType(got), emailjob.ErrTypeAccountInUse, got)
	}
	if want := "bob@example.net uses the same destination account new.example:993/u0@example.com as u0@example.com of job 70"; !strings.Contains(got.Error(), want) {
		t.Errorf("the refusal does not say %q: %v", want, got)
	}
	if _, err := db.GetJob(ctx, 71); err == nil {
		t.Error("the refused job was registered anyway")
	}
}

// A job restarted with a spec that no longer lists a mailbox skips it (recorded with why), and
// the workflows' page loads leave it out.
func TestRestartWithoutAMailboxSkipsIt(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := &emailjob.Activities{DB: db}
	if _, err := a.RegisterEmailJob(ctx, spec(60, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordJobState(ctx, store.JobState{ID: 60, Phase: model.PhaseFailed, FailedPhase: model.PhaseInitialSync,
		Gate: model.GateBlocked}, "", ""); err != nil {
		t.Fatal(err)
	}
	smaller := spec(60, 3)
	smaller.Mailboxes = smaller.Mailboxes[:2]
	reg, err := a.RegisterEmailJob(ctx, smaller)
	if err != nil {
		t.Fatal(err)
	}
	type skip struct{ Email, By, Reason string }
	var got []skip
	for _, s := range reg.Skipped {
		got = append(got, skip{s.Email, s.By, s.Reason})
	}
	if diff := cmp.Diff([]skip{{"u2@example.com", "spec", "left out of the job spec on restart"}}, got); diff != "" ||
		!cmp.Equal(reg.Removed, []string{"u2@example.com"}) {
		t.Errorf("registration (-want +got):\n%s removed %v", diff, reg.Removed)
	}
	jobOnly := smaller
	jobOnly.Mailboxes = nil
	page, err := a.LoadEmailMailboxes(ctx, emailapi.LoadRequest{Spec: jobOnly, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, m := range page {
		emails = append(emails, m.Email)
	}
	if diff := cmp.Diff([]string{"u0@example.com", "u1@example.com"}, emails); diff != "" {
		t.Errorf("loaded mailboxes (-want +got):\n%s", diff)
	}
	mb, err := db.ListMailboxes(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mb {
		if m.Email == "u2@example.com" && m.Status != model.MailboxSkipped {
			t.Errorf("u2 status %s", m.Status)
		}
	}
}
