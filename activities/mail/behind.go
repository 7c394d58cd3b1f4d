package mail

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cutover/cutover/activities/mail/imapx"
)

// Over a long link a pass's planning session costs each side its connection, the greeting, the
// LOGIN and the listing (NAMESPACE and LIST-STATUS together): four round trips. Where a server
// is known to keep what a client pipelines behind its LOGIN, the listing goes out right behind
// the LOGIN and shares its round trip. What this process knows of each server (by address):
//
//   - the capabilities it had after its last login: the listing's shape depends on them, and a
//     LOGIN brings them only with its answer. A listing sent ahead in another shape than the
//     answer's capabilities call for is dropped and sent again (listFoldersAhead);
//   - whether it keeps pipelined input: a session dialled without pipelining to a server not
//     yet known sends a NOOP behind its LOGIN, answered if the server kept it, before the
//     NAMESPACE sent after the login's answer (Dovecot's login process hands pipelined input to
//     the session; Courier's drops it, most of the time). probesToKeep sessions in a row must
//     see it answered, and one lost makes the server one never pipelined to.
//
// A pipelined session whose NAMESPACE is not answered within behindWait of the login's answer
// is closed and dialled again without, and its server no longer pipelined to; one whose
// NAMESPACE or LIST was refused (taken before the login's answer) lists again on the same
// session, and its server is no longer pipelined to either.

// behindWait bounds the wait for what went behind a LOGIN, once the LOGIN is answered.
const behindWait = 3 * time.Second

// probesToKeep is how many sessions in a row must see their probe answered before a server is
// pipelined to: whether Courier's login process drops what follows the LOGIN depends on how
// the bytes arrive, and one answered probe proves too little.
const probesToKeep = 3

type serverMemo struct {
	caps  imap.CapSet
	kept  int // probes answered so far, none lost
	keeps int // 1: pipelined input survives the login; -1: it was lost or refused; 0: unknown
}

var servers = struct {
	sync.Mutex
	m map[string]*serverMemo
}{m: map[string]*serverMemo{}}

func serverKey(cfg imapx.Config) string { return cfg.Security + "://" + cfg.Addr }

func recall(cfg imapx.Config) (imap.CapSet, int) {
	servers.Lock()
	defer servers.Unlock()
	if m := servers.m[serverKey(cfg)]; m != nil {
		return m.caps, m.keeps
	}
	return nil, 0
}

// remember records a server's capabilities after a login, and what its pipelined input became
// (keeps: 1 a probe was answered, -1 pipelined input was lost or refused). A server is known to
// keep it after probesToKeep answered probes, none lost; once lost, it stays lost.
func remember(cfg imapx.Config, caps imap.CapSet, keeps int) {
	servers.Lock()
	defer servers.Unlock()
	m := servers.m[serverKey(cfg)]
	if m == nil {
		m = &serverMemo{}
		servers.m[serverKey(cfg)] = m
	}
	if caps != nil {
		m.caps = caps
	}
	switch {
	case keeps < 0:
		m.keeps = -1
	case keeps > 0 && m.keeps == 0:
		if m.kept++; m.kept >= probesToKeep {
			m.keeps = 1
		}
	}
}

// dialPlanning opens a pass's planning session to one side: NAMESPACE and the folder listing
// go out behind the LOGIN where the server is known to keep them (the returned listAhead,
// for listFoldersAhead), else after its answer as on any session.
func dialPlanning(ctx context.Context, cfg imapx.Config, cred imapx.Credentials) (*imapx.Client, *nsQuery, *listAhead, error) {
	caps, keeps := recall(cfg)
	if keeps > 0 && caps.Has(imap.CapNamespace) {
		sh := shapeOf(caps, true)
		opts, _ := sh.options()
		var ns *imapclient.NamespaceCommand
		var list *imapclient.ListCommand
		c, err := imapx.DialBehind(ctx, cfg, cred, func(ic *imapclient.Client) {
			ns, list = ic.Namespace(), ic.List("", "*", opts)
		})
		if err != nil {
			return nil, nil, nil, err
		}
		remember(cfg, c.Caps(), 0)
		if !c.Behind {
			return c, askNamespace(c), nil, nil
		}
		q := &nsQuery{c: c, cmd: ns}
		answered := make(chan struct{})
		go func() {
			defer close(answered)
			q.get()
		}()
		select {
		case <-answered:
		case <-time.After(behindWait):
			remember(cfg, nil, -1)
			c.Close()
			<-answered
			return dialPlanning(ctx, cfg, cred)
		case <-ctx.Done():
			c.Close()
			<-answered
			return nil, nil, nil, ctx.Err()
		}
		var refused *imap.Error
		if errors.As(q.cmdErr, &refused) {
			remember(cfg, nil, -1) // taken before the login's answer: the listing is read and sent again
		}
		return c, q, &listAhead{cmd: list, shape: sh}, nil
	}
	var probe *imapclient.Command
	var behind func(*imapclient.Client)
	if keeps == 0 {
		behind = func(ic *imapclient.Client) { probe = ic.Noop() }
	}
	c, err := imapx.DialBehind(ctx, cfg, cred, behind)
	if err != nil {
		return nil, nil, nil, err
	}
	remember(cfg, c.Caps(), 0)
	q := askNamespace(c)
	if probe != nil {
		q.probe = probe
		q.kept = func(kept bool) {
			if kept {
				remember(cfg, nil, 1)
			} else {
				remember(cfg, nil, -1)
			}
		}
	}
	return c, q, nil, nil
}

// judgeProbe tells q.kept whether the NOOP sent behind the LOGIN was answered, once a command
// sent after the login's answer was: a server answers in order, so a NOOP it kept is answered
// by then (its completion is read before the later command's).
func (q *nsQuery) judgeProbe() {
	if q.probe == nil {
		return
	}
	probe, kept := q.probe, q.kept
	done := make(chan error, 1)
	go func() { done <- probe.Wait() }()
	go func() {
		select {
		case err := <-done:
			kept(err == nil)
		case <-time.After(time.Second):
			kept(false)
		}
	}()
}
