// Package webhook delivers notifications (internal/notify's events) to webhooks: one signed
// POST per event and webhook, retried by Temporal with backoff, each attempt recorded in the
// delivery log (notification_deliveries) so an event delivered once is never posted again.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/heartbeat"
	"github.com/cutover/cutover/internal/notify"
)

// DefaultTimeout bounds one POST.
const DefaultTimeout = 10 * time.Second

// Activities is registered on the worker; DeliverNotification is the activity type name.
type Activities struct {
	DB         *store.DB
	Vault      *vault.Vault
	HTTPClient *http.Client // default: DefaultTimeout
	Logger     *slog.Logger
}

// DeliverNotification posts one event to one webhook, signed with the webhook's secret.
func (a *Activities) DeliverNotification(ctx context.Context, d notify.Delivery) (notify.Receipt, error) {
	defer heartbeat.KeepAlive(ctx, nil)() // a receiver that does not answer takes DefaultTimeout
	attempt := activity.GetInfo(ctx).Attempt
	if a.DB != nil {
		done, err := a.DB.NotificationDelivered(ctx, d.Target, d.Event.Seq, d.Webhook.URL)
		if err != nil {
			return notify.Receipt{}, err
		}
		if done {
			return notify.Receipt{Attempts: attempt, Already: true}, nil
		}
	}
	status, err := a.post(ctx, d)
	rec := store.NotificationDelivery{Target: d.Target, Seq: d.Event.Seq, URL: d.Webhook.URL, Event: d.Event.Event,
		Status: "delivered", Attempts: attempt}
	if status > 0 {
		s := int32(status)
		rec.HTTPStatus = &s
	}
	if err != nil {
		rec.Status, rec.LastError = "retrying", err.Error()
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) {
			rec.LastError = ae.Message()
			if ae.NonRetryable() {
				rec.Status = "refused"
			}
		}
	}
	if a.DB != nil {
		if rerr := a.DB.RecordNotificationAttempt(ctx, rec); rerr != nil && err == nil {
			// Delivered but not recorded: a retry finds no record and posts again, which the
			// receiver recognises by the delivery id. Better than losing the event.
			return notify.Receipt{}, rerr
		}
	}
	if err != nil {
		a.logger().Warn("notification not delivered", "target", d.Target, "seq", d.Event.Seq, "event", d.Event.Event,
			"attempt", attempt, "err", err)
		return notify.Receipt{}, err
	}
	return notify.Receipt{Status: status, Attempts: attempt, Delivered: time.Now().UTC()}, nil
}

func (a *Activities) post(ctx context.Context, d notify.Delivery) (int, error) {
	secret, err := a.secret(ctx, d.Webhook.SecretRef)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(d.Event)
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError("encode event: "+err.Error(), notify.ErrTypeRefused, nil)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError("webhook URL: "+plain(err), notify.ErrTypeRefused, nil)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cutover-notify")
	req.Header.Set(notify.HeaderEvent, d.Event.Event)
	req.Header.Set(notify.HeaderDelivery, d.Event.ID)
	req.Header.Set(notify.HeaderSignature, notify.Sign(secret, body))
	c := a.HTTPClient
	if c == nil {
		c = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, temporal.NewApplicationError("webhook unreachable: "+plain(err), notify.ErrTypeUnavailable)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch sc := resp.StatusCode; {
	case sc >= 200 && sc < 300:
		return sc, nil
	case sc == http.StatusRequestTimeout || sc == http.StatusTooEarly || sc == http.StatusTooManyRequests || sc >= 500:
		return sc, temporal.NewApplicationError(fmt.Sprintf("webhook answered %d", sc), notify.ErrTypeUnavailable)
	default:
		return sc, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("webhook answered %d: it refuses the event; fix the receiver or the URL", sc), notify.ErrTypeRefused, nil)
	}
}

func (a *Activities) secret(ctx context.Context, ref string) ([]byte, error) {
	if a.Vault == nil {
		return nil, temporal.NewApplicationError("no vault key configured on the worker (CUTOVER_VAULT_KEYS): "+
			"the webhook's secret cannot be read", notify.ErrTypeNoSecret)
	}
	s, err := a.Vault.Get(ctx, ref)
	if err != nil && !errors.Is(err, vault.ErrTokenExpired) {
		if errors.Is(err, vault.ErrUnknownRef) {
			return nil, temporal.NewNonRetryableApplicationError("webhook secret_ref "+ref+" is not in the vault",
				notify.ErrTypeNoSecret, nil)
		}
		return nil, temporal.NewApplicationError("webhook secret: "+err.Error(), notify.ErrTypeNoSecret)
	}
	if s.Password == "" {
		return nil, temporal.NewNonRetryableApplicationError("webhook secret_ref "+ref+" holds no password to sign with",
			notify.ErrTypeNoSecret, nil)
	}
	return []byte(s.Password), nil
}

// plain is an HTTP error without the URL (which may carry a token in its query).
func plain(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}
