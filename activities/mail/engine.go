package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover/cutover/activities/mail/folders"
	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// Engine defaults.
const (
	DefaultParallelism   = 4
	DefaultBatchMessages = 256
	DefaultBatchBytes    = 16 << 20
	DefaultChunkMessages = 1024
	defaultReconnects    = 4
)

// CredentialsFunc resolves a credentials_ref into the secret half of a login.
type CredentialsFunc func(ctx context.Context, ref string) (imapx.Credentials, error)

// Engine runs sync passes, verifications and preflights. It knows nothing of Temporal: the
// activities wrap it, turning its progress into heartbeats and its errors into application
// errors.
type Engine struct {
	Store       *store.Store
	Credentials CredentialsFunc
	Logger      *slog.Logger

	// Tunables; zero values take the defaults.
	BatchMessages int   // messages per MULTIAPPEND
	BatchBytes    int64 // bytes per MULTIAPPEND
	// ChunkMessages splits a folder's copy into chunks that run on several connections at
	// once. Batches keep their order but chunks interleave, so destination UIDs follow the
	// source's only within a chunk; a value above a folder's size keeps it in order.
	ChunkMessages int
	// ExtraAppenders is how many more append connections than workers a pass may open, lent
	// to the copy chunks of big folders (lanes.go); negative: none.
	ExtraAppenders int
	Reconnects     int           // reconnect attempts per folder after a dropped connection
	ReconnectDelay time.Duration // first backoff; doubles per attempt
	// SettleDelay is how long to wait after a dropped connection before checking the
	// destination for appends whose answer was lost: the server may still be storing commands
	// it had received before the drop (default 3s; 15s when the drop was in an earlier attempt
	// of the pass, whose bytes may still be in flight).
	SettleDelay   time.Duration
	ProgressEvery time.Duration // how often OnProgress fires during a pass (default 2s)
	// IdleTimeout is how long a FETCH may go without a byte from the source before its
	// connection is dropped and the folder resumes on a new one (default 5m).
	IdleTimeout time.Duration
}

// SpecError is an invalid spec: permanent until the spec is fixed.
type SpecError struct{ Err error }

func (e *SpecError) Error() string { return "bad mailbox spec: " + e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

// CredentialsError means the vault could not produce a secret.
type CredentialsError struct {
	Side string // source or destination
	Ref  string
	Err  error
}

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("credentials %s unavailable: %v", e.Ref, e.Err)
}
func (e *CredentialsError) Unwrap() error { return e.Err }

// ErrMirrorAfterCutover refuses mirror deletes once users may write to the destination.
var ErrMirrorAfterCutover = errors.New("mirror mode refused: the job is past DNS cutover, nothing may be deleted on the destination")

// SyncOptions are the per-call parts of Sync beside the request.
type SyncOptions struct {
	RunID      int64                   // migration_runs.id recorded on quarantine rows and in the stats
	Resume     *emailapi.Progress      // an earlier attempt's progress (heartbeat details)
	OnProgress func(emailapi.Progress) // called every ProgressEvery and at the end
	// Dialed, when set, is the pass's sessions opened ahead (StartDial, same spec): Sync
	// takes them instead of dialling, and lets them go if it does not.
	Dialed *Dialing
}

type counters struct {
	found, transferred, skipped, quarantined, deleted, flags, bytes atomic.Int64
	recopied                                                        atomic.Int64
	mu                                                              sync.Mutex
	errors                                                          map[string]int64
}

func (c *counters) addError(class string, n int64) {
	c.mu.Lock()
	if c.errors == nil {
		c.errors = map[string]int64{}
	}
	c.errors[class] += n
	c.mu.Unlock()
}

func (c *counters) snapshot() emailapi.Counters {
	c.mu.Lock()
	errs := make(map[string]int64, len(c.errors))
	for k, v := range c.errors {
		errs[k] = v
	}
	c.mu.Unlock()
	return emailapi.Counters{Found: c.found.Load(), Transferred: c.transferred.Load(), Skipped: c.skipped.Load(),
		Quarantined: c.quarantined.Load(), Deleted: c.deleted.Load(), FlagsUpdated: c.flags.Load(),
		BytesTransferred: c.bytes.Load(), ErrorsByClass: errs, Recopied: c.recopied.Load()}
}

func (c *counters) restore(s emailapi.Counters) {
	c.transferred.Store(s.Transferred)
	c.quarantined.Store(s.Quarantined)
	c.deleted.Store(s.Deleted)
	c.recopied.Store(s.Recopied)
	c.flags.Store(s.FlagsUpdated)
	c.bytes.Store(s.BytesTransferred)
	for k, v := range s.ErrorsByClass {
		c.addError(k, v)
	}
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.Default()
	}
	return e.Logger
}

func (e *Engine) batchMessages() int {
	if e.BatchMessages > 0 {
		return e.BatchMessages
	}
	return DefaultBatchMessages
}

func (e *Engine) batchBytes() int64 {
	if e.BatchBytes > 0 {
		return e.BatchBytes
	}
	return DefaultBatchBytes
}

// endpointConfig turns a contract Endpoint into a connection configuration.
func endpointConfig(ep emailapi.Endpoint) imapx.Config {
	return imapx.Config{Addr: ep.Addr, Security: ep.Security, CAFile: ep.CAFile, InsecureSkipVerify: ep.InsecureSkipVerify,
		User: ep.User, AuthUser: ep.AuthUser, Auth: ep.Auth}
}

// validate checks a spec before anything is dialled.
func validateSpec(spec emailapi.MailboxSpec) (*folders.Filter, error) {
	if err := validateSource(spec); err != nil { // sourceopen.go: IMAP and file source types
		return nil, &SpecError{err}
	}
	if spec.MailboxID <= 0 {
		return nil, &SpecError{errors.New("mailbox id is missing")}
	}
	if err := endpointConfig(spec.Dest).Validate(); err != nil {
		return nil, &SpecError{fmt.Errorf("destination endpoint: %w", err)}
	}
	if spec.Since != nil && spec.Before != nil && !spec.Since.Before(*spec.Before) {
		return nil, &SpecError{errors.New("age window: since must be before before")}
	}
	if err := validNamespaces(spec.Namespaces); err != nil {
		return nil, &SpecError{err}
	}
	f, err := folders.NewFilter(spec.Include, spec.Exclude)
	if err == nil {
		err = f.SkipSpecialUse(spec.SkipSpecialUse)
	}
	if err == nil {
		err = f.AddRenames(spec.Renames)
	}
	if err != nil {
		return nil, &SpecError{err}
	}
	return f, nil
}

func windowOf(spec emailapi.MailboxSpec) Window {
	var w Window
	if spec.Since != nil {
		w.Since = *spec.Since
	}
	if spec.Before != nil {
		w.Before = *spec.Before
	}
	return w
}

// session is a dialled pair of accounts.
type session struct {
	src       Source
	srcC      *imapx.Client
	dst       *dest
	closed    bool
	srcFolder string      // the source folder open on src, "" if none
	srcState  FolderState // its state when opened
	reading   *destReader // read-back still running on dst's control connection (readback.go)
}

// timeline records when each side's connection came up, greeted and logged in.
func (s *session) timeline(tl *timeline) {
	if s.srcC != nil {
		tm := s.srcC.Timing
		tl.at("src_dial", tm.Start)
		tl.at("src_connected", tm.Connected)
		tl.at("src_greeted", tm.Greeted)
		tl.at("src_logged_in", tm.LoggedIn)
	}
	if s.dst != nil {
		tm := s.dst.c.Timing
		tl.at("dst_connected", tm.Connected)
		tl.at("dst_greeted", tm.Greeted)
		tl.at("dst_logged_in", tm.LoggedIn)
	}
}

func (s *session) close() {
	if s == nil || s.closed {
		return
	}
	s.closed = true
	s.settleReads()
	// Both sides log out at once: a LOGOUT waits for its answer, a round trip each.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.dst != nil {
			s.dst.Close()
		}
	}()
	if s.src != nil {
		s.src.Close()
	}
	<-done
}

// creds holds both sides' resolved secrets for one pass; never logged.
type creds struct{ src, dst imapx.Credentials }

func (e *Engine) resolve(ctx context.Context, spec emailapi.MailboxSpec) (creds, error) {
	var c creds
	if e.Credentials == nil {
		return c, &CredentialsError{Ref: spec.Source.CredentialsRef, Err: errors.New("no credentials resolver")}
	}
	var err error
	if needsSourceCredentials(spec) || spec.Source.CredentialsRef != "" {
		if c.src, err = e.Credentials(ctx, spec.Source.CredentialsRef); err != nil {
			return c, &CredentialsError{Side: "source", Ref: spec.Source.CredentialsRef, Err: err}
		}
	}
	if c.dst, err = e.Credentials(ctx, spec.Dest.CredentialsRef); err != nil {
		return c, &CredentialsError{Side: "destination", Ref: spec.Dest.CredentialsRef, Err: err}
	}
	return c, nil
}

// dial opens a source and a destination connection.
func (e *Engine) dial(ctx context.Context, spec emailapi.MailboxSpec, cr creds) (*session, error) {
	return e.dialSides(ctx, spec, cr, false)
}

// dialPlan opens a pass's planning session: both sides list their folders first, and where a
// server keeps what is pipelined behind a LOGIN the listing goes out with it (behind.go).
func (e *Engine) dialPlan(ctx context.Context, spec emailapi.MailboxSpec, cr creds) (*session, error) {
	return e.dialSides(ctx, spec, cr, true)
}

func (e *Engine) dialSides(ctx context.Context, spec emailapi.MailboxSpec, cr creds, planning bool) (*session, error) {
	// Both logins at once: each costs a round trip or three and an authentication.
	var dst *dest
	var dstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		var dc *imapx.Client
		var nsq *nsQuery
		var ahead *listAhead
		var err error
		if planning {
			dc, nsq, ahead, err = dialPlanning(ctx, endpointConfig(spec.Dest), cr.dst)
		} else {
			dc, err = imapx.Dial(ctx, endpointConfig(spec.Dest), cr.dst)
		}
		if err != nil {
			dstErr = fmt.Errorf("destination: %w", err)
			return
		}
		if dst, err = newDest(ctx, dc, cr.dst, nsq); err != nil {
			dc.Logout()
			dstErr = fmt.Errorf("destination: %w", err)
			return
		}
		dst.ahead = ahead
	}()
	src, sc, err := e.dialSource(ctx, spec, cr.src, planning) // sourceopen.go: IMAP or a file source
	<-done
	if err != nil {
		if dst != nil {
			dst.Close()
		}
		return nil, fmt.Errorf("source: %w", err)
	}
	if dstErr != nil {
		src.Close()
		return nil, dstErr
	}
	return &session{src: src, srcC: sc, dst: dst}, nil
}

// plan is the folder mapping of a pass.
type plan struct {
	mappings   []folders.Mapping
	status     map[string]SourceFolder // by source name
	destList   []folders.Folder
	destStatus map[string]SourceFolder    // destination folders with their status, by name
	outside    []emailapi.NamespaceFolder // source folders of other users and shared ones, left out
	destOnly   []emailapi.DestOnlyFolder  // destination folders no source folder maps to

	srcListed, dstListed time.Time // when each side's listing came (the pass's timeline)
}

func (e *Engine) plan(ctx context.Context, s *session, spec emailapi.MailboxSpec, filter *folders.Filter) (*plan, error) {
	// With status: one LIST-STATUS gives every destination folder's count, which a pass
	// compares with the ledger's claims (destcheck.go). Both sides list at once.
	var df []SourceFolder
	var dstErr error
	var srcListed, dstListed time.Time
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		ahead := s.dst.ahead
		s.dst.ahead = nil
		if df, dstErr = listFoldersAhead(ctx, s.dst.c, ahead, true); dstErr == nil {
			_, _, dstErr = s.dst.nsq.get() // answered by now: sent before the LIST
		}
		dstListed = time.Now()
	}()
	sf, err := s.src.Folders(ctx)
	srcListed = time.Now()
	<-listed
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if dstErr != nil {
		return nil, fmt.Errorf("destination: %w", dstErr)
	}
	p := &plan{status: map[string]SourceFolder{}, destStatus: map[string]SourceFolder{}, srcListed: srcListed, dstListed: dstListed}
	src := make([]folders.Folder, 0, len(sf))
	for _, f := range sf {
		if kind := sourceNamespace(s.src, f.Name); kind != folders.NamespacePersonal && !slices.Contains(spec.Namespaces, kind) {
			p.outside = append(p.outside, emailapi.NamespaceFolder{Name: f.Name, Namespace: kind, Messages: f.Messages})
			continue
		}
		src = append(src, f.Folder)
		p.status[f.Name] = f
	}
	for _, f := range df {
		p.destList = append(p.destList, f.Folder)
		p.destStatus[f.Name] = f
	}
	m := folders.NewMapper(s.src.Namespace(), s.dst.namespace(), spec.FolderMap, filter, p.destList)
	p.mappings = m.Map(src)
	p.destOnly = destOnlyFolders(s.dst, df, p.mappings)
	if err := e.staleFolders(ctx, spec.MailboxID, sf, p.destOnly); err != nil {
		return nil, err
	}
	return p, nil
}

// group is every source folder landing in one destination folder; one worker handles a group
// so appends and mirror deletes in a destination folder never race.
type group struct {
	dest     string
	mappings []folders.Mapping
	size     int64
	ok       bool // every folder succeeded so far (mirror deletes extras only then)
	// extra: messages in the destination folder that no ledger row claims (the user's own,
	// early deliveries, another tool's), as the pass last knew it.
	extra atomic.Int64
}

func groupByDest(p *plan) []*group {
	by := map[string]*group{}
	var out []*group
	for _, m := range p.mappings {
		k := m.Dest
		if strings.EqualFold(k, "INBOX") {
			k = "INBOX"
		}
		g := by[k]
		if g == nil {
			g = &group{dest: m.Dest}
			by[k] = g
			out = append(out, g)
		}
		g.mappings = append(g.mappings, m)
		g.size += p.status[m.Source.Name].Messages
	}
	// Biggest first, so the last worker does not start the largest folder at the end.
	sort.SliceStable(out, func(i, j int) bool { return out[i].size > out[j].size })
	return out
}

// errorClass names an error for ErrorsByClass.
func errorClass(err error) string {
	if c := imapx.ClassOf(err); c != "" {
		return string(c)
	}
	var se *SpecError
	if errors.As(err, &se) {
		return "bad_spec"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "cancelled"
	}
	return "internal"
}

// minus returns the sorted a without the members of b.
func minus(a []uint32, b map[uint32]bool) []uint32 {
	out := a[:0:0]
	for _, v := range a {
		if !b[v] {
			out = append(out, v)
		}
	}
	return out
}

func sortedFlags(fs []string) []string {
	out := slices.Clone(fs)
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return slices.CompactFunc(out, strings.EqualFold)
}

// flagDiff returns what to add and remove to go from old to new (case-insensitive).
func flagDiff(old, new []string) (add, del []string) {
	has := func(set []string, f string) bool {
		return slices.ContainsFunc(set, func(x string) bool { return strings.EqualFold(x, f) })
	}
	for _, f := range new {
		if !has(old, f) {
			add = append(add, f)
		}
	}
	for _, f := range old {
		if !has(new, f) {
			del = append(del, f)
		}
	}
	return sortedFlags(add), sortedFlags(del)
}
