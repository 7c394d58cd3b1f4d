package mail

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	srcPassword = "source-pw"
	dstPassword = "dest-pw"
)

// The source speaks '/' with no prefix; the destination is Courier-style ("INBOX." prefix and
// '.'), so every pass exercises separator and prefix translation.
var (
	srcConfig = []string{"namespace inbox {", "  separator = /", "}"}
	dstConfig = []string{"namespace inbox {", "  prefix = INBOX.", "  separator = .", "}"}
)

type env struct {
	t        testing.TB
	db       *store.DB
	src, dst *testenv.Dovecot
	eng      *Engine
	spec     emailapi.MailboxSpec
}

// newControlDB creates a control database (schema applied) with a job and alice's mailbox.
func newControlDB(t testing.TB) (*store.DB, store.Job, store.Mailbox) {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: job.ID, Email: "alice@example.org", SourceType: model.SourceIMAP})
	if err != nil {
		t.Fatal(err)
	}
	return db, job, mb
}

// testCredentials resolves the tests' two credentials references to their static passwords.
func testCredentials(_ context.Context, ref string) (imapx.Credentials, error) {
	switch ref {
	case "src-ref":
		return imapx.Credentials{Password: srcPassword}, nil
	case "dst-ref":
		return imapx.Credentials{Password: dstPassword}, nil
	}
	return imapx.Credentials{}, fmt.Errorf("unknown ref %q", ref)
}

// newEnv starts a source and a destination Dovecot, a control database with a job and a
// mailbox, and an engine logging in with static test credentials.
func newEnv(t testing.TB, srcOpts, dstOpts []string) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL and Dovecot")
	}
	db, job, mb := newControlDB(t)
	e := &env{t: t, db: db}
	e.src = testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: srcPassword}}, testenv.WithDovecotConfig(append(srcConfig, srcOpts...)...))
	e.dst = testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: dstPassword}}, testenv.WithDovecotConfig(append(dstConfig, dstOpts...)...))
	e.eng = &Engine{Store: db.Store, ReconnectDelay: 20 * time.Millisecond, Logger: testLogger(), Credentials: testCredentials}
	forgetServers(e.src.Addr(), e.dst.Addr())
	e.spec = emailapi.MailboxSpec{JobID: job.ID, MailboxID: mb.ID, Email: mb.Email, SourceType: model.SourceIMAP,
		Source:    emailapi.Endpoint{Addr: e.src.Addr(), Security: "plain", User: "alice", CredentialsRef: "src-ref"},
		Dest:      emailapi.Endpoint{Addr: e.dst.Addr(), Security: "plain", User: "alice", CredentialsRef: "dst-ref"},
		FolderMap: map[string]string{"Sent Items": "Sent"}}
	return e
}

func (e *env) sync(mode model.SyncMode) emailapi.PassStats {
	e.t.Helper()
	st, err := e.eng.Sync(context.Background(), emailapi.PassRequest{Spec: e.spec, Mode: mode, RunType: model.RunDelta, Phase: model.PhaseDeltaSync}, SyncOptions{})
	if err != nil {
		e.t.Fatalf("sync (%s): %v", mode, err)
	}
	return st
}

// timedSync is sync that also says how long the pass took.
func (e *env) timedSync(mode model.SyncMode) (emailapi.PassStats, time.Duration) {
	e.t.Helper()
	began := time.Now()
	st := e.sync(mode)
	return st, time.Since(began)
}

func (e *env) verify() emailapi.VerifyReport {
	e.t.Helper()
	rep, err := e.eng.Verify(context.Background(), e.spec, 0)
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	return rep
}

// requireClean fails unless verify finds nothing but the expected quarantined messages.
func (e *env) requireClean(quarantined int64) emailapi.VerifyReport {
	e.t.Helper()
	rep := e.verify()
	if !rep.OK || rep.Missing != 0 || rep.Extra != 0 || rep.FlagDiffs != 0 || rep.DateDiffs != 0 || rep.Quarantined != quarantined {
		var samples []string
		for _, f := range rep.Folders {
			samples = append(samples, f.Samples...)
		}
		e.t.Fatalf("verify: ok=%v missing=%d extra=%d flags=%d dates=%d quarantined=%d (want %d)\n%s", rep.OK, rep.Missing,
			rep.Extra, rep.FlagDiffs, rep.DateDiffs, rep.Quarantined, quarantined, strings.Join(samples, "\n"))
	}
	return rep
}

// client logs in to a test server directly, to change things behind the engine's back.
func client(t testing.TB, d *testenv.Dovecot, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("alice", password).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func appendMsg(t testing.TB, c *imapclient.Client, folder string, m mailtest.Message) {
	t.Helper()
	flags := make([]imap.Flag, len(m.Flags))
	for i, f := range m.Flags {
		flags[i] = imap.Flag(f)
	}
	cmd := c.Append(folder, m.Size(), &imap.AppendOptions{Flags: flags, Time: m.Date})
	if _, err := m.WriteTo(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %s: %v", folder, err)
	}
}

// count returns the number of messages in a folder.
func count(t testing.TB, c *imapclient.Client, folder string) uint32 {
	t.Helper()
	st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("status %s: %v", folder, err)
	}
	return *st.NumMessages
}

func countCorpus(msgs []mailtest.Message) int64 { return int64(len(msgs)) }

// testLogger logs to stderr with CUTOVER_DEBUG set, else only errors.
func testLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("CUTOVER_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
