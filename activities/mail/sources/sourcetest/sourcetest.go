// Package sourcetest generates real source files for tests — mbox files of every variant, eml
// trees, Maildirs, tarballs, zips and Zimbra exports — from one corpus full of the cases that
// break importers: From_ lines in bodies, CRLF/LF mixes, non-ASCII folder names, broken MIME,
// 8-bit headers, messages without Message-ID, exact duplicates, every flag and a keyword.
package sourcetest

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/mail/sources"
)

// Message is one corpus message.
type Message struct {
	Folder string    // UTF-8, "/" between levels; "INBOX" is the inbox
	Flags  []string  // IMAP flags as the source must yield them
	Date   time.Time // INTERNALDATE (second precision)
	Raw    []byte
}

// Keyword is the corpus's IMAP keyword.
const Keyword = "$Label1"

func text(id, subject string, date time.Time, body string, crlf bool) []byte {
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	var b strings.Builder
	b.WriteString("From: Sender <sender@example.com>" + nl + "To: user@example.org" + nl)
	b.WriteString("Subject: " + subject + nl + "Date: " + date.Format(time.RFC1123Z) + nl)
	if id != "" {
		b.WriteString("Message-ID: <" + id + ">" + nl)
	}
	b.WriteString("MIME-Version: 1.0" + nl + "Content-Type: text/plain; charset=utf-8" + nl + nl)
	b.WriteString(strings.ReplaceAll(body, "\n", nl))
	return []byte(b.String())
}

// Corpus returns the nasty corpus: 24 messages in 6 folders (three with non-ASCII names, one
// nested), dates from 1999 to 2024.
func Corpus() []Message {
	var msgs []Message
	flagSets := [][]string{nil, {`\Seen`}, {`\Answered`, `\Seen`}, {`\Flagged`}, {`\Draft`}, {Keyword, `\Seen`}}
	folderNames := []string{"INBOX", "Sent", "Entwürfe", "Ñoño/Año", "Projects", "日本語"}
	for i := range 18 {
		d := time.Date(1999+i, time.Month(1+i%12), 1+i, i%24, 7, 9, 0, time.UTC)
		body := fmt.Sprintf("Message %d.\n\nFrom here on the body has a From_ line.\nFrom someone@example.com Tue Jan  2 03:04:05 2001\n>From already quoted\n>>From twice\nend\n", i)
		msgs = append(msgs, Message{Folder: folderNames[i%len(folderNames)], Flags: flagSets[i%len(flagSets)], Date: d,
			Raw: text(fmt.Sprintf("corpus-%d@example.com", i), fmt.Sprintf("Corpus %d", i), d, body, i%2 == 0)})
	}
	d := time.Date(2011, 5, 6, 7, 8, 9, 0, time.UTC)
	dup := text("dup@example.com", "Exact duplicate", d, "twice\n", true)
	msgs = append(msgs,
		// Exact duplicates: both must arrive.
		Message{Folder: "INBOX", Flags: []string{`\Seen`}, Date: d, Raw: dup},
		Message{Folder: "INBOX", Flags: []string{`\Seen`}, Date: d, Raw: dup},
		// No Message-ID.
		Message{Folder: "Projects", Date: d.Add(time.Hour), Raw: text("", "No Message-ID", d.Add(time.Hour), "no id\n", false)},
		// CRLF and LF mixed in one message, 8-bit header.
		Message{Folder: "INBOX", Flags: []string{`\Deleted`, `\Seen`}, Date: d.Add(2 * time.Hour),
			Raw: []byte("From: Jürgen Müller <jm@example.de>\r\nSubject: Grüße – mixed endings\nDate: " + d.Add(2*time.Hour).Format(time.RFC1123Z) +
				"\r\nMessage-ID: <mixed@example.com>\n\r\nline one CRLF\r\nline two LF\nFrom the middle\r\n")},
		// Broken MIME: a multipart that never closes and bogus base64.
		Message{Folder: "Entwürfe", Date: d.Add(3 * time.Hour), Raw: []byte("From: broken@example.com\nSubject: Broken MIME\nMessage-ID: <broken@example.com>\nDate: " +
			d.Add(3*time.Hour).Format(time.RFC1123Z) + "\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"nope\"\n\n--nope\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!\n")},
		// Every flag.
		Message{Folder: "Sent", Flags: []string{Keyword, `\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`}, Date: d.Add(4 * time.Hour),
			Raw: text("all-flags@example.com", "All flags", d.Add(4*time.Hour), "all\n", true)},
	)
	for i := range msgs {
		slices.Sort(msgs[i].Flags)
	}
	return msgs
}

// Folders lists the corpus's folder names.
func Folders(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		if !slices.Contains(out, m.Folder) {
			out = append(out, m.Folder)
		}
	}
	return out
}

// ByFolder groups messages by folder, keeping their order.
func ByFolder(msgs []Message) map[string][]Message {
	out := map[string][]Message{}
	for _, m := range msgs {
		out[m.Folder] = append(out[m.Folder], m)
	}
	return out
}

// Check compares a source listing with the corpus it was made from, message by message: the
// same folders, and per folder the same messages in order with the same bytes (want maps a
// corpus message to the bytes the source must yield), flags and date.
func Check(snap *sources.Snapshot, msgs []Message, want func(Message) []byte, checkFlags bool) error {
	by := ByFolder(msgs)
	for _, f := range snap.Folders {
		if _, ok := by[f.Name]; !ok && len(f.Messages) > 0 {
			return fmt.Errorf("unexpected folder %q with %d messages", f.Name, len(f.Messages))
		}
	}
	for folder, ms := range by {
		f := snap.Folder(folder)
		if f == nil {
			return fmt.Errorf("folder %q missing", folder)
		}
		if len(f.Messages) != len(ms) {
			return fmt.Errorf("folder %q: %d messages, want %d", folder, len(f.Messages), len(ms))
		}
		// Order within a folder follows the source's keys; match by content instead.
		used := make([]bool, len(ms))
		for _, got := range f.Messages {
			rc, err := got.Open()
			if err != nil {
				return err
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			if int64(len(data)) != got.Size {
				return fmt.Errorf("folder %q message %s: Size %d, %d bytes read", folder, got.Key, got.Size, len(data))
			}
			found := false
			for i, m := range ms {
				if used[i] || !bytes.Equal(data, want(m)) {
					continue
				}
				flags := slices.Clone(got.Flags)
				slices.Sort(flags)
				if checkFlags && !slices.Equal(flags, m.Flags) {
					continue
				}
				if !got.Date.Equal(m.Date) {
					continue
				}
				used[i], found = true, true
				break
			}
			if !found {
				return fmt.Errorf("folder %q message %s (flags %v, date %v): no corpus message matches its bytes, flags and date", folder, got.Key, got.Flags, got.Date)
			}
		}
	}
	return nil
}
