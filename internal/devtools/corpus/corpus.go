package corpus

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strings"
	"time"
)

// Keyword is the IMAP keyword the corpora use beside the system flags.
const Keyword = "$Label1"

// AllFlags is every storable system flag plus Keyword.
var AllFlags = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, Keyword}

// Text builds a simple RFC 5322 message with CRLF line endings.
func Text(msgID, from, subject string, date time.Time, body string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: user@example.org\r\nSubject: %s\r\nDate: %s\r\n", from, subject, date.Format(time.RFC1123Z))
	if msgID != "" {
		fmt.Fprintf(&b, "Message-ID: <%s>\r\n", msgID)
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes()
}

// Standard is the integration corpus the issue asks for: nested and non-ASCII folders, a
// "Sent Items" folder, messages without Message-ID, exact duplicates, 8-bit headers, malformed
// MIME, bare-LF line endings, one attachment of bigSize bytes (0 leaves it out), every flag
// including a keyword, and dates spread over many years.
func Standard(bigSize int) []Message {
	r := rand.New(rand.NewPCG(1, 2))
	var msgs []Message
	folderNames := []string{"INBOX", "Sent Items", "Projects", "Projects/2023/Q1", "Entwürfe", "Ñoño/Año", "Archive"}
	for i := range 60 {
		folder := folderNames[i%len(folderNames)]
		date := time.Date(1998+i%27, time.Month(1+i%12), 1+i%28, i%24, i%60, i%60, 0, time.UTC)
		var flags []string
		for j, f := range AllFlags {
			if (i>>j)&1 == 1 {
				flags = append(flags, f)
			}
		}
		body := fmt.Sprintf("Message %d in %s.\n%s\n", i, folder, strings.Repeat("lorem ipsum ", 5+r.IntN(200)))
		msgs = append(msgs, Message{
			Folder: folder, Flags: flags, Date: date,
			Raw: Text(fmt.Sprintf("std-%d@corpus.example", i), fmt.Sprintf("Sender %d <s%d@example.com>", i%7, i%7),
				fmt.Sprintf("Standard %d", i), date, body),
		})
	}
	// Exact duplicates: the same bytes twice in one folder, both must arrive.
	dupDate := time.Date(2011, 5, 6, 7, 8, 9, 0, time.UTC)
	dup := Text("dup@corpus.example", "Dup <dup@example.com>", "Exact duplicate", dupDate, "twice\n")
	msgs = append(msgs, Message{Folder: "INBOX", Raw: dup, Date: dupDate, Flags: []string{`\Seen`}},
		Message{Folder: "INBOX", Raw: dup, Date: dupDate, Flags: []string{`\Seen`}})
	// No Message-ID, including an exact duplicate pair of those.
	for i := range 3 {
		d := time.Date(2003+i, 2, 3, 4, 5, 6, 0, time.UTC)
		msgs = append(msgs, Message{Folder: "INBOX", Date: d,
			Raw: Text("", "No Id <noid@example.com>", fmt.Sprintf("Without Message-ID %d", i), d, "no id here\n")})
	}
	noid := Text("", "No Id <noid@example.com>", "Without Message-ID, twice", dupDate, "twice without id\n")
	msgs = append(msgs, Message{Folder: "Archive", Raw: noid, Date: dupDate}, Message{Folder: "Archive", Raw: noid, Date: dupDate})
	// 8-bit headers (raw UTF-8 and Latin-1, no RFC 2047 encoding).
	d8 := time.Date(2009, 9, 9, 9, 9, 9, 0, time.UTC)
	msgs = append(msgs,
		Message{Folder: "INBOX", Date: d8, Raw: Text("8bit-utf8@corpus.example", "Jürgen Müller <jm@example.de>", "Grüße aus Köln – ñ", d8, "8-bit header\n")},
		Message{Folder: "Entwürfe", Date: d8, Raw: append(append([]byte("From: Fran\xe7ois <f@example.fr>\r\nSubject: Caf\xe9 cr\xe8me\r\nMessage-ID: <8bit-latin1@corpus.example>\r\nDate: "),
			d8.Format(time.RFC1123Z)...), "\r\n\r\nlatin-1 header\r\n"...)})
	// Malformed MIME: a multipart whose boundary never closes, and a bogus Content-Type.
	dm := time.Date(2015, 1, 2, 3, 4, 5, 0, time.UTC)
	msgs = append(msgs,
		Message{Folder: "INBOX", Date: dm, Raw: []byte("From: broken@example.com\r\nSubject: Broken multipart\r\nMessage-ID: <broken-1@corpus.example>\r\n" +
			"Date: " + dm.Format(time.RFC1123Z) + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"nope\"\r\n\r\n" +
			"--nope\r\nContent-Type: text/plain\r\n\r\nfirst part, never closed\r\n--nope\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n")},
		Message{Folder: "Projects", Date: dm, Raw: []byte("From: broken@example.com\r\nSubject: Bogus type\r\nMessage-ID: <broken-2@corpus.example>\r\n" +
			"Content-Type: ;;;=\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nbody\r\n")})
	// Bare LF line endings.
	dl := time.Date(2001, 8, 9, 10, 11, 12, 0, time.UTC)
	msgs = append(msgs, Message{Folder: "INBOX", Date: dl, Flags: []string{`\Flagged`},
		Raw: []byte("From: lf@example.com\nSubject: Bare LF\nMessage-ID: <bare-lf@corpus.example>\nDate: " + dl.Format(time.RFC1123Z) + "\n\nline one\nline two\n")})
	// A message carrying every flag.
	da := time.Date(2024, 12, 24, 18, 0, 0, 0, time.UTC)
	msgs = append(msgs, Message{Folder: "INBOX", Date: da, Flags: AllFlags,
		Raw: Text("all-flags@corpus.example", "Flags <f@example.com>", "All flags", da, "every flag\n")})
	if bigSize > 0 {
		db := time.Date(2019, 6, 7, 8, 9, 10, 0, time.UTC)
		msgs = append(msgs, Big("Archive", "big-attachment@corpus.example", db, bigSize))
	}
	return msgs
}

// Big returns a message with a base64 attachment of about size bytes, generated on the fly
// so that it never sits in memory.
func Big(folder, msgID string, date time.Time, size int) Message {
	head := fmt.Sprintf("From: Big <big@example.com>\r\nSubject: Big attachment\r\nMessage-ID: <%s>\r\nDate: %s\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\r\n",
		msgID, date.Format(time.RFC1123Z))
	tail := "--b1--\r\n"
	const lineRaw = 57 // 76 base64 characters per line
	lines := (size - len(head) - len(tail)) / 78
	if lines < 1 {
		lines = 1
	}
	total := int64(len(head)) + int64(lines)*78 + int64(len(tail))
	return Message{Folder: folder, Date: date, Flags: []string{`\Seen`}, GenSize: total, Gen: func(w io.Writer) error {
		if _, err := io.WriteString(w, head); err != nil {
			return err
		}
		r := rand.New(rand.NewPCG(uint64(size), 7))
		raw := make([]byte, lineRaw)
		line := make([]byte, 78)
		for range lines {
			for i := range raw {
				raw[i] = byte(r.Uint32())
			}
			base64.StdEncoding.Encode(line, raw)
			line[76], line[77] = '\r', '\n'
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		_, err := io.WriteString(w, tail)
		return err
	}}
}

// BulkOptions shapes a benchmark corpus.
type BulkOptions struct {
	Messages int
	Folders  []string // messages are spread round-robin; default INBOX only
	Seed     uint64
	Prefix   string // Message-ID prefix, to tell corpora apart
}

// Bulk returns a benchmark corpus with a realistic size mix: most messages are a few KB of
// text, a quarter carry a small attachment and one in fifty a larger one (64 KB to 512 KB).
func Bulk(o BulkOptions) []Message {
	if len(o.Folders) == 0 {
		o.Folders = []string{"INBOX"}
	}
	if o.Prefix == "" {
		o.Prefix = "bulk"
	}
	r := rand.New(rand.NewPCG(o.Seed, 99))
	msgs := make([]Message, 0, o.Messages)
	for i := range o.Messages {
		msgs = append(msgs, BulkMessage(r, o.Folders[i%len(o.Folders)], fmt.Sprintf("%s-%d@bench.example", o.Prefix, i), i))
	}
	return msgs
}

// BulkSeq generates the same messages as Bulk one at a time.
func BulkSeq(o BulkOptions) iter.Seq[Message] {
	if len(o.Folders) == 0 {
		o.Folders = []string{"INBOX"}
	}
	if o.Prefix == "" {
		o.Prefix = "bulk"
	}
	return func(yield func(Message) bool) {
		r := rand.New(rand.NewPCG(o.Seed, 99))
		for i := range o.Messages {
			if !yield(BulkMessage(r, o.Folders[i%len(o.Folders)], fmt.Sprintf("%s-%d@bench.example", o.Prefix, i), i)) {
				return
			}
		}
	}
}

// BulkMessage is one message of Bulk.
func BulkMessage(r *rand.Rand, folder, msgID string, i int) Message {
	date := time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(20 * 365 * 24 * time.Hour))))
	var size int
	switch p := r.IntN(100); {
	case p < 2:
		size = 64<<10 + r.IntN(448<<10)
	case p < 25:
		size = 8<<10 + r.IntN(56<<10)
	default:
		size = 1<<10 + r.IntN(7<<10)
	}
	var flags []string
	if r.IntN(10) < 8 {
		flags = append(flags, `\Seen`)
	}
	if r.IntN(20) == 0 {
		flags = append(flags, `\Flagged`)
	}
	if r.IntN(10) == 0 {
		flags = append(flags, `\Answered`)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.com>\r\nTo: user@example.org\r\nSubject: Bench message %d\r\nDate: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n",
		i%50, i%50, i, date.Format(time.RFC1123Z), msgID)
	fmt.Fprintf(&b, "Received: from mx%d.example.com by mail.example.org; %s\r\n", i%5, date.Format(time.RFC1123Z))
	if size < 8<<10 {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		for b.Len() < size {
			b.WriteString("The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.\r\n")
		}
		return Message{Folder: folder, Date: date, Flags: flags, Raw: b.Bytes()}
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n--xx\r\nContent-Type: text/plain\r\n\r\nattached\r\n--xx\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57)
	line := make([]byte, 78)
	line[76], line[77] = '\r', '\n'
	for b.Len() < size {
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		base64.StdEncoding.Encode(line, raw)
		b.Write(line)
	}
	b.WriteString("--xx--\r\n")
	return Message{Folder: folder, Date: date, Flags: flags, Raw: b.Bytes()}
}
