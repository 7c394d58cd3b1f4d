// Package mailtest builds mail corpora and seeds them into the Maildirs of test Dovecot
// instances (internal/testenv), for the sync engine's integration tests and benchmarks. The
// corpora and the Maildir writer live in internal/corpus (cutover demo uses them too); this
// package adds the test plumbing.
package mailtest

import (
	"iter"
	"testing"

	"github.com/cutover/cutover/internal/corpus"
	"github.com/cutover/cutover/internal/testenv"
)

// Message is one message of a corpus.
type Message = corpus.Message

// BulkOptions shapes a benchmark corpus.
type BulkOptions = corpus.BulkOptions

// Keyword is the IMAP keyword the corpora use beside the system flags.
const Keyword = corpus.Keyword

// AllFlags is every storable system flag plus Keyword.
var AllFlags = corpus.AllFlags

// The corpora and the Maildir writer (see internal/corpus).
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
