// Package mail is cutover's IMAP sync engine: it copies one mailbox from a source account to a
// destination IMAP account, pass after pass (presyncs, then a final pass), keeping a ledger in
// PostgreSQL so that every pass after the first is O(changes) and no message is ever lost or
// duplicated. api.go is the activity contract the email workflows call.
//
// # A pass
//
//   - Folders are listed on both sides (LIST-STATUS and SPECIAL-USE where the server has them)
//     and mapped by package folders: folder_map_json first, then special-use automapping
//     (Sent, "Sent Items", "Gesendete Elemente", ...), then the path with separators and
//     namespace prefixes translated; include/exclude regexes select source folders. Missing
//     destination folders are created and subscriptions carried over.
//   - A folder whose UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ match the ledger is not
//     even opened: a pass over an unchanged 20,000-message mailbox costs two logins, one LIST
//     per side (NAMESPACE rides with it) and a few queries.
//   - Otherwise only UIDs above the folder's mark that the ledger does not hold are new. Mail
//     already on the destination that the ledger cannot account for (a first pass over a
//     pre-filled account, a UIDVALIDITY change) is matched by identity (package identity:
//     Message-ID plus a Date/From/Subject hash, size-independent) and adopted instead of
//     copied; identities match by count, so exact duplicates both arrive. A destination may
//     rewrite what it stores (Cyrus turns raw 8-bit header bytes into 'X'): the identity it gave
//     each copy is read back and kept beside the source's, copies made before a source
//     UIDVALIDITY change are found again through the ledger's prior claims (their flags
//     replayed, removals included), and a rewrite-tolerant key (identity.Loose) pairs what no
//     UID names. A folder seen for the first time or with a new UIDVALIDITY is opened
//     read-write once, so a server that keeps UIDs only then (Courier without its UID
//     database) stops handing out a new UIDVALIDITY per session.
//   - New messages stream from a pipelined UID FETCH straight into MULTIAPPEND batches on a
//     dedicated connection (imapx.Appender) with flags (filtered to PERMANENTFLAGS, never
//     \Recent) and INTERNALDATE; a 50 MB message is never held in memory. The ledger rows of a
//     batch are written as pending before the command can commit, so a lost OK is checked on
//     the destination (after a settle delay) and never blindly re-sent.
//   - A refused batch is retried one message at a time; what the destination still refuses
//     (too big, over quota, bad content) is quarantined with the server's answer, counted and
//     reported. Messages above APPENDLIMIT or MailboxSpec.MaxMessageSize are quarantined
//     without being sent.
//   - Flag changes of messages synced earlier come from CONDSTORE (CHANGEDSINCE) and are applied
//     as additions and removals, so changes made on the destination survive. Mirror mode
//     deletes on the destination what the source lost and what only the destination has; it
//     is refused once the job is past DNS cutover.
//
// Work is a queue of folder steps and copy chunks run by up to Parallelism workers, each with
// its own connections (sched.go). The first works on the planning session; the others start
// only when copy work queues up behind it, so a pass that copies little logs in once per side
// (plus the append connection when it copies anything). A worker that has streamed a chunk of
// a big folder streams the folder's next queued chunk behind it without waiting for the first's
// answers, and spreads its batches over an append connection the pass lends it, up to
// ExtraAppenders a pass, where the server allows them (lanes.go). Dropped connections are redialled and the folder resumes from the
// ledger; the activity heartbeats its progress and a retried attempt resumes from it.
//
// Verify re-reads both sides (headers only) and compares identity multisets, flags and
// INTERNALDATE per folder under the same mapping; quarantined messages are reported, not
// counted missing, and copies the destination rewrote are reported present and rewritten
// (which headers), found through the ledger's UIDs or the rewrite-tolerant key.
//
// Sources are an interface (Source): IMAP here; file sources (pst, mbox, eml, tgz, zimbra, a
// Dovecot Maildir) plug in through the same ledger, dedupe, quarantine, stats and verify.
package mail
