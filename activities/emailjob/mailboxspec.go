package emailjob

import (
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// MailboxSpec builds the engine's view of one mailbox of a job: the mailbox's own settings over
// the job-wide endpoints (jobspec.Spec.Logins), the job's filters with its own (Selection).
func MailboxSpec(s jobspec.Spec, jobID, mailboxID int64, m jobspec.Mailbox) emailapi.MailboxSpec {
	src, dest := s.Logins(m)
	sel := s.Selection(m) // the job's filters with the mailbox's own
	return emailapi.MailboxSpec{
		JobID: jobID, MailboxID: mailboxID, Email: m.Email, SourceType: m.SourceType, SourcePath: m.SourcePath,
		Source: emailapi.Endpoint(src), Dest: emailapi.Endpoint(dest),
		FolderMap: m.FolderMap, Include: sel.Include, Exclude: sel.Exclude, Since: sel.Since, Before: sel.Before,
		MaxMessageSize: sel.MaxMessageSize,
		Renames:        sel.Renames,
		SkipSpecialUse: sel.SkipSpecialUse,
		PresyncMode:    m.PresyncMode,
		Namespaces:     m.Namespaces,
		Merge:          m.Merge,
	}
}
