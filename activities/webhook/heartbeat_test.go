package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/activities/vault/vaulttest"
	"github.com/cutover/cutover/activities/webhook"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/internal/testing/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDeliveryKeepsAHeartbeat: a delivery to a receiver that answers slowly (longer than three
// heartbeat timeouts) heartbeats while it waits, so a workflow can give it a heartbeat timeout
// of seconds: a worker killed inside it holds the migration's notifications that long, not
// the delivery's 30 s start-to-close timeout.
func TestDeliveryKeepsAHeartbeat(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	v, _ := vaulttest.New(t, db.Store)
	ref, err := v.Put(ctx, vault.Secret{Password: "webhook-secret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(slow.Close)
	a := &webhook.Activities{DB: db, Vault: v}
	d := notify.Delivery{Target: "email-job-1", Webhook: notify.Webhook{URL: slow.URL, SecretRef: ref},
		Event: notify.Event{Seq: 1, ID: "email-job-1/1", Event: "phase_changed"}}
	if err := testenv.RunWithHeartbeatTimeout(t, a, a.DeliverNotification, 400*time.Millisecond, d); err != nil {
		t.Fatalf("a live delivery slower than its heartbeat timeout: %v", err)
	}
}
