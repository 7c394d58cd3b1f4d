package topology

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdk "go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/activities/vault/vaulttest"
	"github.com/cutover/cutover/internal/temporalconn"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
	"github.com/cutover/cutover/starter/internal/demo"
)

// cliResult is what an operator saw of one cutover command.
type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the cutover CLI in-process with env as its whole environment.
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Main(ctx, args, &cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return vars[k] }})
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// dial connects an SDK client with the connection's TLS settings.
func dial(t *testing.T, conn temporalconn.Options) sdk.Client {
	t.Helper()
	co, err := conn.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	c, err := sdk.Dial(co)
	if err != nil {
		t.Fatalf("dial %s: %v", conn.Describe(), err)
	}
	t.Cleanup(c.Close)
	return c
}

// running is one pending activity: which workflow, which activity, whether a worker runs it
// and which worker process last did.
type running struct {
	workflowID, activityID, activityType string
	started                              bool
	pid                                  int
	attempt                              int32
}

// pendingActivities lists the pending activities of the namespace's open workflows, with the
// pid of the worker that last started each (the SDK's default identity is "pid@host@").
func pendingActivities(ctx context.Context, c sdk.Client, ns string) ([]running, error) {
	var out []running
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns,
			Query: `ExecutionStatus="Running"`, NextPageToken: token})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.GetExecutions() {
			d, err := c.DescribeWorkflowExecution(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())
			if err != nil {
				continue // closed meanwhile
			}
			for _, a := range d.GetPendingActivities() {
				pid, _ := strconv.Atoi(strings.SplitN(a.GetLastWorkerIdentity(), "@", 2)[0])
				out = append(out, running{workflowID: e.GetExecution().GetWorkflowId(), activityID: a.GetActivityId(),
					activityType: a.GetActivityType().GetName(), pid: pid, attempt: a.GetAttempt(),
					started: a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED})
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// startedOn is what of acts a worker process runs.
func startedOn(acts []running, pid int) []running {
	var out []running
	for _, a := range acts {
		if a.started && a.pid == pid {
			out = append(out, a)
		}
	}
	return out
}

// handedOver waits until each of lost (activities worker pid ran when it stopped) runs on
// another worker or is no longer pending (finished), and returns how long that took from since.
func handedOver(t *testing.T, c sdk.Client, ns string, lost []running, pid int, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	ctx := context.Background()
	for {
		now, err := pendingActivities(ctx, c, ns)
		if err != nil {
			t.Fatal(err)
		}
		var waiting []running
		for _, l := range lost {
			for _, n := range now {
				if n.workflowID == l.workflowID && n.activityID == l.activityID && (!n.started || n.pid == pid) {
					waiting = append(waiting, n)
				}
			}
		}
		took := time.Since(since)
		if len(waiting) == 0 {
			return took
		}
		if took > limit {
			t.Fatalf("%s after worker %d stopped, %d of its activities are not running elsewhere: %+v",
				took.Round(time.Millisecond), pid, len(waiting), waiting)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mailWorld is what an email job of these tests runs against: a control database with the
// vault, two Dovecots holding n users (the source seeded with the demo corpus, up to msgs
// messages each) and every user's credentials stored. key is the vault key the workers need.
type mailWorld struct {
	dbURL, key string
	db         *store.DB
	users      []demo.MailUser
	src, dst   *testenv.Dovecot
	refs       demo.Refs
}

func newMailWorld(t *testing.T, n, msgs int) mailWorld {
	t.Helper()
	ctx := context.Background()
	w := mailWorld{dbURL: testenv.NewDatabase(t), users: demo.Users(n, msgs)}
	var err error
	if w.db, err = store.OpenAndMigrate(ctx, w.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.db.Close)
	var v *vault.Vault
	v, w.key = vaulttest.New(t, w.db.Store)
	var srcUsers, dstUsers []testenv.User
	for _, u := range w.users {
		srcUsers = append(srcUsers, testenv.User{Name: u.Name, Password: u.SrcPassword})
		dstUsers = append(dstUsers, testenv.User{Name: u.Name, Password: u.DstPassword})
	}
	w.src, w.dst = testenv.StartDovecot(t, srcUsers), testenv.StartDovecot(t, dstUsers)
	if _, err := demo.SeedCorpus(w.users, w.src.Maildir); err != nil {
		t.Fatal(err)
	}
	w.src.FixOwnership(t)
	if w.refs, err = demo.PutCredentials(ctx, v, w.users); err != nil {
		t.Fatal(err)
	}
	return w
}
