package emailjob

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// ErrTypeAccountInUse refuses a job whose mailbox reads or writes an account another
// unfinished job uses: both would copy every message into it.
const ErrTypeAccountInUse = "AccountInUse"

// checkAccounts refuses a spec whose mailboxes share a source or destination account with a
// mailbox of another job that is neither closed nor failed, naming both entries (unless both
// merge on purpose).
func checkAccounts(ctx context.Context, st *store.Store, spec jobspec.Spec) error {
	type entry struct {
		email, side string
		merge       bool
	}
	byKey := map[string][]entry{}
	var keys []string
	for _, m := range spec.Mailboxes {
		a := spec.Accounts(m)
		for _, e := range []struct{ side, key string }{{"dest", a.Dest}, {"source", a.Source}} {
			if _, ok := byKey[e.key]; !ok {
				keys = append(keys, e.key)
			}
			byKey[e.key] = append(byKey[e.key], entry{m.Email, e.side, m.Merge})
		}
	}
	if len(keys) == 0 {
		return nil
	}
	// Held until the registration commits: a job registering at the same time checks after
	// this one's mailboxes are visible to it.
	if err := st.LockAccountChecks(ctx); err != nil {
		return err
	}
	uses, err := st.AccountsInUse(ctx, spec.JobID, keys)
	if err != nil {
		return err
	}
	var problems []string
	for _, u := range uses {
		for _, e := range byKey[u.Key] {
			if e.side != u.Side || (e.merge && u.Merge) {
				continue
			}
			what := map[string]string{"dest": "destination", "source": "source"}[u.Side]
			problems = append(problems, fmt.Sprintf("%s uses the same %s account %s as %s of job %d (phase %s)",
				e.email, what, u.Key, u.Email, u.JobID, u.Phase))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("job %d refused: %s: every message would be copied twice; "+
		"finish or abort the other job, give each mailbox its own account, or set merge: true on both entries",
		spec.JobID, strings.Join(problems, "; ")), ErrTypeAccountInUse, nil)
}

// leftOut skips the job's registered mailboxes that a restart's spec no longer lists.
func leftOut(ctx context.Context, st *store.Store, spec jobspec.Spec) ([]string, error) {
	emails := make([]string, len(spec.Mailboxes))
	for i, m := range spec.Mailboxes {
		emails[i] = m.Email
	}
	return st.SkipMailboxesNotIn(ctx, spec.JobID, emails, "spec", "left out of the job spec on restart", time.Now())
}
