package cli

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// The destructive presync mode is named as such wherever the CLI shows it: `email start`
// prints a warning naming who it applies to (the whole job, or the mailboxes that chose it),
// and a pass's mode reads "strict_mirror (destructive)" in `email status`.
func TestStrictMirrorIsNamedDestructive(t *testing.T) {
	spec := jobspec.Spec{Mailboxes: []jobspec.Mailbox{{Email: "alice@example.com"},
		{Email: "bob@example.com", PresyncMode: model.ModeStrictMirror}}}
	spec.Schedule.PresyncMode = model.ModeMirror
	w := strictWarning(spec)
	if !strings.HasPrefix(w, "DESTRUCTIVE: presync_mode strict_mirror (bob@example.com)") {
		t.Errorf("per-mailbox strict_mirror: warning %q", w)
	}
	if !strings.Contains(w, "the user's own mail included") {
		t.Errorf("the warning does not say what is deleted: %q", w)
	}
	spec.Schedule.PresyncMode = model.ModeStrictMirror
	if w := strictWarning(spec); !strings.HasPrefix(w, "DESTRUCTIVE: presync_mode strict_mirror (every mailbox, bob@example.com)") {
		t.Errorf("job-wide strict_mirror: warning %q", w)
	}
	spec.Schedule.PresyncMode = model.ModeMirror
	spec.Mailboxes[1].PresyncMode = ""
	if w := strictWarning(spec); w != "" {
		t.Errorf("default mirror: warning %q, want none", w)
	}
	if got := modeName(string(model.ModeStrictMirror)); got != "strict_mirror (destructive)" {
		t.Errorf("modeName(strict_mirror) = %q", got)
	}
	if got := modeName(string(model.ModeMirror)); got != "mirror" {
		t.Errorf("modeName(mirror) = %q", got)
	}
}
