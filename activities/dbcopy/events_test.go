package dbcopy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestWebhookReceivesSeedEvent checks the migration_progress event's JSON shape (the migration
// event schema, Event) as a webhook receives it; an unreachable webhook does not fail the caller.
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
	a.emit(context.Background(), nil, dbmigrateapi.EventSink{Webhook: srv.URL}, ProgressEvent("mig-1", "profiles", 42.5, 1234, at))
	m := <-got
	data, _ := m["data"].(map[string]any)
	if m["event_type"] != "migration_progress" {
		t.Fatalf("m[\"event_type\"] = %v, want \"migration_progress\"; event = %v", m["event_type"], m)
	}
	if m["migration_id"] != "mig-1" {
		t.Fatalf("m[\"migration_id\"] = %v, want \"mig-1\"; event = %v", m["migration_id"], m)
	}
	if m["timestamp"] != "2025-01-02T03:04:05Z" {
		t.Fatalf("m[\"timestamp\"] = %v, want \"2025-01-02T03:04:05Z\"; event = %v", m["timestamp"], m)
	}
	if data["entity"] != "profiles" {
		t.Fatalf("data[\"entity\"] = %v, want \"profiles\"; event = %v", data["entity"], m)
	}
	if data["progress_percentage"] != 42.5 {
		t.Fatalf("data[\"progress_percentage\"] = %v, want 42.5; event = %v", data["progress_percentage"], m)
	}
	if data["throughput"] != 1234.0 {
		t.Fatalf("data[\"throughput\"] = %v, want 1234.0; event = %v", data["throughput"], m)
	}
	a.emit(context.Background(), nil, dbmigrateapi.EventSink{Webhook: "http://127.0.0.1:1/unreachable"}, ProgressEvent("mig-1", "x", 1, 1, at))
}
