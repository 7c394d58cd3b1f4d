package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/cutover/cutover/activities/mail/identity"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
)

// inflight is a batch on its way.
type inflight struct {
	b     *imapx.Batch
	rows  []store.MailMessage
	descs []string
	// refused is a message the server refused before it was sent (synchronizing literal).
	refused *Meta
}

// reject is a message a batch could not store.
type reject struct {
	meta  Meta
	err   error
	known bool // meta.Identity is set
}

// copyAll copies todo, and then whatever more hands it (nil: nothing), isolating refused
// messages: a refused multi-message batch is retried one message at a time so that only the
// culprit is quarantined. With readBack the destination identities of the copies are read
// back beside the copy (readback.go), which leaves no folder selected on s's destination
// connection.
func (p *pass) copyAll(ctx context.Context, s *session, fr *folderRun, todo []uint32, readBack bool, more func() []uint32) ([]uint32, error) {
	todo, poisoned, err := p.quarantinePoison(ctx, s, fr, todo)
	fr.addHandled(poisoned)
	if err != nil {
		return poisoned, err
	}
	done, retry, rejects, err := p.copyBatch(ctx, s, fr, todo, false, readBack, more)
	done = append(done, poisoned...)
	if err != nil {
		return done, err
	}
	if len(retry) > 0 {
		s.settleReads() // the one-by-one copies may select on the control connection
	}
	for _, u := range retry {
		d, again, rj, err := p.copyBatch(ctx, s, fr, []uint32{u}, true, false, nil)
		done = append(done, d...)
		if err != nil {
			return done, err
		}
		if len(again) > 0 {
			return done, fmt.Errorf("copy %s/%d: refused without an answer", fr.m.Source.Name, u)
		}
		if len(rj) > 0 {
			// Refused keywords: before the next message is tried (keywords.go).
			d, left, err := p.retryWithoutKeywords(ctx, s, fr, rj)
			done = append(done, d...)
			rejects = append(rejects, left...)
			if err != nil {
				return done, err
			}
		}
	}
	if len(rejects) == 0 {
		return done, nil
	}
	// Refusals of messages never sent carry no identity yet: read their headers now.
	var need []uint32
	for _, r := range rejects {
		if !r.known {
			need = append(need, r.meta.UID)
		}
	}
	metas := map[uint32]Meta{}
	if len(need) > 0 {
		ms, err := s.src.Metas(ctx, need)
		if err != nil {
			return done, err
		}
		for _, m := range ms {
			metas[m.UID] = m
		}
	}
	for _, r := range rejects {
		m := r.meta
		if !r.known {
			if mm, ok := metas[m.UID]; ok {
				m = mm
			}
		}
		class := imapx.ClassOf(r.err)
		var e *imapx.Error
		reason := r.err.Error()
		if errors.As(r.err, &e) {
			reason = strings.TrimSpace(strings.Join([]string{bracket(e.Code), e.Text}, " "))
		}
		if err := p.quarantine(ctx, fr, m, string(class), reason, class == imapx.ClassQuota); err != nil {
			return done, err
		}
		done = append(done, m.UID)
	}
	return done, nil
}

func bracket(code string) string {
	if code == "" {
		return ""
	}
	return "[" + code + "]"
}

// copyBatch streams uids from the source into MULTIAPPEND batches, then the UIDs more hands
// it (nil: none) until it hands none, so the batches go on without waiting for the answers
// of those before. It returns the UIDs now on the destination, those to retry one by one
// (their batch was refused) and, in single mode, the refused messages. With readBack each
// answered batch's copies are read back on the destination control connection while the
// next batches stream.
func (p *pass) copyBatch(ctx context.Context, s *session, fr *folderRun, uids []uint32, single, readBack bool, more func() []uint32) (done, retry []uint32, rejects []reject, err error) {
	ap, err := s.dst.appender(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	s.settleReads()
	var rb *destReader
	if readBack && ap.UIDPlus() {
		rb = p.startDestReader(ctx, s, fr)
		s.reading = rb
	}
	lf := fr.lf
	nBatch, nBytes := p.e.batchMessages(), p.e.batchBytes()
	if single || !ap.MultiAppend() {
		nBatch = 1
	}
	// A chunk of a big folder spreads its batches over a second connection when the pass
	// lends one (lanes.go): asked for before the first batch and, until one is lent, before
	// each next one, as the chunks streaming on behind it keep it going.
	fr.mu.Lock()
	chunked := fr.chunked
	fr.mu.Unlock()
	lend := !single && nBatch > 1 && chunked > 1 && p.lanes != nil && p.lanes.max > 0
	var mu sync.Mutex // guards done, retry, rejects between the writer and the committer, and aps
	aps := []*imapx.Appender{ap}
	defer func() {
		for _, a := range aps[1:] {
			p.lanes.put(a)
		}
	}()
	if lend && len(uids) > nBatch {
		if extra := p.lanes.take(ctx, fr, true); extra != nil {
			aps = append(aps, extra)
		}
	}
	depth := 2 // batches queued for their answer, per connection the chunk may append over
	if lend {
		depth = 4
	}
	q := make(chan *inflight, depth)
	var commitErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for fl := range q {
			if commitErr != nil {
				continue
			}
			r := fl.b.Wait(ctx)
			if err := p.settle(ctx, fr, fl, r, single, rb, &mu, &done, &retry, &rejects); err != nil {
				commitErr = err
				mu.Lock()
				all := slices.Clone(aps)
				mu.Unlock()
				for _, a := range all {
					a.Close() // unblocks the writer
				}
			}
		}
	}()
	// lane picks the connection for the next batch: the one with the fewest unanswered.
	sent := make([][]*imapx.Batch, len(aps))
	lane := func() *imapx.Appender {
		best, bestN := 0, -1
		for i := range aps {
			open := sent[i][:0]
			for _, b := range sent[i] {
				select {
				case <-b.Done():
				default:
					open = append(open, b)
				}
			}
			sent[i] = open
			if bestN < 0 || len(open) < bestN {
				best, bestN = i, len(open)
			}
		}
		return aps[best]
	}

	var cur *inflight
	var curAp *imapx.Appender // cur's connection
	var sn identity.Sniffer
	end := func() error {
		if cur == nil {
			return nil
		}
		fl := cur
		cur = nil
		if fl.b.Len() == 0 {
			return fl.b.End()
		}
		// The intent is durable before the command can commit: a lost answer is checked, never
		// blindly re-sent.
		if err := p.st.PutMailMessages(ctx, fl.rows); err != nil {
			return err
		}
		if err := fl.b.End(); err != nil {
			return err
		}
		q <- fl
		return nil
	}
	var started, finished uint32 // the last message handed over, the last one fully read
	handle := func(m Meta, body io.Reader) error {
		fr.lastUID.Store(m.UID)
		if p.limit > 0 && m.Size > p.limit {
			// Grew past the limit since it was measured: refuse locally.
			sn.Reset()
			if _, err := io.Copy(&sn, body); err != nil {
				return imapx.Classify("fetch "+fr.m.Source.Name, err, imapx.ClassFetch)
			}
			h := sn.Header()
			m.Identity, m.Describe, m.Header = identity.Of(h, m.Date), h.Describe(), h
			mu.Lock()
			rejects = append(rejects, reject{meta: m, known: true, err: &imapx.Error{Class: imapx.ClassTooBig,
				Op: "append", Text: fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes; not sent", m.Size, p.limit)}})
			mu.Unlock()
			return nil
		}
		if cur == nil {
			if lend && len(aps) == 1 {
				if extra := p.lanes.take(ctx, fr, false); extra != nil {
					mu.Lock()
					aps = append(aps, extra)
					mu.Unlock()
					sent = append(sent, nil)
				}
			}
			a := lane()
			curAp = a
			b, err := a.Begin(fr.m.Dest)
			if err != nil {
				return err
			}
			for i := range aps {
				if aps[i] == a {
					sent[i] = append(sent[i], b)
				}
			}
			cur = &inflight{b: b}
		}
		flags, dropped := fr.flagsFor(m)
		sn.Reset()
		err := cur.b.Add(flags, m.Date, m.Size, io.TeeReader(body, &sn))
		if errors.Is(err, imapx.ErrBatchDone) {
			if _, err := io.Copy(io.Discard, body); err != nil {
				return imapx.Classify("fetch "+fr.m.Source.Name, err, imapx.ClassFetch)
			}
			mm := m
			cur.refused = &mm
			fl := cur
			cur = nil
			q <- fl
			return nil
		}
		if err != nil {
			return err
		}
		h := sn.Header()
		date := m.Date
		cur.rows = append(cur.rows, store.MailMessage{FolderID: lf.ID, SourceUID: int64(m.UID), State: store.MailPending,
			Identity: identity.Of(h, m.Date), Size: m.Size, Flags: flags, InternalDate: &date, DroppedFlags: dropped})
		cur.descs = append(cur.descs, h.Describe())
		if cur.b.Len() >= nBatch || cur.b.Bytes() >= nBytes {
			return end()
		}
		return nil
	}
	stream := func(uids []uint32) error {
		return s.src.Stream(ctx, uids, func(m Meta, body io.Reader) error {
			started = m.UID
			if err := handle(m, body); err != nil {
				return err
			}
			finished = m.UID
			return nil
		})
	}
	streamErr := stream(uids)
	for streamErr == nil && more != nil && !single {
		next := more()
		if len(next) == 0 {
			break
		}
		uids = append(uids[:len(uids):len(uids)], next...)
		streamErr = stream(next)
	}
	if streamErr == nil || cur == nil || curAp.Err() == nil {
		// Complete messages already written are worth committing even if the source failed.
		if err := end(); err != nil && streamErr == nil {
			streamErr = err
		}
	}
	close(q)
	wg.Wait()
	rb.finish()
	if streamErr == nil {
		streamErr = commitErr
	} else if commitErr != nil && imapx.ClassOf(streamErr) == imapx.ClassConnect {
		streamErr = commitErr // the committer's reason is the real one
	} else if imapx.ClassOf(streamErr) == imapx.ClassConnect {
		fr.notePoison(uids, started, finished, streamErr)
	}
	return done, retry, rejects, streamErr
}

// settle applies a batch's answer to the ledger.
func (p *pass) settle(ctx context.Context, fr *folderRun, fl *inflight, r imapx.BatchResult, single bool, rb *destReader,
	mu *sync.Mutex, done, retry *[]uint32, rejects *[]reject) error {
	lf := fr.lf
	src := make([]int64, len(fl.rows))
	for i, row := range fl.rows {
		src[i] = row.SourceUID
	}
	if r.Err == nil {
		dst := make([]int64, len(fl.rows))
		if len(r.UIDs) == len(fl.rows) {
			for i, u := range r.UIDs {
				dst[i] = int64(u)
			}
		}
		if err := p.st.ConfirmMailMessages(ctx, lf.ID, store.MailCopied, src, dst); err != nil {
			return err
		}
		if rb != nil && len(r.UIDs) == len(fl.rows) {
			cs := make([]copied, len(fl.rows))
			for i, row := range fl.rows {
				cs[i] = copied{src: row.SourceUID, dst: r.UIDs[i], identity: row.Identity}
			}
			rb.add(r.UIDValidity, cs)
		}
		if len(p.retryQ[lf.ID]) > 0 { // only quarantined messages tried again can be resolved
			if err := p.st.ResolveMailQuarantine(ctx, lf.ID, src); err != nil {
				return err
			}
		}
		var bytes, dropped int64
		for _, row := range fl.rows {
			bytes += row.Size
			if len(row.DroppedFlags) > 0 {
				dropped++
			}
		}
		if dropped > 0 {
			p.c.addError("keywords_dropped", dropped)
		}
		fr.transferred.Add(int64(len(fl.rows)))
		if len(fr.recopy) > 0 {
			var n int64
			for _, u := range src {
				if fr.recopy[uint32(u)] {
					n++
				}
			}
			fr.recopied.Add(n)
			p.c.recopied.Add(n)
		}
		p.c.transferred.Add(int64(len(fl.rows)))
		p.c.bytes.Add(bytes)
		p.mu.Lock()
		p.destCount[fr.m.Dest] += int64(len(fl.rows))
		p.mu.Unlock()
		mu.Lock()
		for _, u := range src {
			*done = append(*done, uint32(u))
		}
		if fl.refused != nil {
			*retry = append(*retry, fl.refused.UID)
		}
		mu.Unlock()
		return nil
	}
	class := imapx.ClassOf(r.Err)
	switch class {
	case imapx.ClassConnect, imapx.ClassThrottled, imapx.ClassNoFolder:
		// Rows stay pending: the next attempt reconciles them against the destination.
		return r.Err
	}
	if err := p.st.DeleteMailMessages(ctx, lf.ID, src); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if single {
		for i, row := range fl.rows {
			*rejects = append(*rejects, reject{known: true, err: r.Err, meta: Meta{UID: uint32(row.SourceUID), Size: row.Size,
				Flags: row.Flags, Date: *row.InternalDate, Identity: row.Identity, Describe: fl.descs[i]}})
		}
		if fl.refused != nil {
			*rejects = append(*rejects, reject{meta: *fl.refused, err: r.Err})
		}
		return nil
	}
	for _, u := range src {
		*retry = append(*retry, uint32(u))
	}
	if fl.refused != nil {
		*retry = append(*retry, fl.refused.UID)
	}
	return nil
}
