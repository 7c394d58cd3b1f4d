package testenv

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// MailAccount is one login on a test IMAP server (Dovecot, Cyrus or Courier). Its helpers
// talk IMAP only, so a test reads and changes every server the same way, independently of the
// code under test.
type MailAccount struct {
	Addr     string
	User     string
	Password string
}

// Login opens an authenticated connection, closed when the test ends (closing it earlier is
// fine).
func (a MailAccount) Login(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(a.Addr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", a.Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(a.User, a.Password).Wait(); err != nil {
		t.Fatalf("login %s at %s: %v", a.User, a.Addr, err)
	}
	return c
}

// Append stores raw in folder with flags and an INTERNALDATE (zero: the server's clock) and
// returns the UID the server reports (APPENDUID), or 0 if it reports none.
func (a MailAccount) Append(t testing.TB, folder string, raw []byte, flags []string, date time.Time) imap.UID {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	return AppendWith(t, c, folder, raw, flags, date)
}

// AppendWith is Append over an open connection.
func AppendWith(t testing.TB, c *imapclient.Client, folder string, raw []byte, flags []string, date time.Time) imap.UID {
	t.Helper()
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	cmd := c.Append(folder, int64(len(raw)), opts)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatalf("append to %s: %v", folder, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("append to %s: %v", folder, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("append to %s: %v", folder, err)
	}
	return data.UID
}

// Create creates a folder, with SPECIAL-USE attributes if given (the server must support
// CREATE-SPECIAL-USE).
func (a MailAccount) Create(t testing.TB, folder string, specialUse ...imap.MailboxAttr) {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	var opts *imap.CreateOptions
	if len(specialUse) > 0 {
		opts = &imap.CreateOptions{SpecialUse: specialUse}
	}
	if err := c.Create(folder, opts).Wait(); err != nil {
		t.Fatalf("create %s: %v", folder, err)
	}
}

// ListedFolder is one LIST answer.
type ListedFolder struct {
	Name  string
	Delim rune
	Attrs []string // sorted, e.g. `\HasNoChildren`, `\Sent`
}

// Folders lists every folder the user sees (LIST "" "*"), sorted by name.
func (a MailAccount) Folders(t testing.TB) []ListedFolder {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	out := make([]ListedFolder, 0, len(list))
	for _, l := range list {
		f := ListedFolder{Name: l.Mailbox, Delim: l.Delim}
		for _, attr := range l.Attrs {
			f.Attrs = append(f.Attrs, string(attr))
		}
		slices.Sort(f.Attrs)
		out = append(out, f)
	}
	slices.SortFunc(out, func(x, y ListedFolder) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// StoredMessage is what a server holds for one message, as read through IMAP.
type StoredMessage struct {
	UID          imap.UID
	Flags        []string // sorted, without \Recent
	InternalDate time.Time
	Size         int64
	Header       []byte // the header section as stored, for tests that look at rewriting
	BodySHA256   string // hex SHA-256 of the text after the header
}

// FolderState is a folder's UIDVALIDITY and messages in UID order.
type FolderState struct {
	UIDValidity uint32
	Messages    []StoredMessage
}

// Messages reads a folder read-only (EXAMINE): UIDVALIDITY, then every message's UID, flags,
// INTERNALDATE, size, header and body digest.
func (a MailAccount) Messages(t testing.TB, folder string) FolderState {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	return MessagesWith(t, c, folder)
}

// MessagesWith is Messages over an open connection.
func MessagesWith(t testing.TB, c *imapclient.Client, folder string) FolderState {
	t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("examine %s: %v", folder, err)
	}
	st := FolderState{UIDValidity: sel.UIDValidity}
	if sel.NumMessages == 0 {
		return st
	}
	header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID:          true,
		Flags:        true,
		InternalDate: true,
		RFC822Size:   true,
		BodySection:  []*imap.FetchItemBodySection{header, text},
	}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", folder, err)
	}
	for _, m := range msgs {
		sm := StoredMessage{UID: m.UID, InternalDate: m.InternalDate, Size: m.RFC822Size,
			Header: bytes.Clone(m.FindBodySection(header))}
		sum := sha256.Sum256(m.FindBodySection(text))
		sm.BodySHA256 = hex.EncodeToString(sum[:])
		for _, f := range m.Flags {
			if f != `\Recent` {
				sm.Flags = append(sm.Flags, string(f))
			}
		}
		slices.Sort(sm.Flags)
		st.Messages = append(st.Messages, sm)
	}
	slices.SortFunc(st.Messages, func(x, y StoredMessage) int { return cmp.Compare(x.UID, y.UID) })
	return st
}
