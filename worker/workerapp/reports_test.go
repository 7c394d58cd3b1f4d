package workerapp

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

type sentSignal struct {
	workflowID, name string
	reports          emailapi.MailboxReports
}

// A thousand mailboxes reporting within one interval reach their job as one signal holding
// each mailbox's newest report; another job gets its own; the next interval starts afresh.
func TestReportsReachEachJobOncePerInterval(t *testing.T) {
	var mu sync.Mutex
	var sent []sentSignal
	r := newJobReports(100*time.Millisecond, func(_ context.Context, id, name string, arg any) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, sentSignal{id, name, arg.(emailapi.MailboxReports)})
		return nil
	}, nil)
	progress, attempts := progressNotifier(r), attemptNotifier(r)
	ctx := context.Background()
	for i := range 1000 {
		email := fmt.Sprintf("u%d@example.com", i)
		progress(ctx, mailPassProgress(1, email, 1))
		progress(ctx, mailPassProgress(1, email, int64(i)))
	}
	for i := range 30 {
		attempts(ctx, mailAttempt(1, fmt.Sprintf("u%d@example.com", i), int32(i)))
	}
	progress(ctx, mailPassProgress(2, "other@example.com", 3))
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) == 2 })
	progress(ctx, mailPassProgress(1, "u0@example.com", 9))
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) == 3 })
	time.Sleep(300 * time.Millisecond) // nothing more to send
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 3 {
		t.Fatalf("%d signals, want 3", len(sent))
	}
	byJob := map[string][]emailapi.MailboxReports{}
	for _, s := range sent {
		if s.name != emailapi.MailboxReportsSignal {
			t.Errorf("signal %q, want %q", s.name, emailapi.MailboxReportsSignal)
		}
		byJob[s.workflowID] = append(byJob[s.workflowID], s.reports)
	}
	first := byJob[emailapi.WorkflowID(1)][0]
	if len(first.Progress) != 1000 {
		t.Fatalf("job 1's first signal holds %d mailboxes, want 1000", len(first.Progress))
	}
	for i, p := range first.Progress {
		if want := mailPassProgress(1, fmt.Sprintf("u%d@example.com", i), int64(i)); p != toWorkflow(want) {
			t.Fatalf("report %d: %+v, want the newest %+v", i, p, want)
		}
	}
	if n := len(first.Attempts); n != maxAttemptsKept {
		t.Errorf("n: want maxAttemptsKept; attempts kept: %d, last %+v; want the newest %d",
			n, first.Attempts[n-1], maxAttemptsKept)
	} else if first.Attempts[n-1].Attempt != 29 {
		t.Errorf("first.Attempts[n-1].Attempt = %v, want 29; attempts kept: %d, last %+v; want the newest %d",
			first.Attempts[n-1].Attempt, n, first.Attempts[n-1], maxAttemptsKept)
	}
	want := []emailapi.PassProgress{{Email: "other@example.com", RunType: model.RunInitial, Copied: 3}}
	if diff := cmp.Diff(want, byJob[emailapi.WorkflowID(2)][0].Progress); diff != "" {
		t.Errorf("job 2 (-want +got):\n%s", diff)
	}
	if second := byJob[emailapi.WorkflowID(1)][1]; len(second.Progress) != 1 {
		t.Errorf("len(second.Progress) = %v, want 1; job 1's second signal: %+v", len(second.Progress), second)
	} else if second.Progress[0].Copied != 9 {
		t.Errorf("second.Progress[0].Copied = %v, want 9; job 1's second signal: %+v",
			second.Progress[0].Copied, second)
	} else if len(second.Attempts) != 0 {
		t.Errorf("len(second.Attempts) = %v, want 0; job 1's second signal: %+v", len(second.Attempts), second)
	}
}

func mailPassProgress(job int64, email string, copied int64) mail.PassProgressReport {
	return mail.PassProgressReport{JobID: job, Email: email, RunType: model.RunInitial, Copied: copied}
}

func toWorkflow(p mail.PassProgressReport) emailapi.PassProgress {
	return emailapi.PassProgress{Email: p.Email, RunType: p.RunType, Copied: p.Copied, Done: p.Done}
}

func mailAttempt(job int64, email string, attempt int32) mail.AttemptFailure {
	return mail.AttemptFailure{JobID: job, Email: email, Type: emailapi.ErrTypeConnect, Message: "connection refused", Attempt: attempt}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("not within 5s")
}
