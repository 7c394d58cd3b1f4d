package email_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// jobSpec writes a job spec whose mailbox lines are given (one YAML flow mapping each).
func (s *stack) jobSpec(t *testing.T, jobID int64, mailboxes ...string) string {
	t.Helper()
	y := fmt.Sprintf(`job_id: %d
tenant_id: 7
domain: example.com
source: {label: old Dovecot, host: "%s", security: plain}
destination: {host: "%s", security: plain}
schedule: {presync_interval: 1h, final_sync_delay: 5s, soak: 1h, post_sync_interval: 30m}
retry: {max_attempts: 10, max_interval: 20s}
concurrency: {mailboxes: 3}
gate: {quarantine_fail_ratio: 0.2}
mailboxes:
`, jobID, s.src.Addr(), s.dst.Addr())
	for _, m := range mailboxes {
		y += "  - " + m + "\n"
	}
	path := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// entry is a mailbox line of a job spec for user u, with extra fields.
func (s *stack) entry(u, extra string) string {
	return fmt.Sprintf("{email: %s@example.com, user: %s, credentials_ref: %s, dest_user: %s, dest_credentials_ref: %s%s}",
		u, u, s.srcRefs[u], u, s.dstRefs[u], extra)
}

func (s *stack) presync(t *testing.T, jobID int64, n int) emailapi.Status {
	t.Helper()
	s.mustCutover(t, "email", "presync", fmt.Sprint(jobID), "--by", "ops")
	return waitStatus(t, s.c, emailapi.WorkflowID(jobID), fmt.Sprintf("presync %d", n),
		func(st emailapi.Status) bool { return st.Presyncs == n && st.CurrentPass == nil })
}

func check(st emailapi.Status, id model.CheckID) (model.CheckStatus, string, bool) {
	for _, c := range st.Checks {
		if c.ID == id {
			return c.Status, c.Message, c.Accepted
		}
	}
	return "", "", false
}

func missing(have, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// A destination account that already holds mail (an early delivery, the user's own sent
// mail, a folder only it has) keeps every one of those messages through the presyncs, the
// final sync, verification and close, counted on the server before and after. The preflight
// and the gate show it; the mirror presync deletes only the job's own copy of a message
// deleted at the source (recorded); copies a user deleted on the destination before the gate
// are copied again by the next presync, and the gate reflects the destination as it is.
func TestEndToEndDestinationAlreadyHoldingMailKeepsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Temporal, PostgreSQL, two Dovecots")
	}
	s := newStack(t)
	ctx := context.Background()
	const jobID = 4545
	id := emailapi.WorkflowID(jobID)
	mailtest.SeedMaildir(t, s.dst, "alice", []mailtest.Message{s.message("alice", "INBOX", "alice-early-1"),
		s.message("alice", "Sent", "alice-own-sent-1"), s.message("alice", "Personal", "alice-personal-1")})
	before := s.dst.MessageIDs(t, "alice")
	if len(before) != 3 {
		t.Fatalf("destination before the job: %v", before)
	}
	spec := s.jobSpec(t, jobID, s.entry("alice", ""), s.entry("bob", ""), s.entry("carol", ""))
	s.mustCutover(t, "email", "start", spec)
	st := waitStatus(t, s.c, id, "delta_sync", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
	if st.Preflight == nil || !strings.Contains(strings.Join(st.Preflight.Warnings, "\n"), "alice@example.com: the destination already holds 3 message(s)") {
		t.Errorf("preflight warnings: %+v", st.Preflight)
	}
	st = s.presync(t, jobID, 1)
	if cs, msg, _ := check(st, model.CheckDestHeld); cs != model.CheckWarn || !strings.Contains(msg, "alice@example.com: the destination holds 3 message(s) the job did not copy") {
		t.Errorf("dest_held after presync 1: %s %q", cs, msg)
	}

	// The source deletes a message the job copied; a user deletes two of bob's copies on the
	// destination.
	remove(t, s.src, "alice", "INBOX", "alice-inbox-0")
	remove(t, s.dst, "bob", "INBOX", "bob-inbox-1")
	remove(t, s.dst, "bob", "Projects", "bob-projects-0")
	st = s.presync(t, jobID, 2)
	if src, dst := s.src.MessageIDs(t, "bob"), s.dst.MessageIDs(t, "bob"); !slices.Equal(src, dst) {
		t.Errorf("bob after presync 2 (copies lost on the destination copied again):\nsource %v\ndest   %v", src, dst)
	}
	if lost := missing(s.dst.MessageIDs(t, "alice"), before); len(lost) > 0 {
		t.Errorf("a mirror presync deleted mail the job did not place: %v", lost)
	}
	if slices.Contains(s.dst.MessageIDs(t, "alice"), "INBOX <alice-inbox-0@corpus.example>") {
		t.Error("the job's copy of a message deleted at the source is still on the destination")
	}
	if cs, _, _ := check(st, model.CheckCountRatio); cs != model.CheckPass {
		t.Errorf("cs: want model.CheckPass; after presync 2: count_ratio %s, %v%% synced", cs, st.SyncPercent)
	} else if st.SyncPercent != 100 {
		t.Errorf("st.SyncPercent: want 100; after presync 2: count_ratio %s, %v%% synced", cs, st.SyncPercent)
	}

	// The ops lead reviews what the destination held and accepts it.
	out := s.mustCutover(t, "email", "approve", fmt.Sprint(jobID), "--by", "ops-lead")
	if !strings.Contains(out, "gate warning") || !strings.Contains(out, "dest_held warn") {
		t.Errorf("approve without review: %s", out)
	}
	out = s.mustCutover(t, "email", "approve", fmt.Sprint(jobID), "--by", "ops-lead", "--accept", "dest_held:alice@example.com",
		"--reason", "alice's own mail, uploaded before the migration")
	if !strings.Contains(out, "gate ready_for_dns") {
		t.Fatalf("approve with review: %s", out)
	}
	s.mustCutover(t, "email", "schedule", fmt.Sprint(jobID), "--by", "ops", "--cutover-at", time.Now().UTC().Format(time.RFC3339))
	waitStatus(t, s.c, id, "cutover_ready", func(st emailapi.Status) bool { return st.Phase == model.PhaseCutoverReady })
	s.mustCutover(t, "email", "cutover", fmt.Sprint(jobID), "--by", "ops-lead")
	st = waitStatus(t, s.c, id, "verified", func(st emailapi.Status) bool { return st.Phase == model.PhaseVerified })
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; verify: %+v", st.Verify)
	}
	if st.Verify.Missing != 0 {
		t.Fatalf("st.Verify.Missing = %v, want 0; verify: %+v", st.Verify.Missing, st.Verify)
	}
	s.mustCutover(t, "email", "close", fmt.Sprint(jobID), "--by", "ops-lead", "--note", "done")
	waitStatus(t, s.c, id, "closed", func(st emailapi.Status) bool { return st.Phase == model.PhaseClosed })

	after := s.dst.MessageIDs(t, "alice")
	if lost := missing(after, before); len(lost) > 0 {
		t.Errorf("closed job: the destination lost mail the job did not place: %v", lost)
	}
	for _, u := range []string{"bob", "carol"} {
		if src, dst := s.src.MessageIDs(t, u), s.dst.MessageIDs(t, u); !slices.Equal(src, dst) {
			t.Errorf("%s at close:\nsource %v\ndest   %v", u, src, dst)
		}
	}
	mbs, err := s.db.ListMailboxes(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	type del struct{ Email, Folder, Description, Reason, Mode string }
	var dels []del
	for _, m := range mbs {
		ds, err := s.db.ListMailDeletions(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			dels = append(dels, del{m.Email, d.DestFolder, d.Description, d.Reason, d.Mode})
		}
	}
	if diff := cmp.Diff([]del{{"alice@example.com", "INBOX", "<alice-inbox-0@corpus.example>", "source_gone", "mirror"}}, dels); diff != "" {
		t.Errorf("recorded deletions (-want +got):\n%s", diff)
	}
	checks, err := s.db.LatestGateChecks(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	var held bool
	for _, c := range checks {
		if c.CheckID == model.CheckDestHeld {
			held = c.Status == model.CheckWarn && c.AcceptedBy != nil && *c.AcceptedBy == "ops-lead" && c.AcceptReason != nil &&
				strings.Contains(*c.AcceptReason, "alice@example.com: alice's own mail")
		}
	}
	if !held {
		t.Errorf("migration_gate_checks has no accepted dest_held: %+v", checks)
	}
	dir := t.TempDir()
	s.mustCutover(t, "email", "report", fmt.Sprint(jobID), "--dir", dir)
	html := readReport(t, dir)
	for _, want := range []string{"warn (accepted)", "alice&#39;s own mail", "Deleted on the destination",
		"copies this job placed whose source message was deleted"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func readReport(t *testing.T, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil {
		t.Fatalf("err: want nil; report files in %s: %v %v", dir, files, err)
	}
	if len(files) != 1 {
		t.Fatalf("len(files) = %v, want 1; report files in %s: %v %v", len(files), dir, files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A job whose only warnings are a mailbox without a Sent folder and one message the
// destination refused reaches closed after the ops lead accepts both with a reason (the
// cutover CLI's refusals, then one review through the temporal CLI and one through the SDK
// client); the reviews are in the status query, migration_gate_checks and the report.
func TestEndToEndReviewedWarningsLetTheJobClose(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Temporal, PostgreSQL, two Dovecots")
	}
	s := newStackWith(t, []string{"imap_capability = +APPENDLIMIT=1048576", "mail_plugins = $mail_plugins quota",
		"plugin {", "  quota = maildir:User quota", "  quota_rule = *:storage=1G", "  quota_max_mail_size = 1M", "}"})
	ctx := context.Background()
	const jobID = 4646
	id := emailapi.WorkflowID(jobID)
	mailtest.SeedMaildir(t, s.src, "bob", []mailtest.Message{mailtest.Big("INBOX", "bob-big@corpus.example", s.msgDate, 2<<20)})
	spec := s.jobSpec(t, jobID, s.entry("alice", `, exclude: ["^Sent$"]`), s.entry("bob", ""), s.entry("carol", ""))
	s.mustCutover(t, "email", "start", spec)
	waitStatus(t, s.c, id, "delta_sync", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
	st := s.presync(t, jobID, 1)
	if st.Gate != model.GateWarning {
		t.Fatalf("gate %s: %+v", st.Gate, st.Checks)
	}
	for id, who := range map[model.CheckID]string{model.CheckSentComplete: "alice@example.com", model.CheckPSTQuarantine: "bob@example.com"} {
		if cs, msg, _ := check(st, id); cs != model.CheckWarn || !strings.Contains(msg, who) {
			t.Errorf("%s: %s %q", id, cs, msg)
		}
	}
	// A failing check is never accepted; an accept needs a reason.
	if code, _, errs := s.cutover(t, "email", "approve", fmt.Sprint(jobID), "--by", "ops-lead", "--accept", "count_ratio",
		"--reason", "x"); code != cli.ExitFailure || !strings.Contains(errs, "does not warn") {
		t.Errorf("accepting a passing check: exit %d %s", code, errs)
	}
	if code, _, errs := s.cutover(t, "email", "approve", fmt.Sprint(jobID), "--by", "ops-lead", "--accept", "pst_quarantine"); code != cli.ExitUsage ||
		!strings.Contains(errs, "--reason") {
		t.Errorf("accept without a reason: exit %d %s", code, errs)
	}
	// The same review through the temporal CLI (the approve update by name, JSON input) and
	// the SDK client (starter/client): one warning each, the same validation.
	why := "alice never used Sent; bob's 2 MB attachment goes by hand"
	update := func(req emailapi.Request) (string, string, error) {
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return s.temporalCLI(t, "workflow", "update", "execute", "--workflow-id", id, "--name", emailapi.Approve, "--input", string(b))
	}
	if _, errs, err := update(emailapi.Request{By: "ops-lead", Accept: []string{"count_ratio"}, Reason: why}); err == nil ||
		!strings.Contains(errs, "does not warn") {
		t.Errorf("temporal CLI: accepting a passing check: %v %s", err, errs)
	}
	out, errs, err := update(emailapi.Request{By: "ops-lead", Accept: []string{"sent_complete:alice@example.com"}, Reason: why})
	if err != nil || !strings.Contains(out, "accepted sent_complete:alice@example.com") || !strings.Contains(out, "gate is warning") {
		t.Fatalf("temporal CLI approve --accept sent_complete: %v\n%s%s", err, out, errs)
	}
	ack, err := client.New(s.c, s.queue).EmailCommand(ctx, jobID, emailapi.Approve,
		emailapi.Request{By: "ops-lead", Accept: []string{"pst_quarantine:bob@example.com"}, Reason: why})
	if err != nil {
		t.Fatalf("err: want nil; SDK client approve accepting pst_quarantine: %+v %v", ack, err)
	}
	if ack.Gate != model.GateReadyForDNS {
		t.Fatalf("ack.Gate = %v, want model.GateReadyForDNS; SDK client approve accepting pst_quarantine: %+v %v",
			ack.Gate, ack, err)
	}
	st = waitStatus(t, s.c, id, "reviews in the status", func(st emailapi.Status) bool { return len(st.Reviews) == 2 })
	if _, _, acc := check(st, model.CheckSentComplete); !acc {
		t.Errorf("status: sent_complete not accepted: %+v", st.Checks)
	}
	s.mustCutover(t, "email", "schedule", fmt.Sprint(jobID), "--by", "ops", "--cutover-at", time.Now().UTC().Format(time.RFC3339))
	waitStatus(t, s.c, id, "cutover_ready", func(st emailapi.Status) bool { return st.Phase == model.PhaseCutoverReady })
	s.mustCutover(t, "email", "cutover", fmt.Sprint(jobID), "--by", "ops-lead")
	waitStatus(t, s.c, id, "verified", func(st emailapi.Status) bool { return st.Phase == model.PhaseVerified })
	s.mustCutover(t, "email", "close", fmt.Sprint(jobID), "--by", "ops-lead")
	waitStatus(t, s.c, id, "closed", func(st emailapi.Status) bool { return st.Phase == model.PhaseClosed })

	checks, err := s.db.LatestGateChecks(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Check           model.CheckID
		Status          model.CheckStatus
		AcceptedBy, Why string
		AcceptedAtIsSet bool
	}
	var got []row
	for _, c := range checks {
		if c.AcceptedBy != nil {
			got = append(got, row{c.CheckID, c.Status, *c.AcceptedBy, *c.AcceptReason, c.AcceptedAt != nil})
		}
	}
	slices.SortFunc(got, func(a, b row) int { return strings.Compare(string(a.Check), string(b.Check)) })
	want := []row{{model.CheckPSTQuarantine, model.CheckWarn, "ops-lead", "bob@example.com: " + why, true},
		{model.CheckSentComplete, model.CheckWarn, "ops-lead", "alice@example.com: " + why, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("accepted checks in migration_gate_checks (-want +got):\n%s", diff)
	}
	dir := t.TempDir()
	s.mustCutover(t, "email", "report", fmt.Sprint(jobID), "--dir", dir)
	if html := readReport(t, dir); strings.Count(html, ">warn (accepted)<") != 2 {
		t.Errorf("report: %d accepted checks shown", strings.Count(html, ">warn (accepted)<"))
	}
}

// Wrong password and nothing listening: the job shows the cause in its status within 60 s
// (retrying attempts, then the failure with what to do) and fails within 2 minutes; a new
// credentials_ref (set-credentials) and a skipped mailbox let `retry` go on. Each cause
// appears once.
func TestEndToEndPermanentErrorsFailFastAndRecover(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Temporal, PostgreSQL, two Dovecots")
	}
	s := newStack(t)
	ctx := context.Background()
	const jobID = 4747
	id := emailapi.WorkflowID(jobID)
	keys, err := vault.ParseKeys(os.Getenv(vault.EnvKeys))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(s.db.Store, keys)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := v.Put(ctx, vault.Secret{Password: "not-alices-password"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	aliceWrong := strings.Replace(s.entry("alice", ""), s.dstRefs["alice"], wrong, 1)
	spec := s.jobSpec(t, jobID, aliceWrong, s.entry("bob", `, source_host: "`+closed+`"`), s.entry("carol", ""))
	start := time.Now()
	s.mustCutover(t, "email", "start", spec)

	shown := waitStatusFor(t, s, id, "the cause in the status", 60*time.Second, func(st emailapi.Status) bool {
		all := st.LastError
		for _, a := range st.Retrying {
			all += "\n" + a.Message
		}
		return strings.Contains(all, "AUTHENTICATIONFAILED") && strings.Contains(all, "connection refused")
	})
	t.Logf("cause shown after %s: retrying %+v, last error %q", time.Since(start).Round(time.Second), shown.Retrying, shown.LastError)
	failed := waitStatusFor(t, s, id, "failed", 2*time.Minute, func(st emailapi.Status) bool { return st.Phase == model.PhaseFailed })
	t.Logf("failed after %s: %s", time.Since(start).Round(time.Second), failed.LastError)
	for _, want := range []string{"alice@example.com: AuthFailed", "set-credentials 4747 alice@example.com --dest REF",
		"bob@example.com: Unreachable", "check the source host and port"} {
		if !strings.Contains(failed.LastError, want) {
			t.Errorf("last error lacks %q:\n%s", want, failed.LastError)
		}
	}
	if n := strings.Count(failed.LastError, "AUTHENTICATIONFAILED"); n != 1 || strings.Contains(failed.LastError, "retryable") {
		t.Errorf("the auth failure appears %d times (or with SDK decoration):\n%s", n, failed.LastError)
	}
	if _, out, _ := s.cutover(t, "email", "status", fmt.Sprint(jobID)); !strings.Contains(out, "set-credentials") {
		t.Errorf("email status does not say what to do:\n%s", out)
	}

	s.mustCutover(t, "email", "set-credentials", fmt.Sprint(jobID), "alice@example.com", "--dest", s.dstRefs["alice"], "--by", "ops")
	s.mustCutover(t, "email", "skip", fmt.Sprint(jobID), "bob@example.com", "--reason", "old server decommissioned", "--by", "ops")
	s.mustCutover(t, "email", "retry", fmt.Sprint(jobID), "--by", "ops")
	st := waitStatus(t, s.c, id, "delta_sync after retry", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
	if src, dst := s.src.MessageIDs(t, "alice"), s.dst.MessageIDs(t, "alice"); !slices.Equal(src, dst) {
		t.Errorf("alice after retry with new credentials:\nsource %v\ndest   %v", src, dst)
	}
	if len(st.Skipped) != 1 {
		t.Errorf("len(st.Skipped) = %v, want 1; status skipped: %+v", len(st.Skipped), st.Skipped)
	} else if st.Skipped[0].Email != "bob@example.com" {
		t.Errorf("st.Skipped[0].Email = %v, want \"bob@example.com\"; status skipped: %+v",
			st.Skipped[0].Email, st.Skipped)
	}
	st = s.presync(t, jobID, 1)
	if st.Gate == model.GateBlocked {
		t.Errorf("the skipped mailbox holds the gate: %+v", st.Checks)
	}
	skips, err := s.db.ListSkips(ctx, jobID)
	if err != nil {
		t.Errorf("err: want nil; skips in PostgreSQL: %+v %v", skips, err)
	} else if len(skips) != 1 {
		t.Errorf("len(skips) = %v, want 1; skips in PostgreSQL: %+v %v", len(skips), skips, err)
	} else if skips[0].Reason != "old server decommissioned" {
		t.Errorf("skips[0].Reason = %v, want \"old server decommissioned\"; skips in PostgreSQL: %+v %v",
			skips[0].Reason, skips, err)
	} else if skips[0].By != "ops" {
		t.Errorf("skips[0].By = %v, want \"ops\"; skips in PostgreSQL: %+v %v", skips[0].By, skips, err)
	}
	// The report lists the skipped mailbox with who and why.
	dir := t.TempDir()
	s.mustCutover(t, "email", "report", fmt.Sprint(jobID), "--dir", dir)
	html := readReport(t, dir)
	for _, want := range []string{"Skipped mailboxes", "bob@example.com — skipped by ops at", "old server decommissioned"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// waitStatusFor is waitStatus with its own deadline; a failed job does not end the wait.
func waitStatusFor(t *testing.T, s *stack, id, what string, limit time.Duration, ok func(emailapi.Status) bool) emailapi.Status {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last emailapi.Status
	for time.Now().Before(deadline) {
		v, err := s.c.QueryWorkflow(context.Background(), id, "", emailapi.QueryStatus)
		if err == nil && v.Get(&last) == nil && ok(last) {
			return last
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last status: phase %s, last error %q, retrying %+v", what, limit, last.Phase, last.LastError, last.Retrying)
	return last
}

// A job started with the temporal CLI with a password in its spec is refused by the workflow
// itself, in the CLI's words, and when the dust settles the password is in no history event
// of any run of the job's workflow id (the refused run is deleted and replaced by a run of the
// redacted input, which refuses it the same way).
func TestEndToEndTemporalCLIStartWithAPasswordIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Temporal, PostgreSQL, two Dovecots")
	}
	s := newStack(t)
	ctx := context.Background()
	const jobID = 4848
	id := emailapi.WorkflowID(jobID)
	const secret = "hunter2-e2e-secret-4848"
	var spec map[string]any
	if err := json.Unmarshal(yamlToJSON(t, s.specYAML(jobID)), &spec); err != nil {
		t.Fatal(err)
	}
	spec["source"].(map[string]any)["password"] = secret
	raw, _ := json.Marshal(spec)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, cliErr := jobspec.Parse(raw)
	if cliErr == nil {
		t.Fatal("the CLI's parser accepted a password")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"workflow", "start", "--type", emailapi.WorkflowName, "--task-queue", s.queue, "--workflow-id", id,
		"--input-file", path, "--address", s.srv.Address(), "--namespace", s.srv.Namespace()}
	pc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if pc != nil {
		cs := httptest.NewServer(codec.Handler(pc, "e2e-codec-token", nil))
		t.Cleanup(cs.Close)
		args = append(args, "--codec-endpoint", cs.URL, "--codec-auth", "Bearer e2e-codec-token")
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(root, "bin", "temporal"), args...).CombinedOutput(); err != nil {
		t.Fatalf("temporal workflow start: %v\n%s", err, out)
	}

	// The job fails with the CLI's words, and no run of its id keeps the password.
	deadline := time.Now().Add(waitLimit)
	for {
		var st emailapi.Status
		err := s.c.GetWorkflow(ctx, id, "").Get(ctx, &st)
		leaks, runs := historyLeaks(t, s, pc, id, secret)
		if err != nil && strings.Contains(err.Error(), cliErr.Error()) && len(leaks) == 0 && runs > 0 {
			t.Logf("refused: %s (%d run(s) of %s, none holding the password)", client.ErrMessage(err), runs, id)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: result %v; runs %d; password found in %v", waitLimit, err, runs, leaks)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if _, err := s.db.GetJob(ctx, jobID); err == nil {
		t.Error("the refused job was registered in PostgreSQL")
	}
}

// historyLeaks lists the events of every run of a workflow id holding secret, in clear or in
// a payload (decrypted when the codec is on), and counts the runs.
func historyLeaks(t *testing.T, s *stack, pc *codec.Codec, id, secret string) (leaks []string, runs int) {
	t.Helper()
	ctx := context.Background()
	for _, run := range runsOf(t, s.c, id) {
		runs++
		it := s.c.GetWorkflowHistory(ctx, id, run, false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				leaks = append(leaks, fmt.Sprintf("%s: history unreadable (deleted meanwhile?): %v", run, err))
				break
			}
			b, _ := protojson.Marshal(ev)
			if bytes.Contains(b, []byte(secret)) {
				leaks = append(leaks, fmt.Sprintf("%s event %d %s", run, ev.GetEventId(), ev.GetEventType()))
			}
			if pc == nil {
				continue
			}
			for _, p := range ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads() {
				dec, err := pc.Decode([]*commonpb.Payload{p})
				if err == nil && bytes.Contains(dec[0].GetData(), []byte(secret)) {
					leaks = append(leaks, fmt.Sprintf("%s event %d input (decrypted)", run, ev.GetEventId()))
				}
			}
		}
	}
	return leaks, runs
}
