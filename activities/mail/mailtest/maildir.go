// Package mailtest builds mail corpora and seeds them into the Maildirs of test Dovecot
// instances (internal/testing/testenv), for the sync engine's integration tests and benchmarks. The
// corpora and the Maildir writer live in internal/devtools/corpus (cutover demo uses them too); this
// package adds the test plumbing.
package mailtest

import (
	"bytes"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/devtools/corpus"
	"github.com/cutover/cutover/internal/testing/testenv"
)

// Message is one message of a corpus.
type Message = corpus.Message

// BulkOptions shapes a benchmark corpus.
type BulkOptions = corpus.BulkOptions

// Keyword is the IMAP keyword the corpora use beside the system flags.
const Keyword = corpus.Keyword

// AllFlags is every storable system flag plus Keyword.
var AllFlags = corpus.AllFlags

// The corpora and the Maildir writer (see internal/devtools/corpus).
var (
	Text            = corpus.Text
	Standard        = corpus.Standard
	Big             = corpus.Big
	Bulk            = corpus.Bulk
	BulkSeq         = corpus.BulkSeq
	BulkMessage     = corpus.BulkMessage
	FolderDir       = corpus.FolderDir
	WriteMaildir    = corpus.WriteMaildir
	WriteMaildirSeq = corpus.WriteMaildirSeq
)

// SeedMaildir writes msgs into user's Maildir on d (creating folders, keyword files and
// subscriptions) and hands the files to the mail owner. Messages keep their order within a
// folder, so Dovecot assigns UIDs in slice order. Call it before the user's first login or
// while nothing else touches those folders.
func SeedMaildir(t testing.TB, d *testenv.Dovecot, user string, msgs []Message) {
	t.Helper()
	if err := corpus.WriteMaildir(d.Maildir(user), msgs); err != nil {
		t.Fatalf("seed maildir of %s: %v", user, err)
	}
	d.FixOwnership(t)
}

// SeedMaildirSeq is SeedMaildir for a generated sequence: messages are written as they are
// produced, so a large corpus never sits in memory.
func SeedMaildirSeq(t testing.TB, d *testenv.Dovecot, user string, msgs iter.Seq[Message]) {
	t.Helper()
	if err := corpus.WriteMaildirSeq(d.Maildir(user), msgs); err != nil {
		t.Fatalf("seed maildir of %s: %v", user, err)
	}
	d.FixOwnership(t)
}

// SeedIMAP appends msgs to an account through IMAP, in order, creating their folders (parents
// first) under the server's personal namespace: "Projects/2023" becomes "INBOX.Projects.2023" on
// a server whose personal prefix is "INBOX." with '.' separators. It works on every server the
// tests run (Dovecot, Cyrus, Courier) and returns the server's name of each corpus folder.
func SeedIMAP(t testing.TB, a testenv.MailAccount, msgs []Message) map[string]string {
	t.Helper()
	c := a.Login(t)
	defer c.Close()
	prefix, delim := "", "/"
	if ns, err := c.Namespace().Wait(); err == nil && len(ns.Personal) > 0 {
		prefix = ns.Personal[0].Prefix
		if ns.Personal[0].Delim != 0 {
			delim = string(ns.Personal[0].Delim)
		}
	}
	names := map[string]string{}
	var created []string
	for _, m := range msgs {
		folder := m.Folder
		if folder == "" {
			folder = "INBOX"
		}
		name, ok := names[folder]
		if !ok {
			name = "INBOX"
			if folder != "INBOX" {
				parts := strings.Split(folder, "/")
				for i := range parts {
					name = prefix + strings.Join(parts[:i+1], delim)
					if slices.Contains(created, name) {
						continue
					}
					if err := c.Create(name, nil).Wait(); err != nil {
						t.Fatalf("seed: create %s: %v", name, err)
					}
					created = append(created, name)
				}
			}
			names[folder] = name
		}
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		testenv.AppendWith(t, c, name, buf.Bytes(), m.Flags, m.Date)
	}
	return names
}
