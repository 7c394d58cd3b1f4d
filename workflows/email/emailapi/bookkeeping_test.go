package emailapi

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/gate"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// TestBookkeepingPayloadsKeepTheirJSON: the bookkeeping payloads encode as they did before they
// were tagged (the JSON below was written by the untagged types, Go field names as JSON names),
// and that JSON decodes back into the same values, so recorded histories replay.
func TestBookkeepingPayloadsKeepTheirJSON(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name string
		v    any
		json string
	}{
		{
			name: "registration",
			v:    Registration{JobID: 7},
			json: `{"JobID":7,"Mailboxes":0,"Created":false,"Existing":null}`,
		},
		{
			name: "registration, removed and skipped",
			v: Registration{
				JobID:     7,
				Mailboxes: 3,
				Removed:   []string{"a@x"},
				Skipped:   []MailboxSkip{{Email: "b@x"}},
			},
			json: `{"JobID":7,"Mailboxes":3,"Created":false,"Existing":null,"Removed":["a@x"],` +
				`"Skipped":[{"MailboxID":0,"Email":"b@x","By":"","At":"0001-01-01T00:00:00Z","Reason":""}]}`,
		},
		{
			name: "load request",
			v:    LoadRequest{Spec: jobspec.Spec{JobID: 7, Domain: "x"}, AfterID: 9, Limit: 100},
			json: `{"Spec":{"job_id":7,"tenant_id":0,"domain":"x","source":{},"destination":{}},"AfterID":9,"Limit":100}`,
		},
		{
			name: "job record",
			v: JobRecord{
				State:     JobState{ID: 7, Phase: model.PhaseDeltaSync},
				Checks:    []gate.Check{{ID: "c", Status: "pass"}},
				Notes:     []string{"n"},
				Mailboxes: []MailboxOp{{Op: OpSkip, Email: "a@x", By: "ops", At: at, Reason: "r"}},
			},
			json: `{"State":{"ID":7,"Phase":"delta_sync","Gate":"","FailedPhase":"","LastError":"","ApprovedBy":"",` +
				`"ApprovedAt":null,"DNSCutoverAt":null,"CutoverPlannedAt":null,"SyncPercent":0,` +
				`"PredictedFinalSyncSeconds":null},"Checks":[{"check_id":"c","status":"pass","message":""}],` +
				`"Notes":["n"],"Mailboxes":[{"op":"skip","email":"a@x","by":"ops","at":"2026-03-04T05:06:07Z","reason":"r"}]}`,
		},
		{
			name: "mailbox mark",
			v:    MailboxMark{MailboxID: 3, Status: model.MailboxStatus("failed"), LastError: "e"},
			json: `{"MailboxID":3,"Status":"failed","LastError":"e"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.json {
				t.Errorf("encoding:\n got %s\nwant %s", got, tt.json)
			}
			back := reflect.New(reflect.TypeOf(tt.v))
			if err := json.Unmarshal([]byte(tt.json), back.Interface()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.v, back.Elem().Interface(), cmpopts.IgnoreUnexported(jobspec.Spec{}, gate.Check{})); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}
