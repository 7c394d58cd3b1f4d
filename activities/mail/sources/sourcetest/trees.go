package sourcetest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cutover/cutover/internal/utf7"
)

// WriteEMLTree writes one .eml file per message under dir/<folder>/ ("INBOX" at the root's
// "INBOX" directory), flags as headers, file mtimes at the message dates.
func WriteEMLTree(dir string, msgs []Message) error {
	n := map[string]int{}
	for _, m := range msgs {
		n[m.Folder]++
		p := filepath.Join(dir, filepath.FromSlash(m.Folder), fmt.Sprintf("%03d.eml", n[m.Folder]))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, statusHeaders(m), 0o600); err != nil {
			return err
		}
		if err := os.Chtimes(p, m.Date, m.Date); err != nil {
			return err
		}
	}
	return nil
}

// WriteMaildir writes msgs as a Dovecot Maildir++ under dir: folders ".A.B" in modified UTF-7,
// flags in the info suffix, the keyword as letter 'a' through dovecot-keywords, mtimes at the
// message dates.
func WriteMaildir(dir string, msgs []Message) error {
	letters := map[string]string{`\Draft`: "D", `\Flagged`: "F", `\Answered`: "R", `\Seen`: "S", `\Deleted`: "T", Keyword: "a"}
	for i, m := range msgs {
		fdir := dir
		if m.Folder != "INBOX" {
			parts := strings.Split(m.Folder, "/")
			for j, p := range parts {
				parts[j] = utf7.Encode(p)
			}
			fdir = filepath.Join(dir, "."+strings.Join(parts, "."))
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(fdir, sub), 0o700); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(fdir, "dovecot-keywords"), []byte("0 "+Keyword+"\n"), 0o600); err != nil {
			return err
		}
		var info []string
		for _, f := range m.Flags {
			info = append(info, letters[f])
		}
		// Maildir wants the letters in ASCII order: upper-case flags, then keywords.
		slices.Sort(info)
		name := fmt.Sprintf("%d.M%dP1.corpus,S=%d:2,%s", 1_600_000_000+i, i, len(m.Raw), strings.Join(info, ""))
		p := filepath.Join(fdir, "cur", name)
		if err := os.WriteFile(p, m.Raw, 0o600); err != nil {
			return err
		}
		if err := os.Chtimes(p, m.Date, m.Date); err != nil {
			return err
		}
	}
	return nil
}
