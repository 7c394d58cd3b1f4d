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

// DovecotUIDList is a folder's dovecot-uidlist: Dovecot's UIDVALIDITY and the UID of each
// message by its Maildir base name.
type DovecotUIDList struct {
	UIDValidity uint32
	NextUID     uint32
	UIDs        map[string]uint32
}

// ReadDovecotUIDList reads dir's dovecot-uidlist (versions 1 and 3); nil when there is none.
func ReadDovecotUIDList(dir string) (*DovecotUIDList, error) {
	f, err := os.Open(filepath.Join(dir, "dovecot-uidlist"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, sc.Err()
	}
	l := &DovecotUIDList{UIDs: map[string]uint32{}}
	hdr := strings.Fields(sc.Text())
	version := ""
	for i, fld := range hdr {
		switch {
		case i == 0:
			version = fld
		case version == "1" && i == 1:
			n, _ := strconv.ParseUint(fld, 10, 32)
			l.UIDValidity = uint32(n)
		case version == "1" && i == 2:
			n, _ := strconv.ParseUint(fld, 10, 32)
			l.NextUID = uint32(n)
		case strings.HasPrefix(fld, "V"):
			n, _ := strconv.ParseUint(fld[1:], 10, 32)
			l.UIDValidity = uint32(n)
		case strings.HasPrefix(fld, "N"):
			n, _ := strconv.ParseUint(fld[1:], 10, 32)
			l.NextUID = uint32(n)
		}
	}
	for sc.Scan() {
		line := sc.Text()
		uidStr, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		uid, err := strconv.ParseUint(uidStr, 10, 32)
		if err != nil || uid == 0 {
			continue
		}
		name := ""
		if i := strings.Index(rest, ":"); i >= 0 && version != "1" {
			name = rest[i+1:]
		} else if fs := strings.Fields(rest); len(fs) > 0 {
			name = fs[len(fs)-1]
		}
		base, _ := SplitMaildirName(name, nil)
		if base != "" {
			l.UIDs[base] = uint32(uid)
		}
	}
	return l, sc.Err()
}
