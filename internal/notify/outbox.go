package notify

import "time"

// maxLog bounds the deliveries an Outbox remembers for the status.
const maxLog = 10

// Outbox is a migration's notifications in workflow state: the events not yet delivered to
// every webhook (oldest first) and the latest outcomes. It travels across continue-as-new, so
// an event queued before is delivered after, in order.
type Outbox struct {
	Seq       int64   `json:"seq"` // the last event's Seq
	Pending   []Event `json:"pending,omitempty"`
	Delivered int64   `json:"delivered"` // event × webhook deliveries that reached the receiver
	GaveUp    int64   `json:"gave_up"`   // deliveries abandoned after their retries ran out
	Log       []Entry `json:"log,omitempty"`
}

// Entry is one delivery's outcome in the delivery log.
type Entry struct {
	Seq      int64     `json:"seq"`
	Event    string    `json:"event"`
	URL      string    `json:"url"`
	OK       bool      `json:"ok"`
	Status   int       `json:"status,omitempty"`
	Attempts int32     `json:"attempts,omitempty"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
}

// Add queues ev for every webhook, numbering it; at is the workflow's clock.
func (o *Outbox) Add(workflowID string, ev Event, at time.Time) {
	o.Seq++
	ev.Seq, ev.ID, ev.At = o.Seq, EventID(workflowID, o.Seq), at
	o.Pending = append(o.Pending, ev)
}

// Record adds an outcome to the log.
func (o *Outbox) Record(e Entry) {
	if e.OK {
		o.Delivered++
	} else {
		o.GaveUp++
	}
	o.Log = append(o.Log, e)
	if n := len(o.Log); n > maxLog {
		o.Log = o.Log[n-maxLog:]
	}
}

// Summary is the delivery log as a status shows it.
type Summary struct {
	Webhooks  int     `json:"webhooks"`
	Queued    int     `json:"queued"` // events not yet delivered to every webhook
	Delivered int64   `json:"delivered"`
	GaveUp    int64   `json:"gave_up"`
	Log       []Entry `json:"log,omitempty"`
}

// Summary describes the outbox for a status; nil when there is nothing to say.
func (o *Outbox) Summary(webhooks int) *Summary {
	if o == nil || (webhooks == 0 && o.Seq == 0) {
		return nil
	}
	return &Summary{Webhooks: webhooks, Queued: len(o.Pending), Delivered: o.Delivered, GaveUp: o.GaveUp,
		Log: append([]Entry(nil), o.Log...)}
}
