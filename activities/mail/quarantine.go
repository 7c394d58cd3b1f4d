package mail

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
)

// tooBig quarantines the todo messages above the size limit.
func (p *pass) tooBig(ctx context.Context, s *session, fr *folderRun, todo []uint32) ([]uint32, error) {
	metas, err := s.src.Metas(ctx, todo)
	if err != nil {
		return nil, err
	}
	var big []uint32
	for _, m := range metas {
		if m.Size <= p.limit {
			continue
		}
		big = append(big, m.UID)
		reason := fmt.Sprintf("message of %d bytes exceeds the destination's limit of %d bytes (APPENDLIMIT / max message size); not sent", m.Size, p.limit)
		if err := p.quarantine(ctx, fr, m, string(imapx.ClassTooBig), reason, false); err != nil {
			return nil, err
		}
	}
	return big, nil
}

// quarantine records a refused message.
func (p *pass) quarantine(ctx context.Context, fr *folderRun, m Meta, class, reason string, retry bool) error {
	fr.quarantined.Add(1)
	p.c.quarantined.Add(1)
	p.c.addError(class, 1)
	p.log.Warn("message quarantined", "folder", fr.m.Source.Name, "uid", m.UID, "class", class, "reason", reason)
	if p.dry {
		return nil
	}
	date := m.Date
	var datep *time.Time
	if !date.IsZero() {
		datep = &date
	}
	return p.st.QuarantineMailMessage(ctx, store.MailQuarantine{MailboxID: fr.lf.MailboxID, FolderID: fr.lf.ID,
		SourceUID: int64(m.UID), Identity: m.Identity, Description: m.Describe, Size: m.Size, InternalDate: datep,
		ErrorClass: class, Reason: reason, Retry: retry, RunID: p.runID()})
}

func (p *pass) runID() *int64 {
	if p.runIDv == 0 {
		return nil
	}
	id := p.runIDv
	return &id
}

// poisonStops is how many times a dropped connection may interrupt the copy of one message
// in a pass before that message is quarantined (to be tried again by the next pass), so that
// one message the source cannot send — Dovecot answers "* BYE FETCH failed" for a stored
// message shorter than its recorded size, every time — does not fail its whole mailbox.
const poisonStops = 3

// notePoison records which message a dropped connection interrupted: the one being copied,
// or else the next one the stream would have sent.
func (fr *folderRun) notePoison(uids []uint32, started, finished uint32, err error) {
	suspect := started
	if started == finished { // between messages: the stream stopped before the next one
		i := 0
		if finished != 0 {
			if i = slices.Index(uids, finished) + 1; i == 0 {
				return
			}
		}
		if i >= len(uids) {
			return
		}
		suspect = uids[i]
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if fr.stops == nil {
		fr.stops, fr.stopErr = map[uint32]int{}, map[uint32]string{}
	}
	fr.stops[suspect]++
	fr.stopErr[suspect] = err.Error()
}

// quarantinePoison takes the messages that dropped the connection poisonStops times out of
// todo and quarantines them (retried by the next pass).
func (p *pass) quarantinePoison(ctx context.Context, s *session, fr *folderRun, todo []uint32) (rest, poisoned []uint32, err error) {
	fr.mu.Lock()
	reasons := map[uint32]string{}
	for _, u := range todo {
		if n := fr.stops[u]; n >= poisonStops {
			poisoned = append(poisoned, u)
			reasons[u] = fmt.Sprintf("the connection dropped %d times while this message was being copied (last: %s); quarantined so the rest of the folder goes on, tried again by the next pass", n, fr.stopErr[u])
		} else {
			rest = append(rest, u)
		}
	}
	fr.mu.Unlock()
	if len(poisoned) == 0 {
		return todo, nil, nil
	}
	// Its headers identify it for verification when the source can send them; else its key.
	metas := map[uint32]Meta{}
	if ms, merr := s.src.Metas(ctx, poisoned); merr == nil {
		for _, m := range ms {
			metas[m.UID] = m
		}
	} else {
		err = merr // the connection is likely gone: the caller redials
	}
	for _, u := range poisoned {
		m, ok := metas[u]
		if !ok {
			m = Meta{UID: u, Identity: fmt.Sprintf("unreadable:%s/%d", fr.m.Source.Name, u), Describe: fmt.Sprintf("UID %d of %s", u, fr.m.Source.Name)}
		}
		if qerr := p.quarantine(ctx, fr, m, "unreadable", reasons[u], true); qerr != nil {
			return rest, nil, qerr
		}
	}
	return rest, poisoned, err
}
