// Package notifysend is the workflow side of notifications: a migration workflow queues events
// in its state (internal/notify.Outbox) and a sender coroutine delivers them, in order, each
// through the DeliverNotification activity with retries. The migration never waits for it:
// a receiver that is down delays its notifications, never the migration.
package notifysend

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/activities/webhook"
	"github.com/cutover/cutover/internal/notify"
)

// Options tune delivery; zero values take the defaults.
type Options struct {
	// GiveUpAfter: how long one event's delivery to one webhook is retried (default 24h).
	GiveUpAfter time.Duration `json:"give_up_after,omitempty"`
	// MaxInterval between retries (default 5m).
	MaxInterval time.Duration `json:"max_interval,omitempty"`
	// MaxAttempts bounds the attempts besides GiveUpAfter (default 0: only GiveUpAfter).
	MaxAttempts int32 `json:"max_attempts,omitempty"`
}

// HeartbeatTimeout bounds how long a delivery whose worker died (a SIGKILL, a lost host) stays
// assigned to it before another worker retries it: the activity keeps a heartbeat every quarter
// of it while it waits for the receiver, as the migrations' activities do. A timeout, not a
// change of the workflow's shape: replay does not compare it.
const HeartbeatTimeout = 15 * time.Second

// VersionChange names the workflow.GetVersion change that introduced the sender.
const VersionChange = "notify-webhooks"

// Sender delivers an Outbox's events to webhooks.
type Sender struct {
	Target   string // the migration's workflow id
	Webhooks []notify.Webhook
	Box      *notify.Outbox
	Options  Options
	// Changed is called after each event is done (state to write, details to refresh).
	Changed func(workflow.Context)

	busy bool
}

// Start runs the sender coroutine on a context the migration's cancellation does not reach
// (an aborted migration's last events are delivered too). No-op without webhooks.
func (s *Sender) Start(ctx workflow.Context) {
	if len(s.Webhooks) == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, func(gctx workflow.Context) {
		if workflow.GetVersion(gctx, VersionChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return
		}
		for {
			if err := workflow.Await(gctx, func() bool { return len(s.Box.Pending) > 0 }); err != nil {
				return
			}
			s.busy = true
			ev := s.Box.Pending[0]
			for _, h := range s.Webhooks {
				s.Box.Record(s.deliver(gctx, h, ev))
			}
			s.Box.Pending = s.Box.Pending[1:]
			s.busy = false
			if s.Changed != nil {
				s.Changed(gctx)
			}
		}
	})
}

// Idle reports whether nothing is queued or being delivered.
func (s *Sender) Idle() bool { return len(s.Webhooks) == 0 || (len(s.Box.Pending) == 0 && !s.busy) }

// Drain waits until every queued event is delivered or given up (a migration's last events,
// before its workflow ends).
func (s *Sender) Drain(ctx workflow.Context) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, s.Idle)
}

func (s *Sender) deliver(ctx workflow.Context, h notify.Webhook, ev notify.Event) notify.Entry {
	giveUp, maxInterval := s.Options.GiveUpAfter, s.Options.MaxInterval
	if giveUp <= 0 {
		giveUp = 24 * time.Hour
	}
	if maxInterval <= 0 {
		maxInterval = 5 * time.Minute
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    webhook.DefaultTimeout + 20*time.Second,
		HeartbeatTimeout:       HeartbeatTimeout,
		ScheduleToCloseTimeout: giveUp,
		Summary:                ev.Event + " → " + h.URL,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: maxInterval, MaximumAttempts: s.Options.MaxAttempts,
			NonRetryableErrorTypes: []string{notify.ErrTypeRefused}},
	})
	var a *webhook.Activities
	var r notify.Receipt
	err := workflow.ExecuteActivity(actx, a.DeliverNotification, notify.Delivery{Target: s.Target, Webhook: h, Event: ev}).
		Get(ctx, &r)
	e := notify.Entry{Seq: ev.Seq, Event: ev.Event, URL: h.URL, At: workflow.Now(ctx).UTC()}
	if err != nil {
		e.Error = errText(err)
		workflow.GetLogger(ctx).Warn("notification given up", "target", s.Target, "seq", ev.Seq, "event", ev.Event,
			"error", e.Error)
		return e
	}
	e.OK, e.Status, e.Attempts = true, r.Status, r.Attempts
	return e
}

func errText(err error) string {
	var ae *temporal.ApplicationError
	for e := err; e != nil; {
		if x, ok := e.(*temporal.ApplicationError); ok {
			ae = x
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	if ae != nil {
		return ae.Message()
	}
	return err.Error()
}
