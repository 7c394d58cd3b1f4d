package dbcopy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestWebhookReceivesSeedEvent checks the migration_progress event's JSON shape (seed 001's
// event schema) as a webhook receives it; an unreachable webhook does not fail the caller.
func TestWebhookReceivesSeedEvent(t *testing.T) {
	got := make(chan map[string]any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- m
	}))
	defer srv.Close()
	a := &Activities{}
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a.emit(context.Background(), nil, EventSink{Webhook: srv.URL}, ProgressEvent("mig-1", "profiles", 42.5, 1234, at))
	m := <-got
	data, _ := m["data"].(map[string]any)
	if m["event_type"] != "migration_progress" || m["migration_id"] != "mig-1" || m["timestamp"] != "2025-01-02T03:04:05Z" ||
		data["entity"] != "profiles" || data["progress_percentage"] != 42.5 || data["throughput"] != 1234.0 {
		t.Fatalf("event = %v", m)
	}
	a.emit(context.Background(), nil, EventSink{Webhook: "http://127.0.0.1:1/unreachable"}, ProgressEvent("mig-1", "x", 1, 1, at))
}
