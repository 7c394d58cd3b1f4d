package client

import (
	"context"

	"github.com/cutover/cutover/workflows/email/emailapi"
)

// ApproveAccepting approves the gate and accepts reviewed warnings at once: accept lists
// "CHECK" or "CHECK:MAILBOX" (e.g. "sent_complete:bob@example.com"), reason says why. Refused
// (a *RefusedError) when a named check fails or does not warn: a failure is never accepted.
func (c *Client) ApproveAccepting(ctx context.Context, jobID int64, by, note string, accept []string,
	reason string) (emailapi.Ack, error) {
	return c.EmailCommand(ctx, jobID, emailapi.Approve, emailapi.Request{By: by, Note: note, Accept: accept, Reason: reason})
}

// SkipMailbox takes a mailbox out of a job: no pass runs for it and it leaves the gate.
func (c *Client) SkipMailbox(ctx context.Context, jobID int64, by, mailbox, reason string) (emailapi.Ack, error) {
	return c.EmailCommand(ctx, jobID, emailapi.Skip, emailapi.Request{By: by, Mailbox: mailbox, Reason: reason})
}

// UnskipMailbox brings a skipped mailbox back; the gate waits for its next pass.
func (c *Client) UnskipMailbox(ctx context.Context, jobID int64, by, mailbox string) (emailapi.Ack, error) {
	return c.EmailCommand(ctx, jobID, emailapi.Unskip, emailapi.Request{By: by, Mailbox: mailbox})
}

// SetMailboxCredentials gives one side ("source" or "dest") of a mailbox a new vault
// reference (from `cutover vault put`); the next pass, or a retry, uses it.
func (c *Client) SetMailboxCredentials(ctx context.Context, jobID int64, by, mailbox, side, ref string) (emailapi.Ack, error) {
	return c.EmailCommand(ctx, jobID, emailapi.SetCredentials, emailapi.Request{By: by, Mailbox: mailbox, Side: side, CredentialsRef: ref})
}
