package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/starter/internal/stacktest"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// TestImportCSVJobVerified is bulk onboarding end to end over 40 mailboxes (make test);
// TestImportCSVJobVerified500 (make test-slow) is the same over a 500-mailbox domain.
func TestImportCSVJobVerified(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: Temporal, PostgreSQL, two Dovecots")
	}
	importToVerified(t, 40)
}

// importToVerified: a MigrationWiz CSV of users rows with a bad row is refused naming its
// line, nothing written; fixed, `cutover email import --start` stores its passwords (two per
// row) in the vault and starts the job over its mailboxes, which reaches verified against
// Dovecot, the approval's --reason in the job's notes. No password appears in the CLI's
// output, the job's history or a mailbox's spec entry; the destination holds what the source
// holds (read over IMAP by the test, a tenth of the mailboxes). It logs how long each step
// took.
func importToVerified(t *testing.T, users int) {
	const job = 811
	began := time.Now()
	s := stacktest.Start(t, stacktest.Options{Users: users, Messages: 1})
	t.Logf("%d mailboxes: stack up in %s", users, time.Since(began).Round(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(15+users/10)*time.Minute)
	defer cancel()
	env := s.Env()
	dir := t.TempDir()

	spec := s.EmailSpec(job)
	spec.Mailboxes = nil
	spec.Concurrency.Mailboxes = 20
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "job.json")
	if err := os.WriteFile(specPath, specJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password\n")
	for _, u := range s.Users {
		addr := u.Name + "@" + demo.Domain
		fmt.Fprintf(&csv, "%s,%s,%s,%s,%s,%s\n", addr, u.Name, u.SrcPassword, addr, u.Name, u.DstPassword)
	}
	good := csv.String()
	lines := strings.Split(good, "\n")
	bad := users / 2 // its line is bad+1
	lines[bad] = "not-an-address," + lines[bad][strings.Index(lines[bad], ",")+1:]
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badPath, goodPath := write("bad.csv", strings.Join(lines, "\n")), write("mailboxes.csv", good)
	noSecret := func(what, out string) {
		t.Helper()
		for _, u := range s.Users {
			if strings.Contains(out, u.SrcPassword) || strings.Contains(out, u.DstPassword) {
				t.Fatalf("%s holds %s's password", what, u.Name)
			}
		}
	}
	var credsBefore int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM migration_credentials`).Scan(&credsBefore); err != nil {
		t.Fatal(err)
	}

	r := run(t, env, "", "email", "import", specPath, "--csv", badPath, "--start")
	if want := fmt.Sprintf("line %d: source email \"not-an-address\" is not an email address", bad+1); r.code != cli.ExitUsage ||
		!strings.Contains(r.stderr, want) {
		t.Fatalf("bad CSV: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	noSecret("the refusal", r.stdout+r.stderr)
	var jobs, mailboxes, creds int
	if err := s.DB.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM migration_jobs), (SELECT count(*) FROM migration_mailboxes),
		(SELECT count(*) FROM migration_credentials)`).Scan(&jobs, &mailboxes, &creds); err != nil {
		t.Fatal(err)
	}
	if jobs != 0 {
		t.Fatalf("jobs: want 0; the refused import wrote %d jobs, %d mailboxes, %d credentials",
			jobs, mailboxes, creds-credsBefore)
	}
	if mailboxes != 0 {
		t.Fatalf("mailboxes: want 0; the refused import wrote %d jobs, %d mailboxes, %d credentials",
			jobs, mailboxes, creds-credsBefore)
	}
	if creds != credsBefore {
		t.Fatalf("creds = %v, want %v (credsBefore); the refused import wrote %d jobs, %d mailboxes, %d credentials",
			creds, credsBefore, jobs, mailboxes, creds-credsBefore)
	}

	imported := time.Now()
	r = run(t, env, "", "email", "import", specPath, "--csv", goodPath, "--start")
	t.Logf("import and start in %s", time.Since(imported).Round(time.Millisecond))
	if r.code != cli.ExitOK {
		t.Fatalf("import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	noSecret("the import's output", r.stdout+r.stderr)
	for _, want := range []string{fmt.Sprintf("into email job %d (%s): %d created, 0 updated", job, demo.Domain, users),
		fmt.Sprintf("vault: %d secret(s) stored", 2*users), fmt.Sprintf("started email job %d", job)} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("import output lacks %q:\n%s", want, head(r.stdout, 20))
		}
	}
	if err := s.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM migration_credentials c JOIN migration_mailboxes m
		ON c.mailbox_id = m.id AND c.id::text IN (m.credentials_ref, m.spec_json->>'dest_credentials_ref')
		WHERE m.job_id = $1`, job).Scan(&creds); err != nil {
		t.Fatal(err)
	}
	if creds != 2*users {
		t.Fatalf("%d secrets attached to the job's mailboxes, want %d", creds, 2*users)
	}
	var specs string
	if err := s.DB.Pool.QueryRow(ctx, `SELECT string_agg(spec_json::text, ' ') FROM migration_mailboxes WHERE job_id = $1`,
		job).Scan(&specs); err != nil {
		t.Fatal(err)
	}
	noSecret("the mailboxes' spec entries", specs)

	started := time.Now()
	st := driveToVerified(ctx, t, s, job)
	t.Logf("job started → verified in %s", time.Since(started).Round(time.Second))
	if st.Phase != "verified" {
		t.Fatalf("st.Phase: want \"verified\"; job ended %s with %d mailboxes, verify %+v",
			st.Phase, st.Mailboxes, st.Verify)
	}
	if st.Mailboxes != users {
		t.Fatalf("st.Mailboxes: want users; job ended %s with %d mailboxes, verify %+v",
			st.Phase, st.Mailboxes, st.Verify)
	}
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; job ended %s with %d mailboxes, verify %+v", st.Phase, st.Mailboxes, st.Verify)
	}
	if st.Verify.Missing != 0 {
		t.Fatalf("st.Verify.Missing = %v, want 0; job ended %s with %d mailboxes, verify %+v",
			st.Verify.Missing, st.Phase, st.Mailboxes, st.Verify)
	}
	var notes string
	if err := s.DB.Pool.QueryRow(ctx, `SELECT coalesce(notes, '') FROM migration_jobs WHERE id = $1`, job).Scan(&notes); err != nil {
		t.Fatal(err)
	}
	if want := "approved by ops: " + approveReason; !strings.Contains(notes, want) {
		t.Errorf("the job's notes lack %q:\n%s", want, notes)
	}
	// Each run of a mailbox wrote its log; the last one is the verification.
	last := s.Users[users-1].Name + "@" + demo.Domain
	r = run(t, env, "", "email", "logs", fmt.Sprint(job), last)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "cutover verify run") || !strings.Contains(r.stdout, "ok=true") {
		t.Errorf("email logs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "", "email", "logs", fmt.Sprint(job), last, "--list")
	for _, kind := range []string{"preflight", "initial", "delta", "final", "verify"} {
		if !strings.Contains(r.stdout, "-"+kind+".log") {
			t.Errorf("email logs --list lacks a %s log:\n%s", kind, r.stdout)
		}
	}
	noSecret("the run logs", r.stdout)
	// The report written at verified links each mailbox's last log, beside it.
	reportPath := filepath.Join(s.ReportDir, fmt.Sprintf("email-job-%d.html", job))
	var html []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if html, _ = os.ReadFile(reportPath); strings.Contains(string(html), `<a href="logs/job-811/`) {
			break
		}
	}
	if !strings.Contains(string(html), `<a href="logs/job-811/`) {
		t.Errorf("the report %s does not link the run logs", reportPath)
	}
	noSecret("the job's history", history(ctx, t, s, emailapi.WorkflowID(job)))
	// The preflight wave's history holds every mailbox's pass (its activities' inputs).
	noSecret("the preflight wave's history", history(ctx, t, s, emailapi.WaveWorkflowID(job, 1)))

	for i := 0; i < users; i += max(1, users/10) {
		u := s.Users[i]
		src := testenv.MailAccount{Addr: s.Src.Addr(), User: u.Name, Password: u.SrcPassword}
		dst := testenv.MailAccount{Addr: s.Dst.Addr(), User: u.Name, Password: u.DstPassword}
		// Every message once, wherever the automap put it (Entwürfe lands in Drafts).
		if d := cmp.Diff(accountBodies(t, src), accountBodies(t, dst)); d != "" {
			t.Errorf("%s: message bodies (-source +destination):\n%s", u.Name, d)
		}
	}
}

// accountBodies are the body digests of every message of an account, sorted.
func accountBodies(t *testing.T, a testenv.MailAccount) []string {
	t.Helper()
	var out []string
	for _, f := range a.Folders(t) {
		if selectable(f) {
			out = append(out, bodies(a.Messages(t, f.Name))...)
		}
	}
	slices.Sort(out)
	return out
}

// approveReason is why driveToVerified accepts the sent_complete warning.
const approveReason = "the test mailboxes hold one message each, most without a Sent folder"

// driveToVerified takes a started job through the plan as an operator would: a presync, the
// approval (accepting the missing Sent folders of the one-message test mailboxes), the
// migration hour, the DNS confirmation; it returns the job's status at verified.
func driveToVerified(ctx context.Context, t *testing.T, s *stacktest.Stack, job int64) emailapi.Status {
	t.Helper()
	since := time.Now()
	wait := func(what string, done func(emailapi.Status) bool) emailapi.Status {
		t.Helper()
		defer func() { t.Logf("%s reached after %s", what, time.Since(since).Round(time.Second)) }()
		// A status query may time out while the worker is busy (a loaded machine): ask again.
		var st emailapi.Status
		var err error
		for ctx.Err() == nil {
			if st, err = s.Client.EmailStatus(ctx, job); err == nil && (done(st) || st.Phase == model.PhaseFailed) {
				break
			}
			time.Sleep(time.Second)
		}
		if ctx.Err() != nil || st.Phase == model.PhaseFailed {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("waiting for %s: %v (last query error: %v)\nlast status: %s", what, ctx.Err(), err, b)
		}
		return st
	}
	st := wait("delta_sync", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
	if err := s.Client.SignalEmail(ctx, job, emailapi.PresyncNow, emailapi.Request{By: "ops"}); err != nil {
		t.Fatal(err)
	}
	before := st.Presyncs
	wait("a presync", func(st emailapi.Status) bool { return st.Presyncs > before && st.CurrentPass == nil })
	if r := run(t, s.Env(), "", "email", "approve", fmt.Sprint(job), "--by", "ops", "--accept", "sent_complete",
		"--reason", approveReason); r.code != cli.ExitOK {
		t.Fatalf("approve: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	now := time.Now().UTC()
	if _, err := s.Client.EmailCommand(ctx, job, emailapi.SetCutoverTime, emailapi.Request{By: "ops", At: &now}); err != nil {
		t.Fatal(err)
	}
	wait("cutover_ready", func(st emailapi.Status) bool { return st.Phase == model.PhaseCutoverReady })
	if _, err := s.Client.ConfirmDNSCutover(ctx, job, "ops", nil); err != nil {
		t.Fatal(err)
	}
	return wait("verified", func(st emailapi.Status) bool { return st.Phase == model.PhaseVerified })
}

// history is a workflow's whole history, payloads as stored.
func history(ctx context.Context, t *testing.T, s *stacktest.Stack, workflowID string) string {
	t.Helper()
	it := s.Client.Temporal().GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var b strings.Builder
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		// The binary form holds each payload's bytes as they are (JSON: no payload codec here).
		j, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
	}
	if b.Len() == 0 {
		t.Fatalf("no history for %s", workflowID)
	}
	return b.String()
}

// bodies are a folder's body digests, sorted.
func bodies(f testenv.FolderState) []string {
	out := make([]string, len(f.Messages))
	for i, m := range f.Messages {
		out[i] = m.BodySHA256
	}
	slices.Sort(out)
	return out
}

func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
