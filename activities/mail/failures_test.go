package mail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// failureView is what an operator reads of a failed attempt.
type failureView struct {
	Type         string
	NonRetryable bool
	HasCause     bool
}

func viewOf(t *testing.T, err error) (failureView, string) {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("not an application error: %v", err)
	}
	return failureView{Type: ae.Type(), NonRetryable: ae.NonRetryable(), HasCause: errors.Unwrap(ae) != nil}, ae.Message()
}

// Permanent failures end the attempt as non-retryable errors of the project's types, their
// text names the cause once (no cause chain repeating it, no "retryable: true" inside) and
// says what to do; a connection refused gets a short retry budget, then is permanent.
func TestPermanentFailuresFailFastOnceWithAHint(t *testing.T) {
	e := newEnv(t, nil, nil)
	a := withVault(t, e)
	mailtest.SeedMaildir(t, e.src, "alice", safetyCorpus())
	var s testsuite.WorkflowTestSuite
	run := func(req emailapi.PassRequest) error {
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		_, err := env.ExecuteActivity(a.SyncMailbox, req)
		return err
	}
	ctx := context.Background()
	mb := e.spec.MailboxID
	ref, err := a.Vault.Put(ctx, vault.Secret{Password: "wrong-password-42"}, &mb)
	if err != nil {
		t.Fatal(err)
	}
	wrong := e.spec
	wrong.Dest.CredentialsRef = ref
	err = run(emailapi.PassRequest{Spec: wrong, RunType: model.RunDelta})
	got, msg := viewOf(t, err)
	if diff := cmp.Diff(failureView{Type: emailapi.ErrTypeAuthFailed, NonRetryable: true}, got); diff != "" {
		t.Errorf("wrong password (-want +got):\n%s", diff)
	}
	for _, want := range []string{"destination", "AUTHENTICATIONFAILED", "cutover email set-credentials", "--dest", "cutover email retry"} {
		if !strings.Contains(msg, want) {
			t.Errorf("wrong password: message %q lacks %q", msg, want)
		}
	}
	if n := strings.Count(msg, "Authentication failed"); n != 1 || strings.Contains(msg, "retryable") {
		t.Errorf("wrong password: the cause appears %d times: %q", n, msg)
	}

	// Nothing listens: retried a few times, then permanent, with what to check.
	down := e.spec
	down.Dest.Addr = "127.0.0.1:1"
	_, derr := a.engine().Sync(ctx, emailapi.PassRequest{Spec: down, RunType: model.RunDelta}, SyncOptions{})
	for attempt, want := range map[int32]failureView{
		1: {Type: emailapi.ErrTypeConnect},
		2: {Type: emailapi.ErrTypeConnect},
		3: {Type: emailapi.ErrTypeUnreachable, NonRetryable: true},
	} {
		got, msg := viewOf(t, failure(derr, down, attempt))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("connection refused, attempt %d (-want +got):\n%s", attempt, diff)
		}
		if !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, "connection refused") {
			t.Errorf("connection refused, attempt %d: %q", attempt, msg)
		}
		if attempt == 3 && !strings.Contains(msg, "host and port") {
			t.Errorf("unreachable: no hint in %q", msg)
		}
	}
}

// A destination account that may not create folders fails the pass at once, naming the folder
// and what to do, instead of retrying for minutes.
func TestNoCreatePrivilegeFailsFast(t *testing.T) {
	dir, err := os.MkdirTemp("", "cutover-acl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	acl := filepath.Join(dir, "global-acl")
	if err := os.WriteFile(acl, []byte("* owner lrwstipe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, []string{"mail_plugins = $mail_plugins acl", "plugin {", "  acl = vfile:" + acl, "}"})
	a := withVault(t, e)
	mailtest.SeedMaildir(t, e.src, "alice", safetyCorpus())
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err = env.ExecuteActivity(a.SyncMailbox, emailapi.PassRequest{Spec: e.spec, RunType: model.RunInitial})
	got, msg := viewOf(t, err)
	if diff := cmp.Diff(failureView{Type: emailapi.ErrTypePermission, NonRetryable: true}, got); diff != "" {
		t.Errorf("no CREATE right (-want +got):\n%s", diff)
	}
	for _, want := range []string{"NOPERM", "INBOX.Projects", "folder_map"} {
		if !strings.Contains(msg, want) {
			t.Errorf("no CREATE right: message %q lacks %q", msg, want)
		}
	}
}
