// Package e2e runs an email migration job whose mailboxes come from different source types
// (an IMAP account, an mbox tree, a PST) through the real workflows, activities, Temporal dev
// server, PostgreSQL and Dovecot, from discovered to verified.
package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/pst/psttest"
	"github.com/cutover/cutover/activities/mail/sources/sourcetest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/activities/vault/vaulttest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestMixedSourcesJobReachesVerified(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: Temporal, PostgreSQL, Dovecot, readpst")
	}
	t.Setenv(sources.EnvWorkDir, t.TempDir())
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	v, _ := vaulttest.New(t, db.Store)

	// The IMAP source account, an mbox tree and a PST; one destination for the three.
	corpus := sourcetest.Corpus()
	src := testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: "alice-src"}},
		testenv.WithDovecotConfig("namespace inbox {", "  separator = /", "}"))
	if err := sourcetest.WriteMaildir(src.Maildir("alice"), corpus); err != nil {
		t.Fatal(err)
	}
	src.FixOwnership(t)
	mboxDir := filepath.Join(t.TempDir(), "bob-mail")
	if err := sourcetest.WriteMboxTree(mboxDir, corpus, sourcetest.MboxRD); err != nil {
		t.Fatal(err)
	}
	dst := testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: "dest-pw"}, {Name: "bob", Password: "dest-pw"},
		{Name: "carol", Password: "dest-pw"}}, testenv.WithDovecotConfig("namespace inbox {", "  separator = /", "}",
		"mail_location = maildir:~/Maildir:LAYOUT=fs"))
	srcRef, err := v.Put(ctx, vault.Secret{Password: "alice-src"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dstRef, err := v.Put(ctx, vault.Secret{Password: "dest-pw"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	srv := testenv.SharedTemporal(t)
	c := srv.Client(t)
	queue := fmt.Sprintf("e2e-sources-%d", time.Now().UnixNano())
	testenv.StartPoolWorkers(t, c, queue, worker.Options{}, func(w worker.Registry) {
		email.RegisterWorkflows(w)
		emailjob.RegisterActivities(w, &emailjob.Activities{DB: db})
		w.RegisterActivity(&mail.Activities{DB: db, Vault: v})
	})

	spec := jobspec.Spec{JobID: 7001, TenantID: 1, Domain: "example.org",
		Source:      jobspec.Endpoint{Label: "old Dovecot", Host: src.Addr(), Security: "plain"},
		Destination: jobspec.Endpoint{Host: dst.Addr(), Security: "plain", CredentialsRef: dstRef},
		Mailboxes: []jobspec.Mailbox{
			{Email: "alice@example.org", SourceType: model.SourceIMAP, User: "alice", CredentialsRef: srcRef, DestUser: "alice"},
			{Email: "bob@example.org", SourceType: model.SourceMbox, SourcePath: mboxDir, DestUser: "bob"},
			{Email: "carol@example.org", SourceType: model.SourcePST, SourcePath: psttest.Path(t, "outlook.pst"), DestUser: "carol"},
		},
		Schedule: jobspec.Schedule{PresyncInterval: jobspec.Duration(time.Hour), PresyncMode: model.ModeCopy,
			FinalSyncDelay: jobspec.Duration(time.Second), Soak: jobspec.Duration(time.Hour)},
	}
	id := emailapi.WorkflowID(spec.JobID)
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, emailapi.WorkflowName, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), id, "", "test over") })
	update := func(name string, r emailapi.Request) emailapi.Ack {
		t.Helper()
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: []any{r},
			WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var ack emailapi.Ack
		if err := h.Get(ctx, &ack); err != nil {
			t.Fatalf("%s: %v\nstatus: %+v", name, err, status(t, c, id))
		}
		return ack
	}

	wait(t, c, id, "delta_sync", func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })
	if ack := update(emailapi.Approve, emailapi.Request{By: "ops-lead", Note: "three source types"}); ack.Gate != model.GateReadyForDNS {
		t.Fatalf("approve: %+v\nstatus %+v", ack, status(t, c, id))
	}
	now := time.Now()
	update(emailapi.SetCutoverTime, emailapi.Request{By: "ops", At: &now})
	wait(t, c, id, "cutover_ready", func(s emailapi.Status) bool { return s.Phase == model.PhaseCutoverReady })
	update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "ops-lead"})
	st := wait(t, c, id, "verified", func(s emailapi.Status) bool { return s.Phase == model.PhaseVerified })
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; verify %+v", st.Verify)
	}
	if !st.Verify.OK {
		t.Fatalf("st.Verify.OK is false; verify %+v", st.Verify)
	}
	if st.Verify.Missing != 0 {
		t.Fatalf("st.Verify.Missing = %v, want 0; verify %+v", st.Verify.Missing, st.Verify)
	}
	if st.Verify.Quarantined != 0 {
		t.Fatalf("st.Verify.Quarantined = %v, want 0; verify %+v", st.Verify.Quarantined, st.Verify)
	}

	// The control tables agree: every mailbox ok with its messages, runs named by source.
	mbs, err := db.ListMailboxes(ctx, spec.JobID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"alice@example.org": int64(len(corpus)), "bob@example.org": int64(len(corpus)), "carol@example.org": 2}
	for _, m := range mbs {
		if m.Status != model.MailboxOK {
			t.Errorf("m.Status: want model.MailboxOK; %s: status %s, %d/%d messages, want ok %d",
				m.Email, m.Status, m.MessagesDest, m.MessagesSource, want[m.Email])
		} else if m.MessagesSource != want[m.Email] {
			t.Errorf("m.MessagesSource: want want[m.Email]; %s: status %s, %d/%d messages, want ok %d",
				m.Email, m.Status, m.MessagesDest, m.MessagesSource, want[m.Email])
		} else if m.MessagesDest != want[m.Email] {
			t.Errorf("m.MessagesDest: want want[m.Email]; %s: status %s, %d/%d messages, want ok %d",
				m.Email, m.Status, m.MessagesDest, m.MessagesSource, want[m.Email])
		}
		runs, err := db.ListRuns(ctx, spec.JobID, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, r := range runs {
			kinds = append(kinds, string(r.RunType)+"/"+string(r.Tool))
		}
		all := strings.Join(kinds, " ")
		switch m.SourceType {
		case model.SourcePST:
			if !strings.Contains(all, "pst_extract/readpst") || !strings.Contains(all, "pst_upload/imap-upload") || !strings.Contains(all, "final/imap-upload") {
				t.Errorf("%s runs: %s", m.Email, all)
			}
		case model.SourceMbox:
			if !strings.Contains(all, "initial/imap-upload") || !strings.Contains(all, "final/imap-upload") {
				t.Errorf("%s runs: %s", m.Email, all)
			}
		case model.SourceIMAP:
			if !strings.Contains(all, "initial/imapsync") || !strings.Contains(all, "final/imapsync") {
				t.Errorf("%s runs: %s", m.Email, all)
			}
		}
	}
	// The workflow mirrors a phase into migration_jobs by an activity right after entering it,
	// so the row may trail the query by a moment.
	var job store.Job
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if job, err = db.GetJob(ctx, spec.JobID); err != nil {
			t.Fatal(err)
		}
		if job.Phase.Index() >= model.PhaseVerified.Index() || time.Now().After(deadline) {
			break
		}
	}
	if job.Phase != model.PhaseVerified && job.Phase != model.PhaseClosed {
		t.Errorf("migration_jobs.phase = %s, want verified", job.Phase)
	}
}

func status(t *testing.T, c client.Client, id string) emailapi.Status {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), id, "", emailapi.QueryStatus)
	if err != nil {
		t.Fatalf("query %s: %v", id, err)
	}
	var s emailapi.Status
	if err := v.Get(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// wait polls the status query until ok holds, failing with the last status after a deadline.
func wait(t *testing.T, c client.Client, id, what string, ok func(emailapi.Status) bool) emailapi.Status {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last emailapi.Status
	for time.Now().Before(deadline) {
		v, err := c.QueryWorkflow(context.Background(), id, "", emailapi.QueryStatus)
		if err == nil {
			last = emailapi.Status{}
			if err = v.Get(&last); err == nil && ok(last) {
				return last
			}
		}
		if last.State == "failed" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s not reached: phase %s gate %s state %s error %q checks %+v mailboxes %+v", what, last.Phase, last.Gate,
		last.State, last.LastError, last.Checks, last.MailboxDetails)
	return last
}
