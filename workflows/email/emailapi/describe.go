package emailapi

// Descriptions of the job's signals, updates and query, shown by the Temporal UI's dialogs
// (the SDK's handler options) so an operator there knows what to send. Each command is both a
// signal and an update of the same name taking the same JSON.
var Descriptions = map[string]string{
	Approve: `The ops lead approves the go/no-go gate (refused while checks fail). ` +
		`{"by":"lead","note":"…"}; accept reviewed warnings with "accept":["sent_complete:bob@example.com"],"reason":"…"`,
	DNSCutoverConfirmed: `DNS/MX now point at the destination (only at gate ready_for_dns): {"by":"ops"}, ` +
		`optionally "at":"2026-06-01T22:00:00Z" when the switch happened`,
	Retry:          `Resume a failed job from the phase it failed in: {"by":"ops"}`,
	Abort:          `Stop the job (left failed; start it again to resume): {"by":"ops","note":"why"}`,
	SetCutoverTime: `Set the migration hour, {"by":"ops","at":"2026-06-01T22:00:00Z"}, or clear it with {"by":"ops"}`,
	Close:          `Close a verified job before its soak ends: {"by":"ops","note":"…"}`,
	PresyncNow:     `Run a presync now instead of waiting for the schedule: {"by":"ops"}`,
	Skip:           `Take one mailbox out of the job: {"by":"ops","mailbox":"bob@example.com","reason":"why"}`,
	Unskip:         `Bring a skipped mailbox back: {"by":"ops","mailbox":"bob@example.com"}`,
	SetCredentials: `Give one side of a mailbox a new vault reference (from cutover vault put): ` +
		`{"by":"ops","mailbox":"bob@example.com","side":"source|dest","credentials_ref":"<uuid>"}`,
	QueryStatus: `The job's status: the ticket desk's payload (migration_job_id, migration_phase, migration_gate, ` +
		`migration_sync_percent), what it waits for, the next action, checks, mailboxes, DNS and notifications`,
	MailboxAttemptFailed: `Sent by the worker when an attempt of a mailbox activity fails (shown while Temporal retries)`,
	MailboxReportsSignal: `Sent by the worker every few seconds while mailbox activities run: ` +
		`{"progress":[{email, run_type, copied, done}],"attempts":[failed attempts]}; the job's live progress`,
}
