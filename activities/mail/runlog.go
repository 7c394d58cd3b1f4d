package mail

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// runLog is one run's log as a person reads it, like imapsync's log per mailbox: what ran,
// the folders with their counts, the errors, the timings. It is written to a file under
// Activities.LogDir when the run ends, and its path recorded in migration_runs.log_path.
type runLog struct {
	spec  emailapi.MailboxSpec
	kind  string
	start time.Time
	b     strings.Builder
}

func newRunLog(spec emailapi.MailboxSpec, kind string) *runLog {
	return &runLog{spec: spec, kind: kind, start: time.Now()}
}

func (l *runLog) printf(format string, a ...any) {
	if l != nil {
		fmt.Fprintf(&l.b, format+"\n", a...)
	}
}

// failed logs a run's error.
func (l *runLog) failed(err error) {
	l.printf("ERROR (%s): %v", errorClass(err), err)
}

// pass logs a sync pass's closing block and its folder errors.
func (l *runLog) pass(s emailapi.PassStats) {
	l.b.WriteString(Summary(s))
	if len(s.DroppedKeywords) > 0 {
		l.printf("Keywords the destination refused: %s (%d messages)", strings.Join(s.DroppedKeywords, " "), s.KeywordsDropped)
	}
}

// preflight logs what a preflight found.
func (l *runLog) preflight(rep emailapi.PreflightReport) {
	for _, f := range rep.Folders {
		l.printf("Folder %-30q -> %-30q src %6d msgs %10d bytes | dst %6d msgs", f.Source, f.Dest, f.SourceMessages,
			f.SourceBytes, f.DestMessages)
	}
	for _, f := range rep.NotPersonal {
		l.printf("Left out (%s namespace)     : %q, %d messages", f.Namespace, f.Name, f.Messages)
	}
	l.printf("Destination quota             : %d of %d bytes used (0 = unknown)", rep.DestQuotaUsed, rep.DestQuotaLimit)
	l.printf("Destination APPENDLIMIT       : %d bytes (0 = none advertised)", rep.AppendLimit)
	for _, w := range rep.Warnings {
		l.printf("Warning                       : %s", w)
	}
}

// verify logs a verification's differences.
func (l *runLog) verify(rep emailapi.VerifyReport) {
	for _, f := range rep.Folders {
		l.printf("Folder %-30q -> %-30q src %6d | dst %6d | missing %d extra %d quarantined %d flags %d dates %d",
			f.Source, f.Dest, f.SourceMessages, f.DestMessages, f.Missing, f.Extra, f.Quarantined, f.FlagDiffs, f.DateDiffs)
		for _, s := range f.Samples {
			l.printf("    %s", s)
		}
	}
	l.printf("Verified                      : ok=%v missing=%d extra=%d quarantined=%d flag diffs=%d date diffs=%d",
		rep.OK, rep.Missing, rep.Extra, rep.Quarantined, rep.FlagDiffs, rep.DateDiffs)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9@._+-]`)

// write puts the log in dir/job-<job>/<mailbox>/run-<id>-<kind>.log and returns its path; ""
// when dir is "" or the file cannot be written (the run is recorded all the same).
func (l *runLog) write(dir string, runID int64, status model.RunStatus) (string, error) {
	if l == nil || dir == "" || runID == 0 {
		return "", nil
	}
	end := time.Now()
	var head strings.Builder
	fmt.Fprintf(&head, "cutover %s run %d of %s (job %d, mailbox %d)\n", l.kind, runID, l.spec.Email, l.spec.JobID,
		l.spec.MailboxID)
	fmt.Fprintf(&head, "source %s %s as %s -> destination %s as %s\n", l.spec.SourceType, orPath(l.spec), l.spec.Source.User,
		l.spec.Dest.Addr, l.spec.Dest.User)
	fmt.Fprintf(&head, "started %s, finished %s (%s), status %s\n\n", l.start.UTC().Format(time.RFC3339),
		end.UTC().Format(time.RFC3339), end.Sub(l.start).Round(time.Millisecond), status)
	folder := filepath.Join(dir, fmt.Sprintf("job-%d", l.spec.JobID), unsafeName.ReplaceAllString(l.spec.Email, "_"))
	if err := os.MkdirAll(folder, 0o750); err != nil {
		return "", err
	}
	path := filepath.Join(folder, fmt.Sprintf("run-%d-%s.log", runID, l.kind))
	if err := os.WriteFile(path, []byte(head.String()+l.b.String()), 0o640); err != nil {
		return "", err
	}
	return path, nil
}

func orPath(spec emailapi.MailboxSpec) string {
	if spec.SourcePath != "" {
		return spec.SourcePath
	}
	return spec.Source.Addr
}
