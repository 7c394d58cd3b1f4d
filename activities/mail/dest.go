package mail

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/imapx"
)

// dest is the destination account as one folder worker sees it: a go-imap control connection
// (LIST, CREATE, SELECT, FETCH headers, STORE, EXPUNGE) and, opened on first use, an Appender.
type dest struct {
	c    *imapx.Client
	ap   *imapx.Appender
	cfg  imapx.Config
	cred imapx.Credentials
	nsq  *nsQuery // the personal namespace and every one (to tell other users' and shared folders apart)
	// ahead: the listing sent behind the LOGIN (behind.go), until the plan reads it
	ahead *listAhead

	selected  string
	sel       destState
	permFlags []string
	anyKW     bool // PERMANENTFLAGS has \*: any keyword may be stored
}

type destState struct {
	UIDValidity uint32
	UIDNext     uint32
	Messages    uint32
}

// newDest wraps a logged-in control connection; nsq is its NAMESPACE already sent, if it was
// (behind.go), else one is sent now.
func newDest(_ context.Context, c *imapx.Client, cred imapx.Credentials, nsq *nsQuery) (*dest, error) {
	if nsq == nil {
		nsq = askNamespace(c)
	}
	return &dest{c: c, cfg: c.Config, cred: cred, nsq: nsq}, nil
}

// namespace is the destination's personal namespace; namespaces every one.
func (d *dest) namespace() folders.Namespace   { ns, _, _ := d.nsq.get(); return ns }
func (d *dest) namespaces() folders.Namespaces { _, all, _ := d.nsq.get(); return all }

func (d *dest) Close() {
	if d.ap != nil {
		d.ap.Close()
	}
	d.c.Logout()
}

// appender opens the append connection on first use.
func (d *dest) appender(ctx context.Context) (*imapx.Appender, error) {
	if d.ap != nil && d.ap.Err() == nil {
		return d.ap, nil
	}
	ap, err := imapx.DialAppender(ctx, d.cfg, d.cred)
	if err != nil {
		return nil, err
	}
	d.ap = ap
	return ap, nil
}

// appendLimit is the destination's advertised APPENDLIMIT, 0 if none.
func (d *dest) appendLimit() int64 { return d.c.AppendLimit() }

// ensure creates a destination folder (and subscribes it) unless it exists. A special folder
// (Sent, Drafts, Trash, Junk, Archive) is created with its SPECIAL-USE attribute where the
// server has CREATE-SPECIAL-USE, so mail clients find it; a server refusing the attribute (one
// folder per use, say) gets a plain CREATE.
func (d *dest) ensure(ctx context.Context, name string, exists, subscribe bool, specialUse string) error {
	if !exists && !strings.EqualFold(name, "INBOX") {
		var opts *imap.CreateOptions
		if specialUse != "" && specialUse != folders.Inbox && d.c.Has(imap.CapCreateSpecialUse) {
			opts = &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttr(specialUse)}}
		}
		err := d.c.Create(name, opts).Wait()
		if err != nil && opts != nil && !alreadyExists(err) && !imapx.Retryable(imapx.Classify("", err, imapx.ClassProtocol)) {
			err = d.c.Create(name, nil).Wait()
		}
		// ALREADYEXISTS, or a server that says NO because another worker won the race.
		if err != nil && !alreadyExists(err) {
			return imapx.Classify("create "+name, err, imapx.ClassProtocol)
		}
	}
	if subscribe {
		if err := d.c.Subscribe(name).Wait(); err != nil {
			return imapx.Classify("subscribe "+name, err, imapx.ClassProtocol)
		}
	}
	return nil
}

// alreadyExists reports a CREATE refused because the folder exists.
func alreadyExists(err error) bool {
	var ie *imap.Error
	return isIMAPError(err, &ie) && (ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "exists"))
}

// selectFolder SELECTs (read-write) a destination folder.
func (d *dest) selectFolder(ctx context.Context, name string) (destState, error) {
	return d.selectSent(name, d.c.Select(name, nil))
}

// selectSent reads the answer of a destination folder's SELECT sent earlier (pipelined with
// the source's commands) and makes it the selected folder.
func (d *dest) selectSent(name string, cmd *imapclient.SelectCommand) (destState, error) {
	data, err := cmd.Wait()
	if err != nil {
		d.selected = ""
		return destState{}, imapx.Classify("select "+name, err, imapx.ClassNoFolder)
	}
	d.selected = name
	d.sel = destState{UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), Messages: data.NumMessages}
	d.permFlags = d.permFlags[:0]
	d.anyKW = false
	for _, f := range data.PermanentFlags {
		if f == imap.FlagWildcard {
			d.anyKW = true
			continue
		}
		d.permFlags = append(d.permFlags, strings.ToLower(string(f)))
	}
	if data.PermanentFlags == nil {
		d.anyKW = true // no PERMANENTFLAGS: assume everything is storable
	}
	return d.sel, nil
}

// filterFlags keeps the flags the selected destination folder can store (PERMANENTFLAGS).
func (d *dest) filterFlags(fs []string) []string { return d.flagFilter().apply(fs) }

// flagFilter captures the selected folder's PERMANENTFLAGS for use on other connections.
func (d *dest) flagFilter() flagFilter {
	return flagFilter{perm: slices.Clone(d.permFlags), anyKW: d.anyKW}
}

// flagFilter keeps the flags a destination folder can store.
type flagFilter struct {
	perm  []string // lower-cased PERMANENTFLAGS
	anyKW bool     // \* : any keyword
}

func (f flagFilter) apply(fs []string) []string {
	out := make([]string, 0, len(fs))
	for _, fl := range fs {
		if strings.EqualFold(fl, `\Recent`) {
			continue
		}
		if f.anyKW && !strings.HasPrefix(fl, `\`) || slices.Contains(f.perm, strings.ToLower(fl)) {
			out = append(out, fl)
		}
	}
	return out
}

// uids lists every UID of the selected folder.
func (d *dest) uids(ctx context.Context) ([]uint32, error) {
	if d.sel.Messages == 0 {
		return nil, nil
	}
	var opts *imap.SearchOptions
	if d.c.Has(imap.CapESearch) || d.c.Has(imap.CapIMAP4rev2) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	data, err := d.c.UIDSearch(&imap.SearchCriteria{}, opts).Wait()
	if err != nil {
		return nil, imapx.Classify("search "+d.selected, err, imapx.ClassProtocol)
	}
	var out []uint32
	if set, ok := data.All.(imap.UIDSet); ok {
		nums, _ := set.Nums()
		for _, u := range nums {
			out = append(out, uint32(u))
		}
	}
	slices.Sort(out)
	return out, nil
}

// destListing is one folder's UIDs as listUIDs found them.
type destListing struct {
	uids []uint32
	err  error
}

// listUIDs lists the UIDs of every named folder: each folder's SELECT and UID SEARCH go out
// together, every folder's at once, and the answers are read in order (one round trip for
// all). A folder whose SELECT fails gets its error (its search, refused or run elsewhere, is
// ignored). No folder is left selected as far as d knows.
func (d *dest) listUIDs(names []string) map[string]destListing {
	var opts *imap.SearchOptions
	if d.c.Has(imap.CapESearch) || d.c.Has(imap.CapIMAP4rev2) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	type sent struct {
		sel    *imapclient.SelectCommand
		search *imapclient.SearchCommand
	}
	cmds := make([]sent, len(names))
	for i, name := range names {
		cmds[i] = sent{sel: d.c.Select(name, nil), search: d.c.UIDSearch(&imap.SearchCriteria{}, opts)}
	}
	out := make(map[string]destListing, len(names))
	for i, name := range names {
		_, selErr := cmds[i].sel.Wait()
		data, searchErr := cmds[i].search.Wait()
		switch {
		case selErr != nil:
			out[name] = destListing{err: imapx.Classify("select "+name, selErr, imapx.ClassNoFolder)}
		case searchErr != nil:
			out[name] = destListing{err: imapx.Classify("search "+name, searchErr, imapx.ClassProtocol)}
		default:
			var uids []uint32
			if set, ok := data.All.(imap.UIDSet); ok {
				nums, _ := set.Nums()
				for _, u := range nums {
					uids = append(uids, uint32(u))
				}
			}
			slices.Sort(uids)
			out[name] = destListing{uids: uids}
		}
	}
	d.selected = ""
	return out
}

// metas fetches identity headers of UIDs in the selected folder.
func (d *dest) metas(ctx context.Context, uids []uint32) ([]Meta, error) {
	return fetchMetas(ctx, d.c, d.selected, uids)
}

// store changes flags of destination UIDs.
func (d *dest) store(ctx context.Context, uids []uint32, op imap.StoreFlagsOp, flags []string) error {
	if len(uids) == 0 || len(flags) == 0 {
		return nil
	}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	fl := make([]imap.Flag, len(flags))
	for i, f := range flags {
		fl[i] = imap.Flag(f)
	}
	if err := d.c.Store(set, &imap.StoreFlags{Op: op, Silent: true, Flags: fl}, nil).Close(); err != nil {
		return imapx.Classify("store "+d.selected, err, imapx.ClassProtocol)
	}
	return nil
}

// expunge deletes destination UIDs: \Deleted then UID EXPUNGE. Without UIDPLUS the messages are
// only flagged, because a plain EXPUNGE would also remove what a user flagged \Deleted.
func (d *dest) expunge(ctx context.Context, uids []uint32) (bool, error) {
	if len(uids) == 0 {
		return true, nil
	}
	if err := d.store(ctx, uids, imap.StoreFlagsAdd, []string{`\Deleted`}); err != nil {
		return false, err
	}
	if !d.c.Has(imap.CapUIDPlus) {
		return false, nil
	}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	if err := d.c.UIDExpunge(set).Close(); err != nil {
		return false, imapx.Classify("expunge "+d.selected, err, imapx.ClassProtocol)
	}
	return true, nil
}

func isIMAPError(err error, target **imap.Error) bool {
	e, ok := err.(*imap.Error)
	if ok {
		*target = e
	}
	return ok
}
