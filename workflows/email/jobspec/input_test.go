package jobspec

import (
	"encoding/json"
	"strings"
	"testing"
)

// A secret pasted where a vault reference belongs is no input problem (Validate refuses it
// with the CLI's words), but the input handed to the purge never holds it.
func TestPastedSecretInAReferenceIsRedacted(t *testing.T) {
	const ref = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	for _, tc := range []struct {
		name   string
		input  string
		pasted bool
	}{
		{"mailbox dest ref holds a PIN", `{"job_id":1,"mailboxes":[{"email":"a@example.com","dest_credentials_ref":"987654321"}]}`, true},
		{"source ref holds a password", `{"job_id":1,"source":{"credentials_ref":"hunter2-secret"}}`, true},
		{"webhook secret_ref holds a password", `{"job_id":1,"webhooks":[{"url":"https://h.example/x","secret_ref":"hunter2-secret"}]}`, true},
		{"a real reference", `{"job_id":1,"source":{"credentials_ref":"` + ref + `"}}`, false},
		{"already redacted", `{"job_id":1,"source":{"credentials_ref":"` + Redacted + `"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Spec
			if err := json.Unmarshal([]byte(tc.input), &s); err != nil {
				t.Fatal(err)
			}
			if err := s.InputError(); err != nil {
				t.Errorf("InputError: %v, want nil (Validate refuses it)", err)
			}
			redacted, pasted := s.RedactedInput()
			if pasted != tc.pasted {
				t.Fatalf("RedactedInput says pasted %v, want %v", pasted, tc.pasted)
			}
			if !tc.pasted {
				return
			}
			if strings.Contains(string(redacted), "hunter2") {
				t.Errorf("the redacted input holds the password: %s", redacted)
			}
			if strings.Contains(string(redacted), "987654321") {
				t.Errorf("the redacted input holds the number: %s", redacted)
			}
			if !strings.Contains(string(redacted), Redacted) {
				t.Errorf("the redacted input lacks %q: %s", Redacted, redacted)
			}
		})
	}
}
