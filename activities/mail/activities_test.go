package mail

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fernet/fernet-go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// withVault stores the test passwords in a real vault and points the spec at its references.
func withVault(t *testing.T, e *env) *Activities {
	t.Helper()
	var k fernet.Key
	if err := k.Generate(); err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(e.db.Store, []*fernet.Key{&k})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mb := e.spec.MailboxID
	if e.spec.Source.CredentialsRef, err = v.Put(ctx, vault.Secret{Password: srcPassword}, &mb); err != nil {
		t.Fatal(err)
	}
	if e.spec.Dest.CredentialsRef, err = v.Put(ctx, vault.Secret{Password: dstPassword}, &mb); err != nil {
		t.Fatal(err)
	}
	a := &Activities{DB: e.db, Vault: v, Logger: testLogger(), Tune: func(en *Engine) {
		en.ReconnectDelay, en.SettleDelay, en.ProgressEvery, en.Reconnects = 10*time.Millisecond, 500*time.Millisecond, 50*time.Millisecond, 1
	}}
	e.eng.Credentials = a.credentials // verify in the tests reads the same vault
	return a
}

// SyncMailbox as Temporal runs it: the first attempt loses the destination for good mid-pass
// and fails with a retryable Connect error after heartbeating its progress; the retry gets
// those heartbeat details, reuses the run row, skips the folders already finished, carries the
// counters over and completes. Every message arrives once, and the mailbox row shows the result.
func TestSyncMailboxActivityResumesFromHeartbeat(t *testing.T) {
	e := newEnv(t, nil, nil)
	a := withVault(t, e)
	corpus := mailtest.Bulk(mailtest.BulkOptions{Messages: 900, Folders: []string{"INBOX", "A", "B", "C", "D", "E"}, Seed: 3})
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	p := proxied(t, e, true)
	p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, CutAfter: 5 << 20, Times: 1})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Once the first connection is cut, the destination stays down for this attempt.
		for p.Cuts() == 0 {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
		p.Refuse(true)
		p.CutAll()
	}()

	req := emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunInitial, Phase: model.PhaseInitialSync, Parallelism: 2, TriggeredBy: "tester"}
	var mu sync.Mutex
	var last emailapi.Progress
	var beats int
	var s testsuite.WorkflowTestSuite
	env1 := s.NewTestActivityEnvironment()
	env1.RegisterActivity(a)
	env1.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		var pr emailapi.Progress
		if d.HasValues() && d.Get(&pr) == nil {
			mu.Lock()
			last, beats = pr, beats+1
			mu.Unlock()
		}
	})
	_, err := env1.ExecuteActivity(a.SyncMailbox, req)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != emailapi.ErrTypeConnect || ae.NonRetryable() {
		t.Fatalf("first attempt: %v, want a retryable %s error", err, emailapi.ErrTypeConnect)
	}
	mu.Lock()
	first := last
	mu.Unlock()
	if beats == 0 {
		t.Fatalf("beats: want != 0; first attempt heartbeats: %d, last %+v: want progress part-way", beats, first)
	}
	if first.RunID == 0 {
		t.Fatalf("first.RunID = %v, want != 0; first attempt heartbeats: %d, last %+v: want progress part-way",
			first.RunID, beats, first)
	}
	if first.Counters.Transferred == 0 {
		t.Fatalf("first.Counters.Transferred = %v, want != 0; first attempt heartbeats: %d, last %+v: want progress part-way",
			first.Counters.Transferred, beats, first)
	}
	if first.Counters.Transferred >= 900 {
		t.Fatalf("first.Counters.Transferred = %v, want < 900; first attempt heartbeats: %d, last %+v: want progress part-way",
			first.Counters.Transferred, beats, first)
	}
	t.Logf("first attempt stopped after %d messages, %d folders done", first.Counters.Transferred, len(first.Done))

	p.Refuse(false)
	p.Clear()
	env2 := s.NewTestActivityEnvironment()
	env2.RegisterActivity(a)
	env2.SetHeartbeatDetails(first)
	val, err := env2.ExecuteActivity(a.SyncMailbox, req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	var st emailapi.PassStats
	if err := val.Get(&st); err != nil {
		t.Fatal(err)
	}
	if st.RunID != first.RunID {
		t.Errorf("retry recorded run %d, the first attempt %d: want one run row", st.RunID, first.RunID)
	}
	if st.Transferred != 900 {
		t.Errorf("st.Transferred: want 900; retry stats: transferred %d found %d pending %d, want 900/900/0 (the first attempt's count carried over)",
			st.Transferred, st.Found, st.Pending)
	} else if st.Pending != 0 {
		t.Errorf("st.Pending: want 0; retry stats: transferred %d found %d pending %d, want 900/900/0 (the first attempt's count carried over)",
			st.Transferred, st.Found, st.Pending)
	} else if st.Found != 900 {
		t.Errorf("st.Found: want 900; retry stats: transferred %d found %d pending %d, want 900/900/0 (the first attempt's count carried over)",
			st.Transferred, st.Found, st.Pending)
	}
	e.requireClean(0)

	ctx := context.Background()
	runs, err := e.db.ListRuns(ctx, e.spec.JobID, e.spec.MailboxID)
	if err != nil {
		t.Fatalf("err: want nil; runs: %d, %v", len(runs), err)
	}
	if len(runs) != 1 {
		t.Fatalf("len(runs): want 1; runs: %d, %v", len(runs), err)
	}
	r := runs[0]
	var stats map[string]any
	_ = json.Unmarshal(r.Stats, &stats)
	if r.Status != model.RunSuccess {
		t.Errorf("r.Status = %v, want model.RunSuccess; run row: %+v stats %v", r.Status, r, stats)
	} else if r.RunType != model.RunInitial {
		t.Errorf("r.RunType = %v, want model.RunInitial; run row: %+v stats %v", r.RunType, r, stats)
	} else if r.TriggeredBy != "tester" {
		t.Errorf("r.TriggeredBy = %v, want \"tester\"; run row: %+v stats %v", r.TriggeredBy, r, stats)
	} else if stats["transferred"] != float64(900) {
		t.Errorf("stats[\"transferred\"] = %v, want %v (float64(900)); run row: %+v stats %v",
			stats["transferred"], float64(900), r, stats)
	}
	mb, err := e.db.GetMailbox(ctx, e.spec.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if mb.Status != model.MailboxOK {
		t.Errorf("mb.Status: want model.MailboxOK; mailbox row: status %s source %d dest %d percent %v",
			mb.Status, mb.MessagesSource, mb.MessagesDest, mb.SyncPercent)
	} else if mb.MessagesSource != 900 {
		t.Errorf("mb.MessagesSource: want 900; mailbox row: status %s source %d dest %d percent %v",
			mb.Status, mb.MessagesSource, mb.MessagesDest, mb.SyncPercent)
	} else if mb.MessagesDest != 900 {
		t.Errorf("mb.MessagesDest: want 900; mailbox row: status %s source %d dest %d percent %v",
			mb.Status, mb.MessagesSource, mb.MessagesDest, mb.SyncPercent)
	} else if mb.SyncPercent != 100 {
		t.Errorf("mb.SyncPercent: want 100; mailbox row: status %s source %d dest %d percent %v",
			mb.Status, mb.MessagesSource, mb.MessagesDest, mb.SyncPercent)
	}
}

// Permanent failures come back as the contract's non-retryable types, and no secret leaks
// into the error.
func TestActivityErrorTypes(t *testing.T) {
	e := newEnv(t, nil, nil)
	a := withVault(t, e)
	var s testsuite.WorkflowTestSuite
	run := func(req emailapi.PassRequest) error {
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		_, err := env.ExecuteActivity(a.SyncMailbox, req)
		return err
	}
	wrongPw := e.spec
	ctx := context.Background()
	mb := e.spec.MailboxID
	ref, err := a.Vault.Put(ctx, vault.Secret{Password: "wrong-password-42"}, &mb)
	if err != nil {
		t.Fatal(err)
	}
	wrongPw.Dest.CredentialsRef = ref
	badRegex := e.spec
	badRegex.Include = []string{"("}
	noRef := e.spec
	noRef.Source.CredentialsRef = "00000000-0000-0000-0000-000000000000"
	for name, c := range map[string]struct {
		req  emailapi.PassRequest
		want string
	}{
		"auth":   {emailapi.PassRequest{Spec: wrongPw, RunType: model.RunDelta}, emailapi.ErrTypeAuthFailed},
		"regex":  {emailapi.PassRequest{Spec: badRegex, RunType: model.RunDelta}, emailapi.ErrTypeBadSpec},
		"ref":    {emailapi.PassRequest{Spec: noRef, RunType: model.RunDelta}, emailapi.ErrTypeCredentialsUnavailable},
		"mirror": {emailapi.PassRequest{Spec: e.spec, Mode: model.ModeMirror, RunType: model.RunFinal, Phase: model.PhaseDNSCutover}, emailapi.ErrTypeMirrorAfterCutover},
	} {
		err := run(c.req)
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || ae.Type() != c.want || !ae.NonRetryable() {
			t.Errorf("%s: %v, want non-retryable %s", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "wrong-password-42") {
			t.Errorf("%s: error leaks the password", name)
		}
	}
	// A destination that is down is retryable.
	down := e.spec
	down.Dest.Addr = "127.0.0.1:1"
	var ae *temporal.ApplicationError
	if err := run(emailapi.PassRequest{Spec: down}); !errors.As(err, &ae) || ae.Type() != emailapi.ErrTypeConnect || ae.NonRetryable() {
		t.Errorf("destination down: %v, want retryable %s", err, emailapi.ErrTypeConnect)
	}
}

// PreflightMailbox reports folders, counts, quota, APPENDLIMIT and warnings, and records them.
func TestPreflightActivity(t *testing.T) {
	// imap_quota after quota: "$mail_plugins" expands to what is defined above it.
	e := newEnv(t, nil, append(append([]string{"imap_capability = +APPENDLIMIT=1048576"}, quotaPlugin...),
		"protocol imap {", "  mail_plugins = $mail_plugins imap_quota", "}"))
	a := withVault(t, e)
	corpus := mailtest.Standard(2 << 20)
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.PreflightMailbox, e.spec)
	if err != nil {
		t.Fatal(err)
	}
	var rep emailapi.PreflightReport
	if err := val.Get(&rep); err != nil {
		t.Fatal(err)
	}
	var msgs int64
	sent := false
	for _, f := range rep.Folders {
		msgs += f.SourceMessages
		if f.Source == "Sent Items" && f.Dest == "INBOX.Sent" && f.SpecialUse == `\Sent` {
			sent = true
		}
	}
	if msgs != countCorpus(corpus) || !sent {
		t.Errorf("folders: %d messages (want %d), Sent Items mapped: %v: %+v", msgs, countCorpus(corpus), sent, rep.Folders)
	}
	if rep.AppendLimit != 1048576 {
		t.Errorf("rep.AppendLimit: want 1048576; append limit %d, quota limit %d",
			rep.AppendLimit, rep.DestQuotaLimit)
	} else if rep.DestQuotaLimit != 1<<30 {
		t.Errorf("rep.DestQuotaLimit: want 1<<30; append limit %d, quota limit %d",
			rep.AppendLimit, rep.DestQuotaLimit)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "1 message(s) larger") {
		t.Errorf("warnings do not mention the oversized message: %q", rep.Warnings)
	}
	mb, _ := e.db.GetMailbox(context.Background(), e.spec.MailboxID)
	if mb.MessagesSource != msgs {
		t.Errorf("mb.MessagesSource = %v, want %v (msgs); mailbox row: %+v", mb.MessagesSource, msgs, mb)
	} else if mb.BytesSource == 0 {
		t.Errorf("mb.BytesSource = %v, want != 0; mailbox row: %+v", mb.BytesSource, mb)
	}
}

// Two attempts of one pass at once, as when Temporal retries a pass whose heartbeats it lost
// (its server was down) while the first attempt still copies: the second waits for the first
// to end and settles what it left; every message arrives once.
func TestOverlappingAttemptsOfAPassCopyOnce(t *testing.T) {
	e := newEnv(t, nil, nil)
	a := withVault(t, e)
	corpus := mailtest.Bulk(mailtest.BulkOptions{Messages: 300, Folders: []string{"INBOX", "A", "B"}, Seed: 11})
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	p := proxied(t, e, true)
	p.Set(faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 1 << 20}) // the first attempt is still copying when the second starts
	req := emailapi.PassRequest{Spec: e.spec, Mode: model.ModeCopy, RunType: model.RunInitial, Phase: model.PhaseInitialSync, Parallelism: 2, TriggeredBy: "tester"}

	var s testsuite.WorkflowTestSuite
	type result struct {
		st  emailapi.PassStats
		err error
		end time.Time
	}
	run := func(out chan<- result) {
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		val, err := env.ExecuteActivity(a.SyncMailbox, req)
		var st emailapi.PassStats
		if err == nil {
			err = val.Get(&st)
		}
		out <- result{st, err, time.Now()}
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go run(first)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var n int
		_ = e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM mail_messages`).Scan(&n)
		if n > 0 { // the first attempt is appending
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt appended nothing in a minute")
		}
	}
	go run(second)
	r1, r2 := <-first, <-second
	if r1.err != nil {
		t.Fatalf("r1.err: want nil; attempts: %v / %v", r1.err, r2.err)
	}
	if r2.err != nil {
		t.Fatalf("r2.err: want nil; attempts: %v / %v", r1.err, r2.err)
	}
	if !r2.end.After(r1.end) {
		t.Errorf("the second attempt ended before the first: it did not wait")
	}
	t.Logf("first attempt transferred %d, second %d", r1.st.Transferred, r2.st.Transferred)
	e.requireClean(0)
}
