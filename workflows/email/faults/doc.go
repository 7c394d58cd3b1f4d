// Package faults holds the email migration's fault-injection and security tests (issue 9, email
// half). They run whole jobs — the worker binary as its own process, the Temporal dev server,
// two Dovecots and PostgreSQL — and break things on purpose: the worker SIGKILLed at seeded
// random points of the initial sync, a presync and the final sync (copy and verification), the
// Temporal dev server restarted mid-job, a thousand mailboxes under bounded concurrency with
// the worker's memory and every history measured. Each run then checks the destination
// directly (Message-IDs per folder on Dovecot): zero messages missing, zero duplicated.
//
// The security tests scan every payload of a job's histories, the worker's log, the errors and
// the reports for the passwords and keys the job used, run the job with the payload codec on,
// refuse an IMAP server whose certificate is not trusted, and run a job as a database role with
// only the privileges the README lists.
//
// Tests are named TestFault… (and TestSecurity…) so `make test-faults` selects them.
// Randomised ones log their seeds; CUTOVER_FAULT_SEED=<n> replays one.
package faults
