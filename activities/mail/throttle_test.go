package mail

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func TestThrottleHint(t *testing.T) {
	for _, tc := range []struct {
		text   string
		want   time.Duration
		ok     bool
		inPass bool
	}{
		{"NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 92221 milliseconds", 92221 * time.Millisecond, true, false},
		{"BAD Request is throttled. Suggested Backoff Time: 2000 milliseconds.", 2 * time.Second, true, true},
		{"429 Too Many Requests; Retry-After: 120", 2 * time.Minute, true, false},
		{"Suggested Backoff Time: 10 milliseconds", time.Second, true, true}, // floor
		{"Suggested Backoff Time: 99999999 milliseconds", time.Hour, true, false},
		{"NO [LIMIT] too many connections", 0, false, true},
	} {
		err := &imapx.Error{Class: imapx.ClassThrottled, Op: "login", Text: tc.text}
		d, ok := throttleHint(err)
		if d != tc.want {
			t.Errorf("d: want tc.want; %q: hint %v %v in-pass %v; want %v %v %v",
				tc.text, d, ok, retryInPass(err), tc.want, tc.ok, tc.inPass)
		} else if ok != tc.ok {
			t.Errorf("ok: want tc.ok; %q: hint %v %v in-pass %v; want %v %v %v",
				tc.text, d, ok, retryInPass(err), tc.want, tc.ok, tc.inPass)
		} else if retryInPass(err) != tc.inPass {
			t.Errorf("want retryInPass(err) == tc.inPass; %q: hint %v %v in-pass %v; want %v %v %v",
				tc.text, d, ok, retryInPass(err), tc.want, tc.ok, tc.inPass)
		}
	}
}

// throttlingServer answers every login like Exchange Online under throttling.
func throttlingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				w := bufio.NewWriter(c)
				w.WriteString("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] The Microsoft Exchange IMAP4 service is ready.\r\n")
				w.Flush()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
					switch verb, _, _ := strings.Cut(strings.ToUpper(cmd), " "); verb {
					case "CAPABILITY":
						w.WriteString("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK CAPABILITY completed.\r\n")
					case "LOGOUT":
						w.WriteString("* BYE\r\n" + tag + " OK LOGOUT completed.\r\n")
						w.Flush()
						return
					default:
						w.WriteString(tag + " NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 92221 milliseconds\r\n")
					}
					w.Flush()
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestThrottledPassEndsWithServerBackoff: a throttling answer with a long hint ends the
// activity at once with a retryable error whose NextRetryDelay is the server's hint, so the
// wait is a durable timer, not a sleeping activity.
func TestThrottledPassEndsWithServerBackoff(t *testing.T) {
	e := newFileEnv(t, 1)
	ctx := context.Background()
	ref, err := e.vault.Put(ctx, vault.Secret{Password: "pw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := e.mailbox(model.SourceIMAP, "")
	spec.Source = emailapi.Endpoint{Addr: throttlingServer(t), Security: "plain", User: "alice@contoso.com", CredentialsRef: ref}
	start := time.Now()
	_, err = e.acts.SyncMailbox(ctx, emailapi.PassRequest{Spec: spec, Mode: model.ModeCopy, RunType: model.RunInitial})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("errors.As(err, &ae) is false; err = %v, want a retryable Throttled error with NextRetryDelay 92.221s",
			err)
	}
	if ae.Type() != emailapi.ErrTypeThrottled {
		t.Fatalf("want ae.Type() == emailapi.ErrTypeThrottled; err = %v, want a retryable Throttled error with NextRetryDelay 92.221s",
			err)
	}
	if ae.NonRetryable() {
		t.Fatalf("ae.NonRetryable() is true; err = %v, want a retryable Throttled error with NextRetryDelay 92.221s",
			err)
	}
	if ae.NextRetryDelay() != 92221*time.Millisecond {
		t.Fatalf("want ae.NextRetryDelay() == 92221*time.Millisecond; err = %v, want a retryable Throttled error with NextRetryDelay 92.221s",
			err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the activity waited %v before giving the wait back to Temporal", d)
	}
}
