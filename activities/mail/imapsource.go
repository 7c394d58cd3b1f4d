package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/identity"
	"github.com/cutover/cutover/activities/mail/imapx"
)

// fetchChunk bounds the UIDs of one FETCH command: sparse sets make long command lines.
const fetchChunk = 2000

// defaultIdleTimeout is how long a FETCH may wait for the source's next byte (the appender's
// response timeout is the same).
const defaultIdleTimeout = 5 * time.Minute

// imapSource reads a source IMAP account.
type imapSource struct {
	c      *imapx.Client
	nsq    *nsQuery
	ahead  *listAhead // the listing sent behind the LOGIN (behind.go), until Folders reads it
	folder string
	state  FolderState
	idle   time.Duration // see Engine.IdleTimeout; 0 = defaultIdleTimeout
}

// newIMAPSource wraps a logged-in source connection; nsq is its NAMESPACE already sent, if it
// was (behind.go), else one is sent now.
func newIMAPSource(_ context.Context, c *imapx.Client, nsq *nsQuery) (*imapSource, error) {
	if nsq == nil {
		nsq = askNamespace(c)
	}
	return &imapSource{c: c, nsq: nsq}, nil
}

func (s *imapSource) Namespace() folders.Namespace { ns, _, _ := s.nsq.get(); return ns }
func (s *imapSource) Close() error                 { s.c.Logout(); return nil }

// nsQuery is a NAMESPACE command sent once a session has logged in and read when first
// needed: a session that never needs the namespaces (a folder worker's) never waits for them,
// and the planning session's answer arrives with its LIST, in the same round trip. (Not sent
// behind the LOGIN itself: Courier's login process drops what follows the LOGIN when it hands
// the connection to imapd.)
type nsQuery struct {
	c      *imapx.Client
	cmd    *imapclient.NamespaceCommand
	once   sync.Once
	ns     folders.Namespace
	all    folders.Namespaces
	err    error
	cmdErr error // the NAMESPACE command's own failure, if it failed

	// probe, when set, is a NOOP sent behind the LOGIN: kept learns whether the server
	// answered it (behind.go).
	probe *imapclient.Command
	kept  func(bool)
}

func askNamespace(c *imapx.Client) *nsQuery {
	q := &nsQuery{c: c}
	if c.Has(imap.CapNamespace) {
		q.cmd = c.Namespace()
	}
	return q
}

// get returns the personal namespace (prefix and separator) and every namespace, falling back
// to the separator LIST reports where NAMESPACE is missing or fails.
func (q *nsQuery) get() (folders.Namespace, folders.Namespaces, error) {
	q.once.Do(func() { q.ns, q.all, q.err = q.resolve() })
	return q.ns, q.all, q.err
}

func (q *nsQuery) resolve() (folders.Namespace, folders.Namespaces, error) {
	var ns folders.Namespace
	if q.cmd != nil {
		data, err := q.cmd.Wait()
		q.cmdErr = err
		q.judgeProbe()
		if err == nil && len(data.Personal) > 0 {
			conv := func(ds []imap.NamespaceDescriptor) []folders.Namespace {
				var out []folders.Namespace
				for _, d := range ds {
					n := folders.Namespace{Prefix: d.Prefix}
					if d.Delim != 0 {
						n.Delim = string(d.Delim)
					}
					out = append(out, n)
				}
				return out
			}
			all := folders.Namespaces{Personal: conv(data.Personal), Other: conv(data.Other), Shared: conv(data.Shared)}
			return all.Personal[0], all, nil
		}
	}
	ls, err := q.c.List("", "", nil).Collect()
	if q.cmd == nil {
		q.judgeProbe()
	}
	if err != nil {
		return ns, folders.Namespaces{}, imapx.Classify("list "+q.c.Config.User, err, imapx.ClassProtocol)
	}
	if len(ls) > 0 && ls[0].Delim != 0 {
		ns.Delim = string(ls[0].Delim)
	}
	return ns, folders.Namespaces{Personal: []folders.Namespace{ns}}, nil
}

// listFolders lists every folder with special use, subscription and (when asked) status,
// using LIST-STATUS in one round trip where the server has it.
func listFolders(ctx context.Context, c *imapx.Client, withStatus bool) ([]SourceFolder, error) {
	return listFoldersAhead(ctx, c, nil, withStatus)
}

// listShape is what a folder listing asks for, from the server's capabilities.
type listShape struct {
	ext, specialUse                    bool // LIST-EXTENDED: RETURN (SUBSCRIBED [SPECIAL-USE])
	status, modSeq, size, statusInList bool // STATUS items, and whether LIST-STATUS returns them
}

func shapeOf(caps imap.CapSet, withStatus bool) listShape {
	rev2 := caps.Has(imap.CapIMAP4rev2)
	sh := listShape{ext: caps.Has(imap.CapListExtended) || rev2, status: withStatus}
	sh.specialUse = sh.ext && (caps.Has(imap.CapSpecialUse) || rev2)
	if withStatus {
		sh.modSeq = caps.Has(imap.CapCondStore)
		sh.size = caps.Has(imap.CapStatusSize) || rev2
		sh.statusInList = caps.Has(imap.CapListStatus) || rev2
	}
	return sh
}

// options are the LIST options of the shape and the STATUS items of each folder.
func (sh listShape) options() (*imap.ListOptions, *imap.StatusOptions) {
	opts := &imap.ListOptions{ReturnSubscribed: sh.ext, ReturnSpecialUse: sh.specialUse}
	if !sh.status {
		return opts, nil
	}
	st := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: sh.modSeq, Size: sh.size}
	if sh.statusInList {
		opts.ReturnStatus = st
	}
	return opts, st
}

// listAhead is a LIST sent before the login's answer (behind.go), in the shape the server's
// capabilities had when last seen.
type listAhead struct {
	cmd   *imapclient.ListCommand
	shape listShape
}

// listFoldersAhead is listFolders taking the answer of a LIST sent ahead when it was sent in
// the shape the server's capabilities now call for; otherwise that answer is read and dropped
// and the folders listed again.
func listFoldersAhead(ctx context.Context, c *imapx.Client, ahead *listAhead, withStatus bool) ([]SourceFolder, error) {
	op := "list " + c.Config.User + "@" + c.Config.Addr
	sh := shapeOf(c.Caps(), withStatus)
	ext := sh.ext
	opts, statusOpts := sh.options()
	var ls []*imap.ListData
	var err error
	sent := false
	if ahead != nil {
		ls, err = ahead.cmd.Collect()
		var refused *imap.Error
		// In another shape than the capabilities now call for, or refused (a server taking
		// it before the login's answer): listed again.
		sent = ahead.shape == sh && (err == nil || !errors.As(err, &refused))
	}
	if !sent {
		ls, err = c.List("", "*", opts).Collect()
	}
	if err != nil {
		return nil, imapx.Classify(op, err, imapx.ClassProtocol)
	}
	subscribed := map[string]bool{}
	if !ext {
		subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
		if err == nil {
			for _, l := range subs {
				subscribed[l.Mailbox] = true
			}
		}
	}
	out := make([]SourceFolder, 0, len(ls))
	for _, l := range ls {
		f := SourceFolder{Bytes: -1}
		f.Name = l.Mailbox
		if l.Delim != 0 {
			f.Delim = string(l.Delim)
		}
		f.Subscribed = subscribed[l.Mailbox]
		for _, a := range l.Attrs {
			switch strings.ToLower(string(a)) {
			case `\noselect`, `\nonexistent`:
				f.NoSelect = true
			case `\subscribed`:
				f.Subscribed = true
			case `\sent`:
				f.SpecialUse = folders.Sent
			case `\drafts`:
				f.SpecialUse = folders.Drafts
			case `\trash`:
				f.SpecialUse = folders.Trash
			case `\junk`:
				f.SpecialUse = folders.Junk
			case `\archive`:
				f.SpecialUse = folders.Archive
			}
		}
		st := l.Status
		if withStatus && st == nil && !f.NoSelect {
			st, err = c.Status(l.Mailbox, statusOpts).Wait()
			if err != nil && statusOpts.Size && !imapx.Retryable(imapx.Classify("", err, imapx.ClassProtocol)) {
				// A server that cannot size a folder (Dovecot answers NO [SERVERBUG] when a
				// stored message is shorter than its recorded size) can still count it: the
				// folder's bytes stay unknown and the broken message fails alone.
				noSize := *statusOpts
				noSize.Size = false
				st, err = c.Status(l.Mailbox, &noSize).Wait()
			}
			if err != nil {
				return nil, imapx.Classify("status "+l.Mailbox, err, imapx.ClassProtocol)
			}
		}
		if st != nil {
			if st.NumMessages != nil {
				f.Messages = int64(*st.NumMessages)
			}
			if st.Size != nil {
				f.Bytes = *st.Size
			}
			f.UIDNext = uint32(st.UIDNext)
			f.UIDValidity = st.UIDValidity
			f.ModSeq = st.HighestModSeq
		}
		out = append(out, f)
	}
	return out, nil
}

func (s *imapSource) Folders(ctx context.Context) ([]SourceFolder, error) {
	ahead := s.ahead
	s.ahead = nil
	fs, err := listFoldersAhead(ctx, s.c, ahead, true)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.nsq.get(); err != nil { // answered by now: sent before the LIST
		return nil, err
	}
	return fs, nil
}

func (s *imapSource) Open(ctx context.Context, name string) (FolderState, error) {
	return s.opened(name, s.c.Select(name, &imap.SelectOptions{ReadOnly: true, CondStore: s.c.Has(imap.CapCondStore)}))
}

// opened reads the answer of a folder's EXAMINE and makes it the current folder.
func (s *imapSource) opened(name string, cmd *imapclient.SelectCommand) (FolderState, error) {
	data, err := cmd.Wait()
	if err != nil {
		s.folder = ""
		return FolderState{}, imapx.Classify("examine "+name, err, imapx.ClassFetch)
	}
	s.folder = name
	s.state = FolderState{UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), Messages: data.NumMessages,
		HighestModSeq: data.HighestModSeq}
	return s.state, nil
}

func (s *imapSource) Keys(ctx context.Context, above uint32, w Window) ([]uint32, error) {
	if s.state.Messages == 0 {
		return nil, nil
	}
	crit, opts := s.keySearch(above, w)
	data, err := s.c.UIDSearch(crit, opts).Wait()
	if err != nil {
		return nil, imapx.Classify("search "+s.folder, err, imapx.ClassFetch)
	}
	keys := keysFound(data, above)
	if w.Empty() || len(keys) == 0 {
		return keys, nil
	}
	var in []uint32
	err = s.fetch(ctx, keys, &imap.FetchOptions{UID: true, InternalDate: true}, func(m *imapclient.FetchMessageBuffer) error {
		if w.Contains(m.InternalDate) {
			in = append(in, uint32(m.UID))
		}
		return nil
	})
	slices.Sort(in)
	return in, err
}

var identityFields = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: identity.Fields, Peek: true}

func (s *imapSource) Metas(ctx context.Context, keys []uint32) ([]Meta, error) {
	return fetchMetas(ctx, s.c, s.folder, keys)
}

// fetchMetas fetches size, flags, date and identity headers of the given UIDs.
func fetchMetas(ctx context.Context, c *imapx.Client, folder string, keys []uint32) ([]Meta, error) {
	var out []Meta
	err := fetchUIDs(ctx, c, folder, keys, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{identityFields}}, func(m *imapclient.FetchMessageBuffer) error {
		h := identity.Parse(m.FindBodySection(identityFields))
		out = append(out, Meta{UID: uint32(m.UID), Size: m.RFC822Size, Flags: flagStrings(m.Flags), Date: m.InternalDate,
			Identity: identity.Of(h, m.InternalDate), Describe: h.Describe(), Header: h})
		return nil
	})
	slices.SortFunc(out, func(a, b Meta) int { return int(a.UID) - int(b.UID) })
	return out, err
}

func (s *imapSource) FlagChanges(ctx context.Context, upTo uint32, modseq uint64) ([]Meta, error) {
	if upTo == 0 || s.state.Messages == 0 {
		return nil, nil
	}
	return s.flagsFound(s.flagFetch(upTo, modseq, s.state.HighestModSeq > 0), upTo)
}

// flagFetch sends the FETCH of FlagChanges; condStore: the folder has modification sequences.
func (s *imapSource) flagFetch(upTo uint32, modseq uint64, condStore bool) *imapclient.FetchCommand {
	var set imap.UIDSet
	set.AddRange(1, imap.UID(upTo))
	opts := &imap.FetchOptions{UID: true, Flags: true}
	if modseq > 0 && condStore {
		opts.ChangedSince = modseq
	}
	return s.c.Fetch(set, opts)
}

// flagsFound reads the answer of a flagFetch.
func (s *imapSource) flagsFound(cmd *imapclient.FetchCommand, upTo uint32) ([]Meta, error) {
	var out []Meta
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			cmd.Close()
			return nil, imapx.Classify("fetch flags "+s.folder, err, imapx.ClassFetch)
		}
		if uint32(buf.UID) <= upTo && buf.UID != 0 {
			out = append(out, Meta{UID: uint32(buf.UID), Flags: flagStrings(buf.Flags)})
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, imapx.Classify("fetch flags "+s.folder, err, imapx.ClassFetch)
	}
	return out, nil
}

func (s *imapSource) fetch(ctx context.Context, keys []uint32, opts *imap.FetchOptions, fn func(*imapclient.FetchMessageBuffer) error) error {
	return fetchUIDs(ctx, s.c, s.folder, keys, opts, fn)
}

// fetchUIDs runs buffered FETCHes over keys in chunks (small items only: headers, flags).
func fetchUIDs(ctx context.Context, c *imapx.Client, folder string, keys []uint32, opts *imap.FetchOptions, fn func(*imapclient.FetchMessageBuffer) error) error {
	for len(keys) > 0 {
		n := min(len(keys), fetchChunk)
		chunk := keys[:n]
		keys = keys[n:]
		var set imap.UIDSet
		for _, k := range chunk {
			set.AddNum(imap.UID(k))
		}
		cmd := c.Fetch(set, opts)
		for {
			if err := ctx.Err(); err != nil {
				abortFetch(c, cmd)
				return err
			}
			msg := cmd.Next()
			if msg == nil {
				break
			}
			buf, err := msg.Collect()
			if err != nil {
				cmd.Close()
				return imapx.Classify("fetch "+folder, err, imapx.ClassFetch)
			}
			if buf.UID == 0 {
				continue
			}
			if err := fn(buf); err != nil {
				abortFetch(c, cmd) // the rest of the answer is not wanted: drop the connection
				return err
			}
		}
		if err := cmd.Close(); err != nil {
			return imapx.Classify("fetch "+folder, err, imapx.ClassFetch)
		}
	}
	return nil
}

// abortFetch drops the connection under an unfinished FETCH. go-imap's Close waits for its
// reader, which may be blocked handing the current item to us: close in the background, then
// drain, which lets the reader hit the closed connection and stop.
func abortFetch(c *imapx.Client, cmd *imapclient.FetchCommand) {
	done := make(chan struct{})
	go func() {
		_ = c.Close()
		close(done)
	}()
	_ = cmd.Close()
	<-done
}

var wholeBody = &imap.FetchItemBodySection{Peek: true}

func (s *imapSource) Stream(ctx context.Context, keys []uint32, fn func(m Meta, body io.Reader) error) error {
	for len(keys) > 0 {
		n := min(len(keys), fetchChunk)
		chunk := keys[:n]
		keys = keys[n:]
		var set imap.UIDSet
		for _, k := range chunk {
			set.AddNum(imap.UID(k))
		}
		// A source that keeps the connection open but stops sending (a hung server process, a
		// middlebox that lost the flow) would hold the pass forever while its activity kept
		// heartbeating: the watchdog drops the connection after idle without a byte, and the
		// folder resumes on a new one like after any dropped connection.
		wd := newWatchdog(s.idleTimeout(), func() { _ = s.c.Close() })
		cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{wholeBody}})
		for {
			if err := ctx.Err(); err != nil {
				wd.stop()
				abortFetch(s.c, cmd)
				return err
			}
			msg := cmd.Next()
			wd.kick()
			if msg == nil {
				break
			}
			if broken, err := s.streamOne(msg, wd, fn); err != nil {
				wd.stop()
				switch {
				case broken:
					// The literal failed: go-imap's reader has moved on and will stop at the
					// closed connection; draining would read the literal again, racing it.
					_ = s.c.Close()
				case errors.Is(err, errNoBody):
					// go-imap also ends a message's items when its reader fails, and a cut in
					// the middle of a response reads as a syntax error, not an I/O one. The
					// command's outcome tells a lost connection from a server that sent no
					// body: any failure but the server's own tagged answer.
					var ie *imap.Error
					if cerr := cmd.Close(); cerr != nil && !errors.As(cerr, &ie) {
						return &imapx.Error{Class: imapx.ClassConnect, Op: "fetch " + s.folder, Err: cerr}
					}
				default:
					abortFetch(s.c, cmd)
				}
				return err
			}
		}
		err := cmd.Close()
		if wd.stop() {
			return &imapx.Error{Class: imapx.ClassConnect, Op: "fetch " + s.folder,
				Text: fmt.Sprintf("no data from the source for %s: connection dropped", s.idleTimeout()), Err: err}
		}
		if err != nil {
			return imapx.Classify("fetch "+s.folder, err, imapx.ClassFetch)
		}
	}
	return nil
}

func (s *imapSource) idleTimeout() time.Duration {
	if s.idle > 0 {
		return s.idle
	}
	return defaultIdleTimeout
}

// watchdog calls fire once if it is not kicked for d.
type watchdog struct {
	t     *time.Timer
	d     time.Duration
	fired atomic.Bool
}

func newWatchdog(d time.Duration, fire func()) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		w.fired.Store(true)
		fire()
	})
	return w
}

func (w *watchdog) kick() { w.t.Reset(w.d) }

// stop disarms the watchdog and reports whether it fired.
func (w *watchdog) stop() bool {
	w.t.Stop()
	return w.fired.Load()
}

// errNoBody: a FETCH response for a message ended without its BODY[].
var errNoBody = errors.New("no body in FETCH response")

// kickReader kicks a watchdog on every read.
type kickReader struct {
	r  io.Reader
	wd *watchdog
}

func (k kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	k.wd.kick()
	return n, err
}

// streamOne hands one FETCH response to fn, streaming the body literal. Servers send FLAGS and
// INTERNALDATE before BODY[] (Dovecot, Exchange, Gmail do); if one does not, the body is
// spooled to a temporary file until they arrive.
func (s *imapSource) streamOne(msg *imapclient.FetchMessageData, wd *watchdog, fn func(Meta, io.Reader) error) (literalBroken bool, err error) {
	var m Meta
	var haveFlags, haveDate, called bool
	var spool *os.File
	defer func() {
		if spool != nil {
			spool.Close()
			os.Remove(spool.Name())
		}
	}()
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			m.UID = uint32(it.UID)
		case imapclient.FetchItemDataFlags:
			m.Flags, haveFlags = flagStrings(it.Flags), true
		case imapclient.FetchItemDataInternalDate:
			m.Date, haveDate = it.Time, true
		case imapclient.FetchItemDataRFC822Size:
			if m.Size == 0 {
				m.Size = it.Size
			}
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				return false, &imapx.Error{Class: imapx.ClassFetch, Op: fmt.Sprintf("fetch %s/%d", s.folder, m.UID), Text: "server returned NIL for BODY[]"}
			}
			m.Size = it.Literal.Size()
			lit := &errRecorder{r: kickReader{it.Literal, wd}, size: m.Size}
			if m.UID != 0 && haveFlags && haveDate {
				called = true
				if err := fn(m, lit); err != nil {
					return lit.err != nil, err
				}
				continue
			}
			f, err := os.CreateTemp("", "cutover-spool-*")
			if err != nil {
				return false, err
			}
			spool = f
			if _, err := io.Copy(f, lit); err != nil {
				return lit.err != nil, imapx.Classify(fmt.Sprintf("fetch %s/%d", s.folder, m.UID), err, imapx.ClassFetch)
			}
		}
	}
	if called || m.UID == 0 {
		return false, nil
	}
	if spool == nil {
		return false, &imapx.Error{Class: imapx.ClassFetch, Op: fmt.Sprintf("fetch %s/%d", s.folder, m.UID), Err: errNoBody}
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	return false, fn(m, spool)
}

// errRecorder remembers whether reading a literal ended early (an error, or io.EOF before its
// size): go-imap then resumes its reader, and the literal must not be read again.
type errRecorder struct {
	r    io.Reader
	size int64
	n    int64
	err  error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.r.Read(p)
	e.n += int64(n)
	if err != nil && (err != io.EOF || e.n < e.size) {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		e.err = err
	}
	return n, err
}

// flagStrings drops \Recent (a session flag no APPEND may set) and renders flags as strings.
func flagStrings(fs []imap.Flag) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, string(f))
	}
	return out
}
