package mail

import (
	"context"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// Two entries merged into one destination account on purpose (merge: true) whose old accounts
// hold the same messages (mail sent to both addresses): a wave starts their passes at the same
// time, yet each message arrives once. The passes take turns on the account, and the second
// adopts the first's copies instead of copying them again. Counted on the server.
func TestMergedEntriesCopySharedMessagesOnce(t *testing.T) {
	e := newEnv(t, nil, nil)
	a := withVault(t, e)
	ctx := context.Background()
	const n = 200
	shared := mailtest.Bulk(mailtest.BulkOptions{Messages: n, Folders: []string{"INBOX"}, Seed: 21})
	mailtest.SeedMaildir(t, e.src, "alice", shared)
	other := testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: srcPassword}},
		testenv.WithDovecotConfig(srcConfig...)) // the second old account, on a server of its own
	mailtest.SeedMaildir(t, other, "alice", shared)

	mb, err := e.db.UpsertMailbox(ctx, store.Mailbox{JobID: e.spec.JobID, Email: "info@example.org", SourceType: model.SourceIMAP})
	if err != nil {
		t.Fatal(err)
	}
	first := e.spec
	first.Merge = true
	second := first
	second.MailboxID, second.Email = mb.ID, mb.Email
	second.Source.Addr = other.Addr()
	if second.Source.CredentialsRef, err = a.Vault.Put(ctx, vault.Secret{Password: srcPassword}, &mb.ID); err != nil {
		t.Fatal(err)
	}
	if second.Dest.CredentialsRef, err = a.Vault.Put(ctx, vault.Secret{Password: dstPassword}, &mb.ID); err != nil {
		t.Fatal(err)
	}

	var s testsuite.WorkflowTestSuite
	type result struct {
		st  emailapi.PassStats
		err error
	}
	run := func(spec emailapi.MailboxSpec, out chan<- result) {
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		val, err := env.ExecuteActivity(a.SyncMailbox, emailapi.PassRequest{Spec: spec, Mode: model.ModeCopy,
			RunType: model.RunInitial, Phase: model.PhaseInitialSync, TriggeredBy: "tester"})
		var st emailapi.PassStats
		if err == nil {
			err = val.Get(&st)
		}
		out <- result{st, err}
	}
	r1, r2 := make(chan result, 1), make(chan result, 1)
	go run(first, r1)
	go run(second, r2)
	res1, res2 := <-r1, <-r2
	if res1.err != nil {
		t.Fatalf("first entry's pass: %v", res1.err)
	}
	if res2.err != nil {
		t.Fatalf("second entry's pass: %v", res2.err)
	}
	t.Logf("transferred %d and %d", res1.st.Transferred, res2.st.Transferred)

	ids := e.dst.MessageIDs(t, "alice")
	copies := map[string]int{}
	for _, id := range ids {
		copies[id]++
	}
	var twice []string
	for id, c := range copies {
		if c > 1 {
			twice = append(twice, id)
		}
	}
	if len(twice) > 0 {
		t.Errorf("%d message(s) on the destination more than once, e.g. %s", len(twice), twice[0])
	}
	if len(copies) != n {
		t.Errorf("len(copies) = %d, want %d distinct messages on the destination", len(copies), n)
	}
	if got := res1.st.Transferred + res2.st.Transferred; got != n {
		t.Errorf("transferred %d + %d = %d, want %d", res1.st.Transferred, res2.st.Transferred, got, n)
	}
}
