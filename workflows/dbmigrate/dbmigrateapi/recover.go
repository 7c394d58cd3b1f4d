package dbmigrateapi

import (
	"fmt"

	"github.com/cutover/cutover/internal/model"
)

// RecoveryRefusal says why an ended migration in state st cannot be taken up by action ("" when
// it can). The client asks it before starting a recovery run; the run asks it again.
func RecoveryRefusal(st *State, action RecoveryAction) string {
	if len(st.Entities) == 0 && action != RecoverRetry {
		return fmt.Sprintf("%s refused: the migration failed before it loaded anything (%s); fix the cause and "+
			"resume it with cutover db retry", action, st.Error)
	}
	switch action {
	case RecoverRollback:
		if !st.Status.CanTransition(model.OrchRollingBack) {
			return fmt.Sprintf("rollback refused: the migration is %s", st.Status)
		}
		return ""
	case RecoverRetry, RecoverAccept:
		if st.Status != model.OrchFailed {
			return fmt.Sprintf("%s refused: the migration is %s (only a failed one is resumed)", action, st.Status)
		}
	case RecoverRetryFailed:
		if st.Status != model.OrchFailed && st.Status != model.OrchCompleted {
			return fmt.Sprintf("retry_failed refused: the migration is %s", st.Status)
		}
	default:
		return fmt.Sprintf("unknown recovery action %q", action)
	}
	if st.Capture != nil && st.Capture.Removed && st.Status == model.OrchFailed {
		return fmt.Sprintf("%s refused: the change capture of this migration was removed when it failed, so changes "+
			"made since are not known; roll it back (cutover db rollback) and start it again", action)
	}
	return ""
}
