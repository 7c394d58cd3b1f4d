package mail

import (
	"context"

	"go.temporal.io/sdk/temporal"
)

// Temporary bodies until the engine lands; callers see a stable non-retryable error type.
func notImplemented(what string) error {
	return temporal.NewNonRetryableApplicationError(what+": not implemented yet", "NotImplemented", nil)
}

func (a *Activities) preflightMailbox(ctx context.Context, spec MailboxSpec) (PreflightReport, error) {
	return PreflightReport{}, notImplemented("PreflightMailbox")
}

func (a *Activities) syncMailbox(ctx context.Context, req PassRequest) (PassStats, error) {
	return PassStats{}, notImplemented("SyncMailbox")
}

func (a *Activities) verifyMailbox(ctx context.Context, spec MailboxSpec) (VerifyReport, error) {
	return VerifyReport{}, notImplemented("VerifyMailbox")
}
