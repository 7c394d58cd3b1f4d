package mail

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// The identity the destination gave each copy (see rewriting.go) is read back beside the
// copy, batch by batch, on the worker's destination control connection, which sits idle while
// the appender works: once a batch's APPEND is answered, a NOOP (it shows the session the
// messages the appender stored) and a UID FETCH of the batch's identity headers go out
// together. Read at the end of the folder instead, every copy's headers were read while that
// worker's appender waited, and the largest folder's read-back was the tail of the pass.
//
// A chunk's last read-backs finish while the worker starts its next chunk: the worker waits
// for them (session.settleReads) only before it uses the control connection again.
//
// The folder is opened read-only, so the read-back checks that the session sees the
// UIDVALIDITY the APPENDUIDs were given under: a server that hands read-only sessions UIDs of
// their own (Courier without its UID database) is left to the finalizer's read-write SELECT.
//
// The read-back is best effort: a copy it misses (a full queue, a failed command, a dropped
// connection) stays unread in the ledger, and the folder's finalizer reads it
// (learnDestIdentities), as after an interrupted attempt.

// destReaderQueue is how many answered batches may wait for their read-back; beyond it a batch
// is left to the finalizer rather than hold up the appends.
const destReaderQueue = 16

// destReader reads back the destination identities of one copyBatch's copies.
type destReader struct {
	p    *pass
	d    *dest
	fr   *folderRun
	jobs chan readJob
	done chan struct{}

	uidValidity uint32 // of the folder as the read-back's session opened it
}

// readJob is one answered batch: its copies and the UIDVALIDITY of their APPENDUIDs.
type readJob struct {
	uidValidity uint32
	cs          []copied
}

// startDestReader starts reading back copies into fr's destination folder on s's control
// connection, which it holds until close: the folder is opened read-only, so no one may
// assume a selection on it afterwards.
func (p *pass) startDestReader(ctx context.Context, s *session, fr *folderRun) *destReader {
	rb := &destReader{p: p, d: s.dst, fr: fr, jobs: make(chan readJob, destReaderQueue), done: make(chan struct{})}
	s.dst.selected = ""
	go rb.run(ctx)
	return rb
}

// add queues an answered batch's copies, their APPENDUIDs given under uidValidity; it never
// blocks.
func (rb *destReader) add(uidValidity uint32, cs []copied) {
	if rb == nil || len(cs) == 0 || uidValidity == 0 {
		return
	}
	select {
	case rb.jobs <- readJob{uidValidity: uidValidity, cs: cs}:
	default:
	}
}

// finish takes no more batches; the queued ones are still read.
func (rb *destReader) finish() {
	if rb != nil {
		close(rb.jobs)
	}
}

// wait waits for the queued read-backs.
func (rb *destReader) wait() {
	if rb != nil {
		<-rb.done
	}
}

// settleReads waits for the read-back still running on the session's destination control
// connection, before anything else uses it.
func (s *session) settleReads() {
	if s != nil && s.reading != nil {
		s.reading.wait()
		s.reading = nil
	}
}

func (rb *destReader) run(ctx context.Context) {
	defer close(rb.done)
	opened, failed := false, false
	for j := range rb.jobs {
		if failed || ctx.Err() != nil {
			continue // drained: the finalizer reads what is left
		}
		if err := rb.one(ctx, j, !opened); err != nil {
			failed = true
			rb.p.log.Debug("destination read-back beside the copy stopped; the folder's end reads the rest",
				"folder", rb.fr.m.Dest, "err", err)
			continue
		}
		opened = true
	}
}

// one reads back one batch: EXAMINE (the first time) or NOOP, then the UID FETCH, in one
// round trip.
func (rb *destReader) one(ctx context.Context, j readJob, open bool) error {
	c := rb.d.c
	var wait func() error
	if open {
		sel := c.Select(rb.fr.m.Dest, &imap.SelectOptions{ReadOnly: true})
		wait = func() error {
			data, err := sel.Wait()
			if err == nil {
				rb.uidValidity = data.UIDValidity
			}
			return err
		}
	} else {
		wait = c.Client.Noop().Wait
	}
	metas, err := fetchMetas(ctx, c, rb.fr.m.Dest, copiedDestUIDs(j.cs))
	if werr := wait(); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	if rb.uidValidity != j.uidValidity {
		return fmt.Errorf("the read-only session sees UIDVALIDITY %d, the appends were answered under %d", rb.uidValidity, j.uidValidity)
	}
	return rb.p.recordDestIdentities(ctx, rb.fr, j.cs, metas)
}
