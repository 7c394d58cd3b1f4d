package imapx

import "testing"

// TestClassifyTooMany: "too many" is throttling only when it is about the client's own load;
// Cyrus's "Too many user flags in mailbox" is a refusal of the keywords, for the default class.
func TestClassifyTooMany(t *testing.T) {
	cases := []struct {
		code, text string
		want       Class
	}{
		{"", "Too many user flags in mailbox", ClassAppendRejected},
		{"", "Too many keywords", ClassAppendRejected},
		{"", "Too many simultaneous connections", ClassThrottled},
		{"", "too many concurrent sessions for user", ClassThrottled},
		{"", "Too many requests, slow down", ClassThrottled},
		{"LIMIT", "too many connections", ClassThrottled},
		{"", "Rate limit exceeded", ClassThrottled},
		{"", "Mailbox is over quota", ClassQuota},
	}
	for _, c := range cases {
		if got := classifyResponse(c.code, c.text, ClassAppendRejected); got != c.want {
			t.Errorf("classify %q %q = %s, want %s", c.code, c.text, got, c.want)
		}
	}
}
