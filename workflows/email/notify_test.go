package email

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/activities/webhook"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/notifysend"
)

// receiver is a ticket desk's webhook endpoint: it checks every signature, can be down, and
// records what it accepted.
type receiver struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	down   bool
	posts  int // every request, refused ones included
	got    []notify.Event
	badSig int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	if rc.down {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	if !notify.Verify(rc.secret, body, r.Header.Get(notify.HeaderSignature)) {
		rc.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev notify.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.t.Errorf("receiver: %v", err)
	}
	if r.Header.Get(notify.HeaderDelivery) != ev.ID {
		rc.t.Errorf("want r.Header.Get(notify.HeaderDelivery) == ev.ID; headers %v do not match the event %s/%s",
			r.Header, ev.ID, ev.Event)
	} else if r.Header.Get(notify.HeaderEvent) != ev.Event {
		rc.t.Errorf("want r.Header.Get(notify.HeaderEvent) == ev.Event; headers %v do not match the event %s/%s",
			r.Header, ev.ID, ev.Event)
	}
	rc.got = append(rc.got, ev)
}

func (rc *receiver) set(down bool) {
	rc.mu.Lock()
	rc.down = down
	rc.mu.Unlock()
}

func (rc *receiver) snapshot() (posts int, got []notify.Event) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.posts, append([]notify.Event(nil), rc.got...)
}

// The job's notifications reach a webhook once each, in order, signed, through an outage of
// the receiver that never holds the job back.
func TestNotificationsReachTheDeskInOrderThroughAnOutage(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	testenv.Require(t, "PostgreSQL", err)
	t.Cleanup(db.Close)
	key, _ := vault.GenerateKey()
	keys, _ := vault.ParseKeys(key)
	v, err := vault.New(db.Store, keys)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := v.Put(ctx, vault.Secret{Password: "desk-hmac-secret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t, secret: []byte("desk-hmac-secret"), down: true}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)

	h := newHarness(t, syncDelays{initial: 30 * time.Minute, delta: 7 * time.Minute, final: 10 * time.Minute})
	h.env.RegisterActivity(&webhook.Activities{DB: db, Vault: v})
	spec := testSpec(3)
	spec.TicketID = 4711
	cutover := t0.Add(20 * time.Hour)
	spec.Schedule.CutoverAt = &cutover
	spec.Webhooks = []notify.Webhook{{URL: srv.URL + "/hooks/cutover?token=desk", SecretRef: ref}}

	// The desk is down from the start until the job waits for DNS: the job goes on meanwhile.
	var whileDown emailapi.Status
	var postsWhileDown int
	h.at(19*time.Hour, func() { h.signal(emailapi.Approve, "lead") })
	h.at(20*time.Hour+30*time.Minute, func() {
		whileDown = h.status()
		postsWhileDown, _ = rc.snapshot()
		rc.set(false)
	})
	h.at(21*time.Hour, func() { h.update(emailapi.DNSCutoverConfirmed, emailapi.Request{By: "lead"}) })
	// Retried every hour at most, as long as the outage lasts (the test suite bounds retries
	// without a limit to 10 attempts).
	h.env.ExecuteWorkflow(emailapi.WorkflowName, spec, &Resume{Tuning: Tuning{Notify: notifysend.Options{MaxInterval: time.Hour,
		MaxAttempts: 1000}}})
	res, err := h.result()
	if err != nil {
		t.Fatal(err)
	}
	if whileDown.Phase != model.PhaseCutoverReady {
		t.Errorf("whileDown.Phase: want model.PhaseCutoverReady; while the desk was down the job should reach cutover_ready with notifications queued: phase %s, %+v",
			whileDown.Phase, whileDown.Notifications)
	} else if whileDown.Notifications == nil {
		t.Errorf("whileDown.Notifications is nil; while the desk was down the job should reach cutover_ready with notifications queued: phase %s, %+v",
			whileDown.Phase, whileDown.Notifications)
	} else if whileDown.Notifications.Delivered != 0 {
		t.Errorf("whileDown.Notifications.Delivered = %v, want 0; while the desk was down the job should reach cutover_ready with notifications queued: phase %s, %+v",
			whileDown.Notifications.Delivered, whileDown.Phase, whileDown.Notifications)
	} else if whileDown.Notifications.Queued == 0 {
		t.Errorf("whileDown.Notifications.Queued = %v, want != 0; while the desk was down the job should reach cutover_ready with notifications queued: phase %s, %+v",
			whileDown.Notifications.Queued, whileDown.Phase, whileDown.Notifications)
	}
	if postsWhileDown < 2 {
		t.Errorf("only %d posts during the outage: deliveries were not retried", postsWhileDown)
	}
	if res.Phase != model.PhaseClosed {
		t.Fatalf("job ended in %s", res.Phase)
	}
	h.requireHeartbeatTimeout("DeliverNotification", notifysend.HeartbeatTimeout)

	_, got := rc.snapshot()
	type seen struct {
		Seq      int64
		Event    string
		Phase    string
		Gate     string
		TicketID int64
		JobID    int64
	}
	var gotSeen []seen
	for _, e := range got {
		gotSeen = append(gotSeen, seen{e.Seq, e.Event, e.Phase, e.Gate, e.TicketID, e.JobID})
	}
	want := []seen{
		{1, notify.EventPhaseChanged, "preflight", "blocked", 4711, testJob},
		{2, notify.EventPhaseChanged, "initial_sync", "blocked", 4711, testJob},
		// The initial sync's end evaluates the gate, then the job enters delta_sync.
		{3, notify.EventGateChanged, "initial_sync", "warning", 4711, testJob},
		{4, notify.EventPhaseChanged, "delta_sync", "warning", 4711, testJob},
		{5, notify.EventGateReady, "delta_sync", "ready_for_dns", 4711, testJob},
		{6, notify.EventPhaseChanged, "cutover_ready", "ready_for_dns", 4711, testJob},
		{7, notify.EventPhaseChanged, "dns_cutover", "ready_for_dns", 4711, testJob},
		{8, notify.EventPhaseChanged, "final_sync", "ready_for_dns", 4711, testJob},
		{9, notify.EventVerified, "verified", "ready_for_dns", 4711, testJob},
		{10, notify.EventClosed, "closed", "ready_for_dns", 4711, testJob},
	}
	if d := cmp.Diff(want, gotSeen); d != "" {
		t.Errorf("events the desk received (-want +got):\n%s", d)
	}
	for _, e := range got {
		if e.ID != notify.EventID(emailapi.WorkflowID(testJob), e.Seq) || e.At.IsZero() {
			t.Errorf("event %d: id %q at %v", e.Seq, e.ID, e.At)
		}
		switch e.Seq {
		case 4:
			if !strings.Contains(e.NextAction, "cutover email approve 42") {
				t.Errorf("gate warning in delta_sync: next action %q", e.NextAction)
			}
		case 5:
			if e.SyncPercent != 100 || !strings.Contains(e.NextAction, "cutover email cutover 42") {
				t.Errorf("gate_ready at %.1f%%, next action %q", e.SyncPercent, e.NextAction)
			}
		}
	}
	if rc.badSig != 0 {
		t.Errorf("%d deliveries with a bad signature", rc.badSig)
	}
	if n := res.Notifications; n == nil {
		t.Errorf("n is nil; final delivery log %+v", n)
	} else if n.Delivered != int64(len(want)) {
		t.Errorf("n.Delivered = %v, want %v (int64(len(want))); final delivery log %+v",
			n.Delivered, int64(len(want)), n)
	} else if n.Queued != 0 {
		t.Errorf("n.Queued = %v, want 0; final delivery log %+v", n.Queued, n)
	} else if n.GaveUp != 0 {
		t.Errorf("n.GaveUp = %v, want 0; final delivery log %+v", n.GaveUp, n)
	}
	// The delivery log in PostgreSQL: every event delivered, the first after several attempts.
	rows, err := db.ListNotificationDeliveries(ctx, emailapi.WorkflowID(testJob), 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d delivery rows, want %d", len(rows), len(want))
	}
	first := rows[len(rows)-1]
	if first.Status != "delivered" {
		t.Errorf("first.Status = %v, want \"delivered\"; first delivery %+v: want delivered after retries",
			first.Status, first)
	} else if first.Attempts < 2 {
		t.Errorf("first.Attempts = %v, want >= 2; first delivery %+v: want delivered after retries",
			first.Attempts, first)
	} else if first.DeliveredAt == nil {
		t.Errorf("first.DeliveredAt is nil; first delivery %+v: want delivered after retries", first)
	}
}
