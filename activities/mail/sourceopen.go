package mail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/eml"
	"github.com/cutover/cutover/activities/mail/sources/maildir"
	"github.com/cutover/cutover/activities/mail/sources/mbox"
	"github.com/cutover/cutover/activities/mail/sources/pst"
	"github.com/cutover/cutover/activities/mail/sources/tgz"
	"github.com/cutover/cutover/activities/mail/sources/zimbra"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// This file connects the file-based source types (pst, mbox, eml, tgz, zimbra, dovecot) to the engine: which spec is a
// file source, how it is validated and opened, and what its run rows are called.
//
//	pst      SourcePath: an uploaded .pst, converted by readpst (runs pst_extract, pst_upload)
//	mbox     SourcePath: an mbox file or a directory tree of them (variant from the extension)
//	eml      SourcePath: a directory of .eml files, a .zip of them, or one .eml
//	tgz      SourcePath: a tarball of a Maildir or of an eml tree (run tgz_import)
//	zimbra   SourcePath: a "?fmt=tgz" export on disk, or none: the export is fetched from
//	         https://<Source.Addr>/home/<Source.User>/?fmt=tgz with the vault's password
//	         (runs tgz_export then tgz_import, tool zmmailbox)
//	dovecot  SourcePath: the account's Maildir on the worker host (tool doveadm); or none: the
//	         account is read over IMAP, typically as "user*master" (Source.User) or with
//	         Source.AuthUser = the master user
//
// imap and imap_oauth are IMAP accounts.

// isFileSource reports whether spec's source is read from files rather than an IMAP server.
func isFileSource(spec emailapi.MailboxSpec) bool {
	switch spec.SourceType {
	case model.SourcePST, model.SourceMbox, model.SourceEML, model.SourceTgz, model.SourceZimbra:
		return true
	case model.SourceDovecot:
		return spec.SourcePath != ""
	}
	return false
}

// needsSourceCredentials reports whether the source side logs in anywhere.
func needsSourceCredentials(spec emailapi.MailboxSpec) bool {
	if !isFileSource(spec) {
		return true
	}
	return spec.SourceType == model.SourceZimbra && spec.SourcePath == ""
}

// validateSource checks the source half of a spec.
func validateSource(spec emailapi.MailboxSpec) error {
	switch spec.SourceType {
	case "", model.SourceIMAP, model.SourceIMAPOAuth, model.SourceDovecot:
		if isFileSource(spec) {
			return nil
		}
		if err := endpointConfig(spec.Source).Validate(); err != nil {
			return fmt.Errorf("source endpoint: %w", err)
		}
		if spec.SourceType == model.SourceIMAPOAuth && !oauthMech(spec.Source.Auth) {
			return fmt.Errorf("source type imap_oauth needs auth xoauth2 or oauthbearer, not %q", spec.Source.Auth)
		}
		return nil
	case model.SourcePST, model.SourceMbox, model.SourceEML, model.SourceTgz:
		if spec.SourcePath == "" {
			return fmt.Errorf("source type %s needs source_path", spec.SourceType)
		}
		return nil
	case model.SourceZimbra:
		if spec.SourcePath == "" && (spec.Source.Addr == "" || spec.Source.User == "") {
			return errors.New("source type zimbra needs source_path (an export on disk) or the source host and user to fetch it from")
		}
		return nil
	}
	return fmt.Errorf("unknown source type %q", spec.SourceType)
}

func oauthMech(auth string) bool {
	a := strings.ToLower(auth)
	return a == "xoauth2" || a == "oauthbearer"
}

// passRunKind names a pass's run row by source type: uploads of converted files are
// imap-upload (a PST's first upload is pst_upload, a tarball's tgz_import), a Dovecot account
// read from disk is doveadm, IMAP accounts are imapsync.
func passRunKind(spec emailapi.MailboxSpec, rt model.RunType) (model.RunType, model.Tool) {
	switch spec.SourceType {
	case model.SourcePST:
		if rt == model.RunInitial {
			rt = model.RunPSTUpload
		}
		return rt, model.ToolIMAPUpload
	case model.SourceTgz:
		if rt == model.RunInitial {
			rt = model.RunTgzImport
		}
		return rt, model.ToolIMAPUpload
	case model.SourceZimbra:
		if rt == model.RunInitial {
			rt = model.RunTgzImport
		}
		return rt, model.ToolZmmailbox
	case model.SourceMbox, model.SourceEML:
		return rt, model.ToolIMAPUpload
	case model.SourceDovecot:
		return rt, model.ToolDoveadm
	}
	return rt, model.ToolIMAPSync
}

// dialSource opens the source side of a session: an IMAP connection, or a file source (its
// listing shared by the pass's folder workers).
func (e *Engine) dialSource(ctx context.Context, spec emailapi.MailboxSpec, cred imapx.Credentials, planning bool) (Source, *imapx.Client, error) {
	if !isFileSource(spec) {
		var sc *imapx.Client
		var nsq *nsQuery
		var ahead *listAhead
		var err error
		if planning { // behind.go: the listing behind the LOGIN where the server keeps it
			sc, nsq, ahead, err = dialPlanning(ctx, endpointConfig(spec.Source), cred)
		} else {
			sc, err = imapx.Dial(ctx, endpointConfig(spec.Source), cred)
		}
		if err != nil {
			return nil, nil, err
		}
		src, err := newIMAPSource(ctx, sc, nsq)
		if err != nil {
			sc.Logout()
			return nil, nil, err
		}
		src.ahead = ahead
		src.idle = e.IdleTimeout
		return newGmailSource(src, spec.MailboxID), sc, nil // gmail.go: inert unless [Gmail]/ folders
	}
	snap, id, err := e.fileSnapshot(ctx, spec, cred)
	if err != nil {
		return nil, nil, err
	}
	return newFileSource(snap, id), nil, nil
}

// SourceError is a source file that cannot be read as its type says (non-retryable,
// sources.ErrTypeBadSource); it names the file and the offset.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "source: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// snapCache shares a file source's listing between the folder workers of a pass and across
// reconnects: unpacking, running readpst and reading every header happen once per file
// content, not once per connection.
var snapCache = struct {
	sync.Mutex
	m map[string]*snapEntry
}{m: map[string]*snapEntry{}}

type snapEntry struct {
	once sync.Once
	snap *sources.Snapshot
	id   string
	err  error
	used time.Time
}

// snapTTL is how long an unused listing stays cached.
const snapTTL = 10 * time.Minute

func cached(key string, load func() (*sources.Snapshot, string, error)) (*sources.Snapshot, string, error) {
	snapCache.Lock()
	now := time.Now()
	for k, e := range snapCache.m {
		if now.Sub(e.used) > snapTTL {
			delete(snapCache.m, k)
		}
	}
	e := snapCache.m[key]
	if e == nil {
		e = &snapEntry{}
		snapCache.m[key] = e
	}
	e.used = now
	snapCache.Unlock()
	e.once.Do(func() { e.snap, e.id, e.err = load() })
	if e.err != nil {
		snapCache.Lock()
		if snapCache.m[key] == e {
			delete(snapCache.m, key) // a failure is not remembered: the retry tries again
		}
		snapCache.Unlock()
	}
	return e.snap, e.id, e.err
}

// fileKey identifies a file's content for the cache.
func fileKey(kind, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s|%s|%d|%d", kind, abs, fi.Size(), fi.ModTime().UnixNano()), nil
}

// fileSnapshot lists a file source; id names its content for UIDVALIDITY.
func (e *Engine) fileSnapshot(ctx context.Context, spec emailapi.MailboxSpec, cred imapx.Credentials) (*sources.Snapshot, string, error) {
	kind, path := spec.SourceType, spec.SourcePath
	if kind == model.SourceZimbra && path == "" {
		p, err := e.fetchZimbra(ctx, spec, cred)
		if err != nil {
			return nil, "", err
		}
		path = p
	}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, "", &SourceError{fmt.Errorf("%s source %s: %w", kind, path, err)}
		}
	}
	if kind == model.SourceDovecot {
		// A live account: never cached; Dovecot's own UIDs keep the keys stable.
		root, ok := maildir.Find(path)
		if !ok {
			return nil, "", &SourceError{fmt.Errorf("dovecot source %s: no Maildir found", path)}
		}
		snap, err := maildir.Read(root)
		if err != nil {
			return nil, "", wrapSourceErr(err)
		}
		return snap, "dovecot|" + root, nil
	}
	key, err := fileKey(string(kind), path)
	if err != nil {
		return nil, "", &SourceError{err}
	}
	snap, id, err := cached(key, func() (*sources.Snapshot, string, error) {
		snap, err := e.openFile(ctx, spec, kind, path)
		return snap, key, err
	})
	if err != nil {
		return nil, "", wrapSourceErr(err)
	}
	return snap, id, nil
}

func wrapSourceErr(err error) error {
	if sources.IsFormatError(err) {
		return &SourceError{err}
	}
	return err
}

// openFile reads a file source of the given kind.
func (e *Engine) openFile(ctx context.Context, spec emailapi.MailboxSpec, kind model.SourceType, path string) (*sources.Snapshot, error) {
	work := sources.WorkRoot()
	var lim sources.Limits
	switch kind {
	case model.SourceMbox:
		return mbox.Open(path, mbox.Auto)
	case model.SourceEML:
		return eml.Open(path, work, lim)
	case model.SourceTgz:
		snap, _, err := tgz.Open(path, work, lim)
		return snap, err
	case model.SourceZimbra:
		return zimbra.Open(path, work, lim)
	case model.SourcePST:
		snap, ext, fresh, err := pst.Open(ctx, path, work)
		if fresh || err != nil {
			e.recordToolRun(ctx, spec, model.RunPSTExtract, model.ToolReadPST, "pst_extract/"+path, err, ext)
		}
		return snap, err
	}
	return nil, fmt.Errorf("source type %q is not a file source", kind)
}

// recordToolRun records a run of a conversion tool (readpst, a Zimbra export) as its own
// migration_runs row; a retried activity updates the same row.
func (e *Engine) recordToolRun(ctx context.Context, spec emailapi.MailboxSpec, rt model.RunType, tool model.Tool, what string, runErr error, stats any) {
	if e.Store == nil || spec.JobID == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	b, _ := json.Marshal(stats)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{}
	}
	status, code := model.RunSuccess, int32(0)
	if runErr != nil {
		status, code = model.RunFailed, 1
		m["error"] = runErr.Error()
	}
	sum := sha256.Sum256([]byte(what))
	key := fmt.Sprintf("%s/%d/%s", rt, spec.MailboxID, hex.EncodeToString(sum[:8]))
	if runErr == nil {
		key += "/" + strconv.FormatInt(time.Now().UnixNano(), 36) // each fresh conversion is its own run
	}
	mb := spec.MailboxID
	now := time.Now()
	b, _ = json.Marshal(m)
	if _, err := e.Store.RecordRun(ctx, store.Run{JobID: spec.JobID, MailboxID: &mb, RunType: rt, Tool: tool,
		Status: status, ExitCode: &code, Stats: b, StartedAt: now, FinishedAt: &now, IdempotencyKey: &key}); err != nil {
		e.logger().Error("record tool run", "run_type", rt, "tool", tool, "mailbox_id", spec.MailboxID, "err", err)
	}
}

// zimbraFetchTTL is how long a fetched export serves a pass's workers before a new pass
// fetches again.
const zimbraFetchTTL = 10 * time.Minute

var zimbraFetches = struct {
	sync.Mutex
	m map[string]*zimbraFetch
}{m: map[string]*zimbraFetch{}}

type zimbraFetch struct {
	mu   sync.Mutex
	path string
	at   time.Time
}

// fetchZimbra downloads the account's "?fmt=tgz" export over HTTPS (tool zmmailbox, run
// tgz_export) into the work directory, once per pass.
func (e *Engine) fetchZimbra(ctx context.Context, spec emailapi.MailboxSpec, cred imapx.Credentials) (string, error) {
	key := fmt.Sprintf("%d|%s|%s", spec.MailboxID, spec.Source.Addr, spec.Source.User)
	zimbraFetches.Lock()
	f := zimbraFetches.m[key]
	if f == nil {
		f = &zimbraFetch{}
		zimbraFetches.m[key] = f
	}
	zimbraFetches.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path != "" && time.Since(f.at) < zimbraFetchTTL {
		if _, err := os.Stat(f.path); err == nil {
			return f.path, nil
		}
	}
	start := time.Now()
	path, n, err := downloadZimbra(ctx, spec, cred)
	e.recordToolRun(ctx, spec, model.RunTgzExport, model.ToolZmmailbox, "zimbra/"+key, err,
		map[string]any{"bytes": n, "duration_seconds": time.Since(start).Seconds(), "host": spec.Source.Addr})
	if err != nil {
		return "", err
	}
	if f.path != "" && f.path != path {
		_ = os.Remove(f.path)
	}
	f.path, f.at = path, time.Now()
	return path, nil
}

func downloadZimbra(ctx context.Context, spec emailapi.MailboxSpec, cred imapx.Credentials) (string, int64, error) {
	ep := spec.Source
	scheme := "https"
	if strings.EqualFold(ep.Security, "plain") {
		scheme = "http"
	}
	u := url.URL{Scheme: scheme, Host: ep.Addr, Path: "/home/" + ep.User + "/", RawQuery: "fmt=tgz&auth=ba"}
	op := "zimbra export " + u.Redacted()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if scheme == "https" {
		tc, err := endpointConfig(ep).TLSConfig()
		if err != nil {
			return "", 0, &imapx.Error{Class: imapx.ClassTLS, Op: op, Err: err}
		}
		tr.TLSClientConfig = tc
	}
	hc := &http.Client{Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", 0, &SpecError{fmt.Errorf("%s: %w", op, err)}
	}
	login := ep.User
	if ep.AuthUser != "" {
		login = ep.AuthUser // an admin exporting the user's mailbox
	}
	req.SetBasicAuth(login, cred.Password)
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, &imapx.Error{Class: imapx.ClassConnect, Op: op, Err: err}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		// Zimbra's answer for a mailbox without items: an empty export.
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", 0, &imapx.Error{Class: imapx.ClassAuth, Op: op, Text: resp.Status}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		text := resp.Status
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			text += "; Retry-After: " + ra
		}
		return "", 0, &imapx.Error{Class: imapx.ClassThrottled, Op: op, Text: text}
	case resp.StatusCode == http.StatusNotFound:
		return "", 0, &SpecError{fmt.Errorf("%s: %s (no such account?)", op, resp.Status)}
	case resp.StatusCode != http.StatusOK:
		return "", 0, &imapx.Error{Class: imapx.ClassConnect, Op: op, Text: resp.Status}
	}
	dir := filepath.Join(sources.WorkRoot(), "zimbra-fetch")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(dir, fmt.Sprintf("mailbox-%d-*.tgz", spec.MailboxID))
	if err != nil {
		return "", 0, err
	}
	n, err := io.Copy(tmp, io.LimitReader(resp.Body, sources.DefaultMaxTotalBytes+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", n, &imapx.Error{Class: imapx.ClassConnect, Op: op, Err: err}
	}
	if n > sources.DefaultMaxTotalBytes {
		os.Remove(tmp.Name())
		return "", n, &SourceError{fmt.Errorf("%s: export larger than %d bytes: %w", op, int64(sources.DefaultMaxTotalBytes), sources.ErrLimit)}
	}
	return tmp.Name(), n, nil
}

// largerThan counts the current folder's messages above limit bytes (preflight of a file
// source, whose sizes are in its listing).
func largerThan(ctx context.Context, src Source, limit int64) (int, error) {
	metas, err := src.FlagChanges(ctx, ^uint32(0), 0) // sizes without reading headers
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range metas {
		if m.Size > limit {
			n++
		}
	}
	return n, nil
}

// sourceWarnings are a file source's notes for the preflight report: items that are not mail
// (contacts, calendars), files that are not messages, and items that will be quarantined.
func sourceWarnings(src Source) []string {
	fs, ok := src.(*fileSource)
	if !ok {
		return nil
	}
	out := append([]string(nil), fs.snap.Warnings...)
	if n := len(fs.snap.Quarantined); n > 0 {
		out = append(out, fmt.Sprintf("%d item(s) of the source cannot be converted and will be quarantined", n))
	}
	return out
}

func isSourceError(err error) bool {
	var se *SourceError
	return errors.As(err, &se)
}
