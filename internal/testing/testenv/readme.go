package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// READMEBlocks returns the fenced code blocks of one language ("sh", "sql") in a section of
// the repository's README (heading as written, e.g. "### Temporal CLI recipes"; the section
// ends at the next "## " heading), in order. Tests run the README's own text, so the two
// cannot drift apart. A missing section or an unterminated block fails the test.
func READMEBlocks(t testing.TB, heading, lang string) []string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", heading)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "```"+lang+"\n")
		if !ok {
			return blocks
		}
		block, after, ok := strings.Cut(rest, "```")
		if !ok {
			t.Fatalf("README.md: unterminated %s block in %q", lang, heading)
		}
		blocks = append(blocks, block)
		section = after
	}
}
