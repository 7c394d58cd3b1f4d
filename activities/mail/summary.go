package mail

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cutover/cutover/workflows/email/emailapi"
)

// Summary renders a pass like imapsync's closing block, for logs and humans.
func Summary(s emailapi.PassStats) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("++++ Statistics (%s pass, run %d)", s.Mode, s.RunID)
	for _, f := range s.Folders {
		p("Folder %-30q -> %-30q src %6d msgs %10d bytes | dst %6d msgs %10d bytes | +%d =%d q%d -%d flags %d",
			f.Source, f.Dest, f.SourceMessages, f.SourceBytes, f.DestMessages, f.DestBytes, f.Transferred, f.Skipped,
			f.Quarantined, f.Deleted, f.FlagsUpdated)
	}
	p("Folders synced                : %d", len(s.Folders))
	p("Messages found                : %d", s.Found)
	p("Messages transferred          : %d", s.Transferred)
	p("Messages skipped              : %d", s.Skipped)
	p("Messages quarantined          : %d", s.Quarantined)
	p("Messages deleted on dest      : %d", s.Deleted)
	p("Flags updated                 : %d", s.FlagsUpdated)
	p("Messages pending              : %d", s.Pending)
	p("Total bytes transferred       : %d (%.3f MiB)", s.BytesTransferred, float64(s.BytesTransferred)/(1<<20))
	p("Transfer time                 : %.1f sec", s.Duration.Seconds())
	p("Message rate                  : %.1f messages/s", s.MsgsPerSec)
	p("Average bandwidth rate        : %.1f MiB/s", s.MBPerSec)
	classes := make([]string, 0, len(s.ErrorsByClass))
	for c := range s.ErrorsByClass {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	var errs []string
	for _, c := range classes {
		errs = append(errs, fmt.Sprintf("%s=%d", c, s.ErrorsByClass[c]))
	}
	p("Errors by class               : %s", strings.Join(errs, " "))
	return b.String()
}
