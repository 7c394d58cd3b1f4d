// Package notify is the contract of the notifications cutover posts to a ticket desk: the
// event payload (the ticket desk's payload first, then the ticket, the event and the next
// action), the webhooks a job or a migration names, and the HMAC signature a receiver checks.
// It is a leaf: no I/O, safe in workflow code; delivery is activities/webhook's.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Headers of every delivery.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body under the webhook's
	// secret (the vault secret its secret_ref names).
	HeaderSignature = "X-Cutover-Signature"
	// HeaderEvent is the event name (Event.Event).
	HeaderEvent = "X-Cutover-Event"
	// HeaderDelivery is the event's id (Event.ID): the same on every retry of one event, so a
	// receiver that saw it already answers 2xx and ignores it.
	HeaderDelivery = "X-Cutover-Delivery"
)

// Event names. A phase change is phase_changed, except the phases a desk acts on, which have
// their own: failed, verified, closed. A gate change is gate_changed, or gate_ready when the
// gate reaches ready_for_dns. Database migrations post migration_* events and phase_changed.
const (
	EventPhaseChanged = "phase_changed"
	EventGateChanged  = "gate_changed"
	EventGateReady    = "gate_ready"
	EventFailed       = "failed"
	EventVerified     = "verified"
	EventClosed       = "closed"
)

// Event is one notification's JSON body.
type Event struct {
	// The ticket desk's payload. A database migration has no job id: MigrationID names it.
	JobID       int64   `json:"migration_job_id,omitempty"`
	Phase       string  `json:"migration_phase"`
	Gate        string  `json:"migration_gate,omitempty"`
	SyncPercent float64 `json:"migration_sync_percent"`

	TicketID   int64  `json:"ticket_id,omitempty"`
	Event      string `json:"event"`
	NextAction string `json:"next_action,omitempty"`

	ID          string    `json:"event_id"` // "<workflow id>:<seq>", unique per migration
	Seq         int64     `json:"seq"`      // 1, 2, ... in the order the migration lived them
	Kind        string    `json:"kind"`     // email | database
	MigrationID string    `json:"migration_id,omitempty"`
	Domain      string    `json:"domain,omitempty"`
	Message     string    `json:"message,omitempty"`
	At          time.Time `json:"at"`
}

// Webhook is one receiver: a URL and the vault reference of its HMAC secret.
type Webhook struct {
	URL       string `json:"url" yaml:"url"`
	SecretRef string `json:"secret_ref" yaml:"secret_ref"`
}

// Check names what is wrong with a webhook ("" when nothing): an http(s) URL without
// credentials in it, and a secret reference (secrets live in the vault, never in a spec).
func (w Webhook) Check() string {
	u, err := url.Parse(w.URL)
	switch {
	case strings.TrimSpace(w.URL) == "":
		return "url is required"
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "url must be an http or https URL"
	case u.User != nil:
		return "url must not carry credentials; the receiver checks the signature made with secret_ref"
	case strings.TrimSpace(w.SecretRef) == "":
		return "secret_ref is required: store the HMAC secret with `cutover vault put` and give its credentials_ref"
	case !looksLikeRef(w.SecretRef):
		return "secret_ref is not a vault reference (a credentials_ref printed by `cutover vault put`)"
	}
	return ""
}

// looksLikeRef is the shape of a vault reference (a UUID), checked without parsing libraries.
func looksLikeRef(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", c):
			return false
		}
	}
	return true
}

// Sign returns the HeaderSignature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a HeaderSignature value in constant time.
func Verify(secret, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// EventID is the id of a migration's seq-th event.
func EventID(workflowID string, seq int64) string { return fmt.Sprintf("%s:%d", workflowID, seq) }

// Delivery asks for one event to reach one webhook.
type Delivery struct {
	// Target names the migration in the delivery log: its workflow id.
	Target  string  `json:"target"`
	Webhook Webhook `json:"webhook"`
	Event   Event   `json:"event"`
}

// Receipt is a delivery's outcome.
type Receipt struct {
	Status    int       `json:"status"` // the receiver's HTTP status
	Attempts  int32     `json:"attempts"`
	Delivered time.Time `json:"delivered"`
	// Already: an earlier run of the migration delivered it (continue-as-new, a retried task).
	Already bool `json:"already,omitempty"`
}

// Error types of a failed delivery (temporal.ApplicationError.Type()).
const (
	// ErrTypeRefused: the receiver answered 4xx (not 408, 425 or 429): retrying cannot help.
	ErrTypeRefused = "WebhookRefused"
	// ErrTypeUnavailable: no answer, or 5xx, 408, 425, 429: retried with backoff.
	ErrTypeUnavailable = "WebhookUnavailable"
	// ErrTypeNoSecret: the vault cannot give the signing secret (the vault's own spelling).
	ErrTypeNoSecret = "CredentialsUnavailable"
)
