package sourcetest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// statusHeaders adds the Status/X-Status/X-Keywords headers mbox writers (mutt, Dovecot) use
// for flags.
func statusHeaders(m Message) []byte {
	var status, xstatus string
	var kws []string
	for _, f := range m.Flags {
		switch f {
		case `\Seen`:
			status = "RO"
		case `\Answered`:
			xstatus += "A"
		case `\Flagged`:
			xstatus += "F"
		case `\Draft`:
			xstatus += "T"
		case `\Deleted`:
			xstatus += "D"
		default:
			kws = append(kws, f)
		}
	}
	nl := "\n"
	if bytes.Contains(m.Raw[:bytes.IndexByte(m.Raw, '\n')+1], []byte("\r\n")) {
		nl = "\r\n"
	}
	var h string
	if status != "" {
		h += "Status: " + status + nl
	}
	if xstatus != "" {
		h += "X-Status: " + xstatus + nl
	}
	if len(kws) > 0 {
		h += "X-Keywords: " + strings.Join(kws, " ") + nl
	}
	return append([]byte(h), m.Raw...)
}

// WithFlagHeaders is the message as an mbox or eml writer stores it: flags as headers.
func WithFlagHeaders(m Message) []byte { return statusHeaders(m) }

var quoteRD = regexp.MustCompile(`(?m)^(>*From )`)

// MboxFormat is an mbox variant to write.
type MboxFormat string

const (
	MboxRD  MboxFormat = "mboxrd"
	MboxO   MboxFormat = "mboxo"
	MboxCL2 MboxFormat = "mboxcl2"
)

// WriteMbox writes msgs (one folder) as an mbox file of the given variant. mboxo cannot hold
// a body line ">From " faithfully; tests of it use messages without one.
func WriteMbox(path string, msgs []Message, format MboxFormat) error {
	var b bytes.Buffer
	for _, m := range msgs {
		raw := statusHeaders(m)
		fmt.Fprintf(&b, "From sender@example.com %s\n", m.Date.UTC().Format("Mon Jan _2 15:04:05 2006"))
		switch format {
		case MboxRD:
			raw = quoteRD.ReplaceAll(raw, []byte(">$1"))
		case MboxO:
			raw = regexp.MustCompile(`(?m)^From `).ReplaceAll(raw, []byte(">From "))
		case MboxCL2:
			raw = addContentLength(raw)
		}
		b.Write(raw)
		if !bytes.HasSuffix(raw, []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// addContentLength inserts mboxcl2's Content-Length field before the blank line ending the
// header ("\n" then "\n" or "\r\n", whatever the header's line endings).
func addContentLength(raw []byte) []byte {
	k := 0
	for ; k < len(raw)-1; k++ {
		if raw[k] == '\n' && (raw[k+1] == '\n' || bytes.HasPrefix(raw[k+1:], []byte("\r\n"))) {
			break
		}
	}
	blank := 1
	if raw[k+1] == '\r' {
		blank = 2
	}
	nl := "\n"
	if k > 0 && raw[k-1] == '\r' {
		nl = "\r\n"
	}
	body := raw[k+1+blank:]
	return slices.Concat(raw[:k+1], []byte("Content-Length: "+strconv.Itoa(len(body))+nl), raw[k+1:k+1+blank], body)
}

// WithContentLength is the message as an mboxcl2 writer stores it.
func WithContentLength(m Message) []byte { return addContentLength(statusHeaders(m)) }

// WriteMboxTree writes one mbox file per folder under dir (Thunderbird layout: "Parent.sbd/").
func WriteMboxTree(dir string, msgs []Message, format MboxFormat) error {
	for folder, ms := range ByFolder(msgs) {
		parts := strings.Split(folder, "/")
		for i := range len(parts) - 1 {
			parts[i] += ".sbd"
		}
		if folder == "INBOX" {
			parts = []string{"Inbox"}
		}
		if err := WriteMbox(filepath.Join(dir, filepath.Join(parts...)), ms, format); err != nil {
			return err
		}
	}
	return nil
}
