package emailapi

// Error types of the email activities' application errors (temporal.ApplicationError.Type()).
// activities/mail and activities/emailjob raise them; the workflows classify failures by them.

// Permanent failures: the activity fails non-retryable.
const (
	ErrTypeAuthFailed             = "AuthFailed"             // bad credentials
	ErrTypeBadSpec                = "BadSpec"                // invalid spec: unknown source type, bad regex, missing endpoint
	ErrTypeMirrorAfterCutover     = "MirrorAfterCutover"     // mirror refused once users may write to the destination
	ErrTypeCredentialsUnavailable = "CredentialsUnavailable" // vault has no key / unknown ref / undecryptable
	// ErrTypeUnreachable: nothing answers at the endpoint's address (connection refused, no
	// such host) after a short retry budget.
	ErrTypeUnreachable = "Unreachable"
	// ErrTypePermission: the account may not do what the pass needs (create a folder).
	ErrTypePermission = "PermissionDenied"
)

// Retryable failures.
const (
	ErrTypeConnect   = "Connect"   // dial, TLS handshake, dropped connection, timeout, BYE
	ErrTypeThrottled = "Throttled" // the server asked us to slow down
	ErrTypeTLS       = "TLSFailed" // certificate or handshake: permanent until the endpoint is fixed
	ErrTypeInternal  = "Internal"  // our side (database, unexpected answer): retried
)

// Failures of the job's bookkeeping activities (activities/emailjob), all permanent.
const (
	ErrTypeJobNotFound     = "JobNotFound"     // the state write's job row does not exist
	ErrTypeMailboxNotFound = "MailboxNotFound" // the marked mailbox row does not exist
	// ErrTypeNoPurge: the worker cannot delete histories (no client given): the refusal of a
	// start with a secret in its input stands, the secret stays in that run's start event until
	// an operator deletes it.
	ErrTypeNoPurge = "PurgeUnavailable"
)
