package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/starter/internal/stacktest"
	"github.com/cutover/cutover/worker/workerapp"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// TestRecipesWatchAndTemporalUI runs, on one stack with the Temporal Web UI: the README's
// temporal CLI recipes (start with --input, query, list by MigrationPhase, signal, update);
// `cutover email watch` into a file (plain lines); the UI in headless Chromium, which must list
// the running job under its phase and show its summary and current details (screenshots are
// test artifacts); then list, report and an unknown job through the cutover CLI.
func TestRecipesWatchAndTemporalUI(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: Temporal with its UI, PostgreSQL, two Dovecots")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	temporalBin := filepath.Join(root, "bin", "temporal")
	_, err = os.Stat(temporalBin)
	testenv.Require(t, "temporal CLI (run 'make tools')", err)
	// Reports from the worker every second, so the UI shows an initial sync's progress below.
	every := workerapp.ReportsEvery
	workerapp.ReportsEvery = time.Second
	t.Cleanup(func() { workerapp.ReportsEvery = every })
	s := stacktest.Start(t, stacktest.Options{UI: true, Users: 3, Messages: 15})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := s.Env()

	const job = 701
	spec, err := json.Marshal(merging(s.EmailSpec(job)))
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	shell := func(block string) (string, error) {
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(temporalBin)+":"+os.Getenv("PATH"),
			"TEMPORAL_ADDRESS="+s.Temporal.Address(), "TEMPORAL_NAMESPACE="+s.Temporal.Namespace(),
			"CUTOVER_TASK_QUEUE="+s.Queue, fmt.Sprintf("JOB=%d", job), "SPEC="+specPath)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	waitJob := func(what string, ok func(emailapi.Status) bool) emailapi.Status {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
		defer wcancel()
		st, err := s.Client.WaitEmail(wctx, job, 200*time.Millisecond, ok)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return st
	}

	t.Run("readme recipes", func(t *testing.T) {
		blocks := testenv.READMEBlocks(t, "### Temporal CLI recipes", "sh")
		seen := map[string]bool{}
		for _, b := range blocks {
			out, err := shell(b)
			t.Logf("$ %s\n%s", strings.TrimSpace(b), out)
			if err != nil && !strings.Contains(b, "workflow list") {
				t.Fatalf("recipe failed: %v", err)
			}
			switch {
			case strings.Contains(b, "workflow start") && strings.Contains(b, "--input"):
				seen["start --input"] = true
				waitJob("delta_sync after the start recipe", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
			case strings.Contains(b, "workflow query"):
				seen["query"] = true
				if !strings.Contains(out, `"migration_phase"`) || !strings.Contains(out, "delta_sync") {
					t.Errorf("query output lacks the ticket payload in delta_sync")
				}
			case strings.Contains(b, "workflow list") && strings.Contains(b, "MigrationPhase='delta_sync'"):
				seen["list --query"] = true
				// The visibility store follows the workflow within moments.
				for i := 0; !strings.Contains(out, fmt.Sprintf("email-job-%d", job)); i++ {
					if i == 60 {
						t.Fatalf("list recipe never showed email-job-%d:\n%s", job, out)
					}
					time.Sleep(250 * time.Millisecond)
					out, _ = shell(b)
				}
			case strings.Contains(b, "workflow signal"):
				seen["signal"] = true
				waitJob("the presync the signal asked for", func(st emailapi.Status) bool { return st.Presyncs == 1 && st.CurrentPass == nil })
			case strings.Contains(b, "update execute"):
				seen["update"] = true
				if !strings.Contains(out, "ready_for_dns") {
					t.Errorf("approve update output lacks the new gate")
				}
			}
		}
		for _, k := range []string{"start --input", "query", "list --query", "signal", "update"} {
			if !seen[k] {
				t.Errorf("README recipes lack %s (found %d blocks)", k, len(blocks))
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("watch into a file", func(t *testing.T) {
		// A second job, started and followed by the cutover CLI with its output in a file.
		other := merging(s.EmailSpec(702))
		raw, _ := json.Marshal(other)
		path := filepath.Join(t.TempDir(), "job702.json")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if r := run(t, env, "", "email", "start", path); r.code != cli.ExitOK {
			t.Fatalf("email start: %+v", r)
		}
		f, err := os.Create(filepath.Join(t.TempDir(), "watch.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var errb bytes.Buffer
		code := cli.Main(ctx, []string{"email", "watch", "702", "--interval", "150ms", "--until", "delta_sync"},
			&cli.Env{Stdin: strings.NewReader(""), Stdout: f, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
		out, _ := os.ReadFile(f.Name())
		t.Logf("watch output:\n%s", out)
		if code != cli.ExitOK {
			t.Fatalf("watch: exit %d: %s", code, errb.String())
		}
		text := string(out)
		if strings.Contains(text, "\x1b[") {
			t.Error("watch wrote terminal escapes into a file")
		}
		for _, want := range []string{"job 702 demo.example · phase delta_sync", "alice@demo.example", "bob@demo.example", "carol@demo.example", " msg"} {
			if !strings.Contains(text, want) {
				t.Errorf("watch output lacks %q", want)
			}
		}
		// Every line is a timestamped line (no redraws).
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			if _, err := time.Parse("15:04:05", strings.Fields(line)[0]); err != nil {
				t.Errorf("not a plain timestamped line: %q", line)
			}
		}
		if r := run(t, env, "", "email", "watch", "702", "--once", "-o", "json"); r.code != cli.ExitOK || !json.Valid([]byte(r.stdout)) ||
			!strings.Contains(r.stdout, `"unit":"msg"`) {
			t.Errorf("watch -o json: %+v", r)
		}
	})

	t.Run("temporal ui", func(t *testing.T) {
		checkTemporalUI(t, s, job)
	})

	t.Run("temporal ui console", func(t *testing.T) {
		// A third job whose mailbox's credentials are not in the vault fails its preflight.
		const failed = 703
		spec := merging(s.EmailSpec(failed))
		spec.Mailboxes[0].CredentialsRef = "7d444840-9dc0-11d1-b245-5ffdce74fad2"
		if _, err := s.Client.StartEmailJob(ctx, spec); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
		defer wcancel()
		if _, err := s.Client.WaitEmail(wctx, failed, 200*time.Millisecond, func(st emailapi.Status) bool {
			return st.Phase == model.PhaseFailed
		}); err != nil {
			t.Fatalf("job %d never failed: %v", failed, err)
		}
		checkConsole(t, s, job, failed)
	})

	t.Run("temporal ui initial sync", func(t *testing.T) {
		// A job over one mailbox holding a few thousand messages more, its destination behind
		// a slow link: its initial sync runs long enough to be watched on any machine.
		const big = 704
		u := s.Users[len(s.Users)-1]
		s.Deliver(t, u, 4000, time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC))
		slow, err := faultproxy.New(s.Dst.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = slow.Close() })
		slow.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 8 << 10}) // ~1.3 MB of small messages: minutes
		spec := merging(demo.EmailSpec(big, s.Src.Addr(), slow.Addr(), s.Users, s.Refs))
		spec.Mailboxes = spec.Mailboxes[len(spec.Mailboxes)-1:]
		if _, err := s.Client.StartEmailJob(ctx, spec); err != nil {
			t.Fatal(err)
		}
		checkInitialSyncProgress(t, s, big)
		if r := run(t, env, "", "email", "abort", fmt.Sprint(big), "--reason", "watched"); r.code != cli.ExitOK {
			t.Errorf("abort the watched job: %+v", r)
		}
	})

	t.Run("list report unknown", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := run(t, env, "", "list", "--phase", "delta_sync", "--running", "-o", "json")
			var list []client.Summary
			if r.code != cli.ExitOK {
				t.Fatalf("r.code = %v, want cli.ExitOK; list: %+v", r.code, r)
			}
			if json.Unmarshal([]byte(r.stdout), &list) != nil {
				t.Fatalf("want json.Unmarshal([]byte(r.stdout), &list) == nil; list: %+v", r)
			}
			ids := map[string]bool{}
			for _, m := range list {
				ids[m.ID] = true
			}
			if ids["701"] && ids["702"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("list --phase delta_sync: %s", r.stdout)
			}
			time.Sleep(250 * time.Millisecond)
		}
		r := run(t, env, "", "email", "list")
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, "KIND") || !strings.Contains(r.stdout, "email-job-701") {
			t.Errorf("email list: %+v", r)
		}
		r = run(t, env, "", "email", "report", "701")
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, "report: "+s.ReportDir) {
			t.Fatalf("email report: %+v", r)
		}
		if _, err := os.Stat(filepath.Join(s.ReportDir, "email-job-701.html")); err != nil {
			t.Error(err)
		}
		r = run(t, env, "", "email", "status", "99999")
		if r.code != cli.ExitNotFound || !strings.Contains(r.stderr, "list jobs with 'cutover email list'") {
			t.Errorf("unknown job: %+v", r)
		}
		r = run(t, env, "", "email", "approve", "99999", "--by", "ops")
		if r.code != cli.ExitNotFound || !strings.Contains(r.stderr, "'cutover email list'") {
			t.Errorf("approve of an unknown job: %+v", r)
		}
	})
}

// merging marks every mailbox of a spec as merged into its destination account on purpose:
// this test runs two jobs over the same accounts at once, which is refused otherwise (a job
// writing into an account another unfinished job uses copies every message twice).
func merging(spec jobspec.Spec) jobspec.Spec {
	for i := range spec.Mailboxes {
		spec.Mailboxes[i].Merge = true
	}
	return spec
}
