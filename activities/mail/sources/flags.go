package sources

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Maildir "info 2" letters of the IMAP system flags (maildir(5), Dovecot).
var maildirLetters = map[byte]string{'D': `\Draft`, 'F': `\Flagged`, 'R': `\Answered`, 'S': `\Seen`, 'T': `\Deleted`}

// SplitMaildirName splits a Maildir file name into its unique base and its flags, reading
// lower-case letters as keywords through keywords (Dovecot's dovecot-keywords: index → name).
// Names without an info suffix (messages in new/) have no flags.
func SplitMaildirName(name string, keywords map[int]string) (base string, flags []string) {
	i := strings.Index(name, ":2,")
	sep := 3
	if i < 0 {
		// Maildir on file systems that forbid ':' (and some exports) use '!' or ';'.
		for _, alt := range []string{"!2,", ";2,"} {
			if i = strings.Index(name, alt); i >= 0 {
				break
			}
		}
	}
	if i < 0 {
		return name, nil
	}
	base = name[:i]
	for _, c := range []byte(name[i+sep:]) {
		if f, ok := maildirLetters[c]; ok {
			flags = append(flags, f)
		} else if c >= 'a' && c <= 'z' {
			if kw, ok := keywords[int(c-'a')]; ok {
				flags = append(flags, kw)
			}
		}
	}
	return base, flags
}

// ReadDovecotKeywords reads a folder's dovecot-keywords file ("<index> <name>" lines); a
// missing file means no keywords.
func ReadDovecotKeywords(dir string) (map[int]string, error) {
	f, err := os.Open(filepath.Join(dir, "dovecot-keywords"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[int]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		idx, name, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(idx)
		if err != nil || n < 0 || n > 25 {
			continue
		}
		out[n] = strings.TrimSpace(name)
	}
	return out, sc.Err()
}
