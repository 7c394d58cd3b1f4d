package email_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// The interoperability matrix: one mailbox with a hostile corpus migrated between two server
// implementations through the whole product — the real worker, the Temporal dev server, the
// cutover CLI — with presyncs, changes on the source between them (a folder renamed, a
// UIDVALIDITY change, flags removed, new mail), approval, DNS cutover, final sync,
// verification and close; then both servers are read directly and compared, independently of
// the engine's ledger and verification.
//
// The default run has the four pairs: Dovecot → Cyrus (Cyrus rewrites 8-bit headers, refuses
// keywords over its limit, has CREATE-SPECIAL-USE), Courier → Dovecot (Courier's per-session
// UIDVALIDITY without its UID database), Cyrus → Dovecot (other users' and shared folders on the
// source) and Courier → Cyrus. `make test-slow` (build tag slow) adds Dovecot → Cyrus with the
// worker SIGKILLed (the default run SIGKILLs workers against Dovecot in workflows/email/faults).

func TestMatrixDovecotToCyrus(t *testing.T) {
	runMatrix(t, testenv.KindDovecot, testenv.KindCyrus, false)
}

func TestMatrixCourierToDovecot(t *testing.T) {
	runMatrix(t, testenv.KindCourier, testenv.KindDovecot, false)
}

func TestMatrixCyrusToDovecot(t *testing.T) {
	runMatrix(t, testenv.KindCyrus, testenv.KindDovecot, false)
}

func TestMatrixCourierToCyrus(t *testing.T) {
	runMatrix(t, testenv.KindCourier, testenv.KindCyrus, false)
}

// matrix is one pair's stack.
type matrix struct {
	jobID    int64 // unique in the Temporal dev server the package's tests share
	db       *store.DB
	dbURL    string
	src, dst testenv.IMAPServer
	destVia  string // the destination's address in the spec: the server, or a proxy slowing it
	srv      *testenv.Temporal
	queue    string
	srcRef   string
	dstRef   string
	worker   *testenv.WorkerProcess // the worker as a process, when the test kills it
}

func runMatrix(t *testing.T, srcKind, dstKind string, kill bool) {
	if testing.Short() {
		t.Skip("end to end: Temporal, PostgreSQL, two IMAP servers")
	}
	m := newMatrix(t, srcKind, dstKind, kill)
	s := &stack{dbURL: m.dbURL, db: m.db, srv: m.srv, c: m.srv.Client(t), queue: m.queue}
	alice := m.src.Account("alice")
	srcNames := mailtest.SeedIMAP(t, alice, nastyCorpus(srcKind))
	if srcKind == testenv.KindCyrus {
		seedOtherUsersAndShared(t, m.src)
	}

	id := emailapi.WorkflowID(m.jobID)
	specPath := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(specPath, []byte(m.specYAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	if !kill {
		s.mustCutover(t, "email", "start", specPath)
	} else {
		// Started through the SDK to turn the heartbeat timeout down, so a pass lost with the
		// killed worker is retried within seconds.
		spec, err := jobspec.Parse([]byte(m.specYAML()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: m.queue,
			WorkflowTaskTimeout: 3 * time.Second}, emailapi.WorkflowName, spec,
			&email.Resume{Tuning: email.Tuning{HeartbeatTimeout: 3 * time.Second}}); err != nil {
			t.Fatal(err)
		}
		m.killWhen(t, "the initial sync's APPENDs", func() bool { return m.count(t, `SELECT count(*) FROM mail_messages`) >= 60 })
	}
	waitStatusFor(t, s, id, "initial sync", 3*time.Minute, func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
	s.mustCutover(t, "email", "presync", fmt.Sprint(m.jobID), "--by", "ops")
	waitStatus(t, s.c, id, "presync 1", func(st emailapi.Status) bool { return st.Presyncs == 1 && st.CurrentPass == nil })

	// Between the presyncs: a folder renamed, a UIDVALIDITY change (a restore) with flags
	// removed in the restored folder, a keyword removed, new mail.
	c := alice.Login(t)
	if err := c.Rename(srcNames["Projects"], strings.Replace(srcNames["Projects"], "Projects", "Work", 1), nil).Wait(); err != nil {
		t.Fatalf("rename: %v", err)
	}
	c.Close()
	changeUIDValidity(t, m.src, alice, srcNames["Archive"])
	storeFlags(t, alice, srcNames["Archive"], imap.StoreFlagsDel, `\Seen`)
	storeFlags(t, alice, "INBOX", imap.StoreFlagsDel, `$Label1`)
	date := time.Date(2025, 5, 5, 5, 5, 5, 0, time.UTC)
	alice.Append(t, "INBOX", mailtest.Text("between@matrix.example", "n@example.org", "between the presyncs", date, "new\n"), nil, date)
	s.mustCutover(t, "email", "presync", fmt.Sprint(m.jobID), "--by", "ops")
	st := waitStatus(t, s.c, id, "presync 2", func(st emailapi.Status) bool { return st.Presyncs == 2 && st.CurrentPass == nil })

	// The destination folder filled from the renamed folder's old name is reported, and kept.
	if !slices.ContainsFunc(st.Checks, func(ch gate.Check) bool {
		return ch.ID == model.CheckDestHeld && strings.Contains(ch.Message, "renamed or deleted on the source")
	}) {
		t.Errorf("after presync 2 no gate check reports the destination folder of the renamed source folder: %+v", st.Checks)
	}
	// Every warning is looked at and accepted (dropped keywords, the renamed folder's old copy).
	args := []string{"email", "approve", fmt.Sprint(m.jobID), "--by", "ops-lead", "--note", "matrix reviewed"}
	for _, ch := range st.Checks {
		switch {
		case ch.Status == model.CheckFail:
			t.Fatalf("gate check %s fails after presync 2: %s", ch.ID, ch.Message)
		case ch.ID == model.CheckDestHeld && strings.Contains(ch.Message, "did not copy"):
			t.Errorf("the destination started empty, yet the gate says it holds mail the job did not copy: %s", ch.Message)
		case ch.Status == model.CheckWarn && ch.ID != model.CheckManualApproval:
			t.Logf("gate warning %s: %s", ch.ID, ch.Message)
			args = append(args, "--accept", string(ch.ID))
		}
	}
	if len(args) > 7 {
		args = append(args, "--reason", "reviewed in the interoperability matrix")
	}
	if out := s.mustCutover(t, args...); !strings.Contains(out, "gate ready_for_dns") {
		t.Fatalf("approve: %s", out)
	}
	s.mustCutover(t, "email", "schedule", fmt.Sprint(m.jobID), "--by", "ops", "--cutover-at", time.Now().UTC().Format(time.RFC3339))
	waitStatus(t, s.c, id, "cutover_ready", func(st emailapi.Status) bool { return st.Phase == model.PhaseCutoverReady })
	s.mustCutover(t, "email", "cutover", fmt.Sprint(m.jobID), "--by", "ops-lead")
	alice.Append(t, "INBOX", mailtest.Text("late@matrix.example", "n@example.org", "after the cutover", date, "late\n"), nil, date)
	if kill {
		m.killWhen(t, "the final verification", func() bool {
			return m.count(t, `SELECT count(*) FROM migration_runs WHERE run_type = 'verify' AND finished_at IS NULL`) > 0
		})
	}
	st = waitStatusFor(t, s, id, "verified", 3*time.Minute, func(st emailapi.Status) bool { return st.Phase == model.PhaseVerified })
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; verify = %+v, want nothing missing, extra (a duplicate) or quarantined",
			st.Verify)
	}
	if !st.Verify.OK {
		t.Fatalf("st.Verify.OK is false; verify = %+v, want nothing missing, extra (a duplicate) or quarantined",
			st.Verify)
	}
	if st.Verify.Missing != 0 {
		t.Fatalf("st.Verify.Missing = %v, want 0; verify = %+v, want nothing missing, extra (a duplicate) or quarantined",
			st.Verify.Missing, st.Verify)
	}
	if st.Verify.Extra != 0 {
		t.Fatalf("st.Verify.Extra = %v, want 0; verify = %+v, want nothing missing, extra (a duplicate) or quarantined",
			st.Verify.Extra, st.Verify)
	}
	if st.Verify.Quarantined != 0 {
		t.Fatalf("st.Verify.Quarantined = %v, want 0; verify = %+v, want nothing missing, extra (a duplicate) or quarantined",
			st.Verify.Quarantined, st.Verify)
	}
	if dstKind == testenv.KindCyrus && st.Verify.Rewritten == 0 {
		t.Errorf("verify reports no message rewritten by Cyrus: %+v", st.Verify)
	}
	s.mustCutover(t, "email", "close", fmt.Sprint(m.jobID), "--by", "ops-lead", "--note", "done")
	waitStatus(t, s.c, id, "closed", func(st emailapi.Status) bool { return st.Phase == model.PhaseClosed })

	// The report says what the destination stored differently.
	dir := t.TempDir()
	s.mustCutover(t, "email", "report", fmt.Sprint(m.jobID), "--dir", dir)
	html := readReport(t, dir)
	for _, want := range []string{"present with identifying headers the destination rewrote",
		"stored without keywords the destination refused: tag100"} {
		if got := strings.Contains(html, want); got != (dstKind == testenv.KindCyrus) {
			t.Errorf("report mentions %q: %v (destination %s)", want, got, dstKind)
		}
	}

	compareServers(t, m.src, m.dst)
	if dstKind == testenv.KindCyrus {
		checkSpecialUse(t, m.dst.Account("alice"), map[string]string{"INBOX.Sent": `\Sent`, "INBOX.Drafts": `\Drafts`,
			"INBOX.Archive": `\Archive`})
	}
}

// killWhen SIGKILLs the worker process once cond holds, and starts it again.
func (m *matrix) killWhen(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, what, 3*time.Minute, cond)
	m.worker.KillAndRestart()
	t.Logf("worker SIGKILLed during %s (%d ledger rows, %d confirmed)", what, m.count(t, `SELECT count(*) FROM mail_messages`),
		m.count(t, `SELECT count(*) FROM mail_messages WHERE state <> 'pending'`))
}

// count runs a count query on the control database.
func (m *matrix) count(t *testing.T, q string) int64 {
	t.Helper()
	var n int64
	if err := m.db.Pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newMatrix(t *testing.T, srcKind, dstKind string, kill bool) *matrix {
	t.Helper()
	ctx := context.Background()
	m := &matrix{dbURL: testenv.NewDatabase(t), jobID: 770000 + time.Now().UnixNano()%100000}
	var err error
	if m.db, err = store.OpenAndMigrate(ctx, m.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.db.Close)
	key, err := vault.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(vault.EnvKeys, key)
	keys, err := vault.ParseKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(m.db.Store, keys)
	if err != nil {
		t.Fatal(err)
	}
	m.src = testenv.StartServer(t, srcKind, []testenv.User{{Name: "alice", Password: "src-alice"}, {Name: "bob", Password: "src-bob"}})
	m.dst = testenv.StartServer(t, dstKind, []testenv.User{{Name: "alice", Password: "dst-alice"}})
	if m.srcRef, err = v.Put(ctx, vault.Secret{Password: "src-alice"}, nil); err != nil {
		t.Fatal(err)
	}
	if m.dstRef, err = v.Put(ctx, vault.Secret{Password: "dst-alice"}, nil); err != nil {
		t.Fatal(err)
	}
	m.destVia = m.dst.Addr()
	m.srv = testenv.SharedTemporal(t)
	m.queue = fmt.Sprintf("email-matrix-%d", time.Now().UnixNano())
	if kill {
		// APPENDs slowed down, so the kill finds some in flight.
		p, err := faultproxy.New(m.dst.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 256 << 10})
		m.destVia = p.Addr()
		m.worker = testenv.StartWorkerProcess(t, "TEMPORAL_ADDRESS="+m.srv.Address(), "TEMPORAL_NAMESPACE="+m.srv.Namespace(),
			"DATABASE_URL="+m.dbURL, "CUTOVER_TASK_QUEUE="+m.queue, vault.EnvKeys+"="+key)
		return m
	}
	startInProcessWorker(t, m.srv, m.dbURL, m.queue)
	return m
}

func (m *matrix) specYAML() string {
	return fmt.Sprintf(`job_id: %d
tenant_id: 7
domain: example.com
source: {label: %s, host: "%s", security: plain}
destination: {host: "%s", security: plain}
schedule: {presync_interval: 1h, final_sync_delay: 2s, soak: 1h, post_sync_interval: 30m}
mailboxes:
  - {email: alice@example.com, user: alice, credentials_ref: %s, dest_user: alice, dest_credentials_ref: %s}
`, m.jobID, m.src.Kind(), m.src.Addr(), m.destVia, m.srcRef, m.dstRef)
}

// nastyCorpus is the integration corpus (nested and non-ASCII folders, "Sent Items", exact
// duplicates, messages without Message-ID, raw 8-bit headers, malformed MIME, every flag, a
// 2 MB attachment) plus a folder whose 140 messages carry 140 different keywords. A Cyrus
// source holds no more than 100 keywords in a folder and refuses messages with bare LF line
// endings: it gets 100, and that message with CRLF.
func nastyCorpus(srcKind string) []mailtest.Message {
	msgs := mailtest.Standard(2 << 20)
	if srcKind == testenv.KindCyrus {
		for i, m := range msgs {
			if m.Gen == nil && bytes.Contains(m.Raw, []byte("Bare LF")) {
				msgs[i].Raw = bytes.ReplaceAll(m.Raw, []byte("\n"), []byte("\r\n"))
			}
		}
	}
	d := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tags := 140
	if srcKind == testenv.KindCyrus {
		tags = 100 // a Cyrus folder holds no more
	}
	for i := range tags {
		msgs = append(msgs, mailtest.Message{Folder: "Tagged", Date: d.Add(time.Duration(i) * time.Minute),
			Flags: []string{`\Seen`, fmt.Sprintf("tag%03d", i)},
			Raw:   mailtest.Text(fmt.Sprintf("tag-%d@matrix.example", i), "t@example.org", fmt.Sprintf("tag %d", i), d, "t\n")})
	}
	return msgs
}

// seedOtherUsersAndShared gives alice on a Cyrus source another user's folder and a shared
// folder she may read, each with a message: not hers to migrate.
func seedOtherUsersAndShared(t *testing.T, srv testenv.IMAPServer) {
	t.Helper()
	cy := srv.(*testenv.Cyrus)
	admin := cy.AdminAccount()
	admin.Create(t, "user.bob.Trash")
	admin.Create(t, "shared-news")
	a := admin.Login(t)
	for _, acl := range [][3]string{{"user.bob.Trash", "alice", "lrs"}, {"shared-news", "alice", "lrs"},
		{"shared-news", testenv.CyrusAdmin, "lrsip"}} {
		if err := a.SetACL(acl[0], imap.RightsIdentifier(acl[1]), imap.RightModificationReplace, imap.RightSet(acl[2])).Wait(); err != nil {
			t.Fatalf("setacl %v: %v", acl, err)
		}
	}
	d := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	cy.Account("bob").Append(t, "INBOX.Trash", mailtest.Text("bobs@matrix.example", "b@example.org", "bob's", d, "b\n"), nil, d)
	testenv.AppendWith(t, a, "shared-news", mailtest.Text("news@matrix.example", "n@example.org", "news", d, "n\n"), nil, d)
}

// changeUIDValidity gives a source folder a new UIDVALIDITY, as a restore from a backup does:
// Dovecot's own tool; Courier loses its UID database (each read-only session then sees a new
// UIDVALIDITY); on Cyrus the folder is rebuilt through IMAP (copied away, deleted, renamed back).
func changeUIDValidity(t *testing.T, srv testenv.IMAPServer, a testenv.MailAccount, folder string) {
	t.Helper()
	switch s := srv.(type) {
	case *testenv.Dovecot:
		if _, err := s.Doveadm(t, "mailbox", "update", "--uid-validity", "424242", "-u", a.User, folder); err != nil {
			t.Fatal(err)
		}
	case *testenv.Courier:
		s.ForgetUIDs(t, a.User, folder)
		time.Sleep(1100 * time.Millisecond) // Courier's UIDVALIDITY counts seconds
	default:
		c := a.Login(t)
		defer c.Close()
		tmp := folder + "-restored"
		if err := c.Create(tmp, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Copy(imap.SeqSet{{Start: 1, Stop: 0}}, tmp).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(folder).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Rename(tmp, folder, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// storeFlags changes flags of every message of a folder.
func storeFlags(t *testing.T, a testenv.MailAccount, folder string, op imap.StoreFlagsOp, flags ...string) {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fl := make([]imap.Flag, len(flags))
	for i, f := range flags {
		fl[i] = imap.Flag(f)
	}
	if err := c.Store(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: op, Silent: true, Flags: fl}, nil).Close(); err != nil {
		t.Fatal(err)
	}
}
