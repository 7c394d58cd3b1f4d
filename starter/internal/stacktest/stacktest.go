// Package stacktest starts, for one test, everything an email job or a database migration
// runs on: a throwaway PostgreSQL database with the vault, two Dovecot servers holding the
// demo corpus (starter/internal/demo), a Temporal dev server (shared, or its own with the Web UI) and
// the real worker (workerapp) in-process with its metrics endpoint.
package stacktest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/devtools/corpus"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/worker/workerapp"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Options shape a stack.
type Options struct {
	UI       bool // a dev server of its own serving the Web UI (else the package's shared one)
	Users    int  // default 3
	Messages int  // bulk messages per user, default 20
}

// Stack is a running stack.
type Stack struct {
	DBURL string // the worker's control database
	// TargetURL is the worker's default target of database migrations (CUTOVER_DB_TARGET_URL).
	TargetURL   string
	DB          *store.DB
	Vault       *vault.Vault
	VaultKey    string
	Temporal    *testenv.Temporal
	Client      *client.Client
	Queue       string
	MetricsAddr string
	ReportDir   string
	Src, Dst    *testenv.Dovecot
	Users       []demo.MailUser
	Refs        demo.Refs
	Seeded      int // messages seeded on the source
}

// Start brings a stack up; everything stops when the test ends. The test's environment gets
// CUTOVER_VAULT_KEYS (the in-process worker reads it), so tests using it cannot be parallel.
func Start(t *testing.T, o Options) *Stack {
	t.Helper()
	if o.Users == 0 {
		o.Users = 3
	}
	if o.Messages == 0 {
		o.Messages = 20
	}
	ctx := context.Background()
	s := &Stack{DBURL: testenv.NewDatabase(t), TargetURL: testenv.NewDatabase(t), Users: demo.Users(o.Users, o.Messages),
		ReportDir: t.TempDir()}
	var err error
	if s.DB, err = store.OpenAndMigrate(ctx, s.DBURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	if s.VaultKey, err = vault.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(vault.EnvKeys, s.VaultKey)
	keys, err := vault.ParseKeys(s.VaultKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.Vault, err = vault.New(s.DB.Store, keys); err != nil {
		t.Fatal(err)
	}
	var srcUsers, dstUsers []testenv.User
	for _, u := range s.Users {
		srcUsers = append(srcUsers, testenv.User{Name: u.Name, Password: u.SrcPassword})
		dstUsers = append(dstUsers, testenv.User{Name: u.Name, Password: u.DstPassword})
	}
	s.Src = testenv.StartDovecot(t, srcUsers)
	s.Dst = testenv.StartDovecot(t, dstUsers)
	if s.Seeded, err = demo.SeedCorpus(s.Users, s.Src.Maildir); err != nil {
		t.Fatal(err)
	}
	s.Src.FixOwnership(t)
	if s.Refs, err = demo.PutCredentials(ctx, s.Vault, s.Users); err != nil {
		t.Fatal(err)
	}

	if o.UI {
		s.Temporal = testenv.StartTemporal(t, testenv.WithUI())
	} else {
		s.Temporal = testenv.SharedTemporal(t)
	}
	s.Queue = fmt.Sprintf("stack-%d", time.Now().UnixNano())
	wctx, stop := context.WithCancel(ctx)
	ready, done := make(chan workerapp.Info, 1), make(chan error, 1)
	go func() {
		done <- workerapp.Run(wctx, workerapp.Config{TemporalAddress: s.Temporal.Address(), Namespace: s.Temporal.Namespace(),
			TaskQueue: s.Queue, DatabaseURL: s.DBURL, DBTargetURL: s.TargetURL, MetricsAddr: "127.0.0.1:0", ShutdownGrace: 5 * time.Second,
			ReportDir: s.ReportDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			func(i workerapp.Info) { ready <- i })
	}()
	select {
	case i := <-ready:
		s.MetricsAddr = i.MetricsAddr
	case err := <-done:
		t.Fatalf("worker exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("worker not ready in 60s")
	}
	t.Cleanup(func() { stop(); <-done })
	s.Client = client.New(s.Temporal.Client(t), s.Queue)
	return s
}

// EmailSpec is the demo job between the stack's Dovecots.
func (s *Stack) EmailSpec(jobID int64) jobspec.Spec {
	return demo.EmailSpec(jobID, s.Src.Addr(), s.Dst.Addr(), s.Users, s.Refs)
}

// Env is the environment the cutover CLI needs to reach this stack.
func (s *Stack) Env() map[string]string {
	return map[string]string{"DATABASE_URL": s.DBURL, dbmigrateapi.EnvTargetURL: s.TargetURL, "TEMPORAL_ADDRESS": s.Temporal.Address(),
		"TEMPORAL_NAMESPACE": s.Temporal.Namespace(), "CUTOVER_TASK_QUEUE": s.Queue, vault.EnvKeys: s.VaultKey,
		"CUTOVER_REPORT_DIR": s.ReportDir, "USER": "ops"}
}

// Deliver drops messages into a source mailbox as a delivery agent would.
func (s *Stack) Deliver(t *testing.T, u demo.MailUser, n int, at time.Time) {
	t.Helper()
	if err := corpusWrite(s.Src.Maildir(u.Name), demo.Arrival(u, n, at)); err != nil {
		t.Fatal(err)
	}
	s.Src.FixOwnership(t)
}

func corpusWrite(maildir string, msgs []corpus.Message) error {
	return corpus.WriteMaildir(maildir, msgs)
}
