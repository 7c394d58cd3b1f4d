package mail

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/pst/psttest"
	"github.com/cutover/cutover/activities/mail/sources/sourcetest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/activities/vault/vaulttest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/gate"
)

// fileEnv is a control database, one destination Dovecot with a user per case, and an engine.
type fileEnv struct {
	t     testing.TB
	db    *store.DB
	vault *vault.Vault
	dst   *testenv.Dovecot
	job   store.Job
	eng   *Engine
	acts  *Activities
	users int
}

const fileDestPassword = "dest-pw"

func newFileEnv(t testing.TB, users int) *fileEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL, Dovecot and readpst")
	}
	t.Setenv(sources.EnvWorkDir, t.TempDir())
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	v, _ := vaulttest.New(t, db.Store)
	job, err := db.CreateJob(ctx, store.Job{TenantID: 1, Domain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	var us []testenv.User
	for i := range users {
		us = append(us, testenv.User{Name: fmt.Sprintf("user%d", i), Password: fileDestPassword})
	}
	// The destination speaks '/' so folder names compare as they are, and stores folders as
	// directories (LAYOUT=fs) so a PST folder named "Content.Filter" is a valid name.
	dst := testenv.StartDovecot(t, us, testenv.WithDovecotConfig("namespace inbox {", "  separator = /", "}",
		"mail_location = maildir:~/Maildir:LAYOUT=fs"))
	e := &fileEnv{t: t, db: db, vault: v, dst: dst, job: job}
	e.acts = &Activities{DB: db, Vault: v, Logger: testLogger()}
	e.eng = e.acts.engine()
	return e
}

// mailbox registers a mailbox of the given source type landing in the next destination user.
func (e *fileEnv) mailbox(typ model.SourceType, path string) emailapi.MailboxSpec {
	e.t.Helper()
	ctx := context.Background()
	user := fmt.Sprintf("user%d", e.users)
	e.users++
	mb, err := e.db.UpsertMailbox(ctx, store.Mailbox{JobID: e.job.ID, Email: user + "@example.org", SourceType: typ, PSTPath: path})
	if err != nil {
		e.t.Fatal(err)
	}
	ref, err := e.vault.Put(ctx, vault.Secret{Password: fileDestPassword}, &mb.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return emailapi.MailboxSpec{JobID: e.job.ID, MailboxID: mb.ID, Email: mb.Email, SourceType: typ, SourcePath: path,
		Dest: emailapi.Endpoint{Addr: e.dst.Addr(), Security: "plain", User: user, CredentialsRef: ref}}
}

func (e *fileEnv) sync(spec emailapi.MailboxSpec, rt model.RunType) emailapi.PassStats {
	e.t.Helper()
	st, err := e.acts.SyncMailbox(context.Background(), emailapi.PassRequest{Spec: spec, Mode: model.ModeCopy, RunType: rt, Phase: model.PhaseInitialSync})
	if err != nil {
		e.t.Fatalf("sync %s %s: %v", spec.SourceType, spec.SourcePath, err)
	}
	return st
}

func (e *fileEnv) verify(spec emailapi.MailboxSpec, quarantined int64) emailapi.VerifyReport {
	e.t.Helper()
	rep, err := e.acts.VerifyMailbox(context.Background(), spec)
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	if !rep.OK || rep.Missing != 0 || rep.Extra != 0 || rep.FlagDiffs != 0 || rep.DateDiffs != 0 || rep.Quarantined != quarantined {
		var samples []string
		for _, f := range rep.Folders {
			samples = append(samples, f.Samples...)
		}
		e.t.Fatalf("verify: ok=%v missing=%d extra=%d flags=%d dates=%d quarantined=%d (want %d)\n%s", rep.OK, rep.Missing,
			rep.Extra, rep.FlagDiffs, rep.DateDiffs, rep.Quarantined, quarantined, strings.Join(samples, "\n"))
	}
	return rep
}

// destMessage is a message as the destination holds it.
type destMessage struct {
	body  []byte
	flags []string
	date  time.Time
}

// destMessages reads every message of every folder of a destination user.
func (e *fileEnv) destMessages(user string) map[string][]destMessage {
	e.t.Helper()
	c, err := imapclient.DialInsecure(e.dst.Addr(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, fileDestPassword).Wait(); err != nil {
		e.t.Fatal(err)
	}
	ls, err := c.List("", "*", nil).Collect()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]destMessage{}
	for _, l := range ls {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			e.t.Fatal(err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		body := &imap.FetchItemBodySection{Peek: true}
		var seq imap.SeqSet
		seq.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(seq, &imap.FetchOptions{Flags: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range msgs {
			var flags []string
			for _, f := range m.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					flags = append(flags, string(f))
				}
			}
			slices.Sort(flags)
			out[l.Mailbox] = append(out[l.Mailbox], destMessage{body: m.FindBodySection(body), flags: flags, date: m.InternalDate})
		}
	}
	return out
}

func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// requireCorpus checks the destination message by message against the corpus: count per
// folder, identity (the bytes, line endings aside: IMAP serves CRLF), flags and INTERNALDATE.
func (e *fileEnv) requireCorpus(user string, corpus []sourcetest.Message, stored func(sourcetest.Message) []byte) {
	e.t.Helper()
	got := e.destMessages(user)
	want := map[string][]sourcetest.Message{}
	for folder, ms := range sourcetest.ByFolder(corpus) {
		want[destFolderOf(folder)] = ms
	}
	for folder, ms := range want {
		dm := got[folder]
		if len(dm) != len(ms) {
			e.t.Errorf("destination %s %q: %d messages, want %d", user, folder, len(dm), len(ms))
			continue
		}
		used := make([]bool, len(dm))
		for _, m := range ms {
			found := false
			for i, d := range dm {
				if used[i] || !bytes.Equal(lf(d.body), lf(stored(m))) {
					continue
				}
				if !slices.Equal(d.flags, m.Flags) || !d.date.Equal(m.Date) {
					e.t.Errorf("destination %s %q: %q has flags %v date %v, want %v %v", user, folder, subject(m.Raw), d.flags, d.date, m.Flags, m.Date)
				}
				used[i], found = true, true
				break
			}
			if !found {
				e.t.Errorf("destination %s %q: %q missing", user, folder, subject(m.Raw))
			}
		}
	}
	for folder, dm := range got {
		if _, ok := want[folder]; !ok && len(dm) > 0 {
			e.t.Errorf("destination %s: unexpected folder %q with %d messages", user, folder, len(dm))
		}
	}
}

// destFolderOf is where the engine's automapper puts a corpus folder: the German "Entwürfe"
// is the Drafts folder.
func destFolderOf(folder string) string {
	if folder == "Entwürfe" {
		return "Drafts"
	}
	return folder
}

func subject(raw []byte) string {
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "Subject:") {
			return strings.TrimSpace(l[8:])
		}
	}
	return "?"
}

func TestFileSourcesIntoDovecot(t *testing.T) {
	corpus := sourcetest.Corpus()
	dir := t.TempDir()
	mk := func(name string, f func(p string) error) string {
		p := filepath.Join(dir, name)
		if err := f(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	emlTree := mk("eml", func(p string) error { return sourcetest.WriteEMLTree(p, corpus) })
	mdir := mk("Maildir", func(p string) error { return sourcetest.WriteMaildir(p, corpus) })
	cases := []struct {
		name   string
		typ    model.SourceType
		path   string
		stored func(sourcetest.Message) []byte
		run    model.RunType
		tool   model.Tool
	}{
		{"mbox tree (mboxrd)", model.SourceMbox, mk("mbox", func(p string) error { return sourcetest.WriteMboxTree(p, corpus, sourcetest.MboxRD) }),
			sourcetest.WithFlagHeaders, model.RunInitial, model.ToolIMAPUpload},
		{"mbox tree (mboxcl2)", model.SourceMbox, mk("mboxcl2", func(p string) error { return sourcetest.WriteMboxTree(p, corpus, sourcetest.MboxCL2) }),
			sourcetest.WithContentLength, model.RunInitial, model.ToolIMAPUpload},
		{"eml directory", model.SourceEML, emlTree, sourcetest.WithFlagHeaders, model.RunInitial, model.ToolIMAPUpload},
		{"eml zip", model.SourceEML, mk("eml.zip", func(p string) error { return sourcetest.Zip(p, emlTree) }), sourcetest.WithFlagHeaders, model.RunInitial, model.ToolIMAPUpload},
		{"tgz of a Maildir", model.SourceTgz, mk("maildir.tgz", func(p string) error { return sourcetest.Tar(p, mdir, "alice/Maildir") }), raw, model.RunTgzImport, model.ToolIMAPUpload},
		{"tgz of an eml tree", model.SourceTgz, mk("eml.tgz", func(p string) error { return sourcetest.Tar(p, emlTree, "") }), sourcetest.WithFlagHeaders, model.RunTgzImport, model.ToolIMAPUpload},
		{"zimbra export file", model.SourceZimbra, mk("zimbra.tgz", func(p string) error {
			return sourcetest.WriteZimbra(p, corpus, sourcetest.ZimbraOptions{Batch: 3, Tags: true})
		}), raw, model.RunTgzImport, model.ToolZmmailbox},
		{"dovecot Maildir on the host", model.SourceDovecot, mdir, raw, model.RunInitial, model.ToolDoveadm},
	}
	e := newFileEnv(t, len(cases))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			spec := e.mailbox(tc.typ, tc.path)
			st := e.sync(spec, model.RunInitial)
			if st.Found != int64(len(corpus)) {
				t.Fatalf("st.Found: want int64(len(corpus)); first pass: found %d transferred %d quarantined %d pending %d, want %d copied",
					st.Found, st.Transferred, st.Quarantined, st.Pending, len(corpus))
			}
			if st.Transferred != int64(len(corpus)) {
				t.Fatalf("st.Transferred: want int64(len(corpus)); first pass: found %d transferred %d quarantined %d pending %d, want %d copied",
					st.Found, st.Transferred, st.Quarantined, st.Pending, len(corpus))
			}
			if st.Quarantined != 0 {
				t.Fatalf("st.Quarantined: want 0; first pass: found %d transferred %d quarantined %d pending %d, want %d copied",
					st.Found, st.Transferred, st.Quarantined, st.Pending, len(corpus))
			}
			if st.Pending != 0 {
				t.Fatalf("st.Pending: want 0; first pass: found %d transferred %d quarantined %d pending %d, want %d copied",
					st.Found, st.Transferred, st.Quarantined, st.Pending, len(corpus))
			}
			e.verify(spec, 0)
			e.requireCorpus(fmt.Sprintf("user%d", i), corpus, tc.stored)

			// A second pass over the same file copies nothing again.
			st = e.sync(spec, model.RunDelta)
			if st.Transferred != 0 {
				t.Fatalf("st.Transferred: want 0; second pass transferred %d, quarantined %d; want nothing",
					st.Transferred, st.Quarantined)
			}
			if st.Quarantined != 0 {
				t.Fatalf("st.Quarantined: want 0; second pass transferred %d, quarantined %d; want nothing",
					st.Transferred, st.Quarantined)
			}
			runs, err := e.db.ListRuns(context.Background(), e.job.ID, spec.MailboxID)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, r := range runs {
				kinds = append(kinds, string(r.RunType)+"/"+string(r.Tool))
			}
			want := string(tc.run) + "/" + string(tc.tool)
			if !slices.Contains(kinds, want) || !slices.Contains(kinds, "verify/verify") {
				t.Errorf("runs %v, want %s and verify/verify", kinds, want)
			}
		})
	}
}

func raw(m sourcetest.Message) []byte { return m.Raw }

// TestPSTQuarantineFlipsGate: a real PST converts and verifies; a damaged one lands readpst's
// failure in quarantine, the pass counts it, and the gate's pst_quarantine check fails.
func TestPSTQuarantineFlipsGate(t *testing.T) {
	if _, err := os.Stat("/usr/bin/readpst"); err != nil {
		testenv.Require(t, "readpst", err)
	}
	e := newFileEnv(t, 2)
	ctx := context.Background()
	facts := func(spec emailapi.MailboxSpec, st emailapi.PassStats) gate.MailboxFacts {
		f := gate.MailboxFacts{Email: spec.Email, Synced: true, Quarantined: st.Quarantined, Pending: st.Pending}
		for _, fs := range st.Folders {
			f.SourceMessages += fs.SourceMessages
			f.DestMessages += fs.DestMessages
			switch fs.SpecialUse {
			case `\Inbox`:
				f.HasInbox, f.InboxSource, f.InboxDest, f.InboxQuarantined = true, fs.SourceMessages, fs.DestMessages, fs.Quarantined
			case `\Sent`:
				f.HasSent, f.SentSource, f.SentDest, f.SentQuarantined = true, fs.SourceMessages, fs.DestMessages, fs.Quarantined
			}
		}
		return f
	}

	good := e.mailbox(model.SourcePST, psttest.Path(t, "outlook.pst"))
	st := e.sync(good, model.RunInitial)
	if st.Transferred != 2 {
		t.Fatalf("st.Transferred: want 2; intact PST: transferred %d quarantined %d, want 2, 0",
			st.Transferred, st.Quarantined)
	}
	if st.Quarantined != 0 {
		t.Fatalf("st.Quarantined: want 0; intact PST: transferred %d quarantined %d, want 2, 0",
			st.Transferred, st.Quarantined)
	}
	e.verify(good, 0)
	if f := gate.Assess(facts(good, st), gate.Thresholds{})[model.CheckPSTQuarantine]; f.Status != model.CheckPass {
		t.Fatalf("intact PST: pst_quarantine %v", f)
	}
	got := e.destMessages("user0")
	if len(got["INBOX"]) != 1 {
		t.Fatalf("len(got[\"INBOX\"]): want 1; intact PST on the destination: %d in INBOX, %d in Recovered_Group2, %+v",
			len(got["INBOX"]), len(got["Recovered_Group2"]), got["INBOX"])
	}
	if len(got["Recovered_Group2"]) != 1 {
		t.Fatalf("len(got[\"Recovered_Group2\"]): want 1; intact PST on the destination: %d in INBOX, %d in Recovered_Group2, %+v",
			len(got["INBOX"]), len(got["Recovered_Group2"]), got["INBOX"])
	}
	if !slices.Equal(got["INBOX"][0].flags, []string{`\Seen`}) {
		t.Fatalf("slices.Equal(got[\"INBOX\"][0].flags, []string{`\\Seen`}) is false; intact PST on the destination: %d in INBOX, %d in Recovered_Group2, %+v",
			len(got["INBOX"]), len(got["Recovered_Group2"]), got["INBOX"])
	}
	if !got["INBOX"][0].date.Equal(time.Date(2007, 4, 29, 22, 27, 33, 0, time.UTC)) {
		t.Fatalf("got[\"INBOX\"][0].date.Equal(time.Date(2007, 4, 29, 22, 27, 33, 0, time.UTC)) is false; intact PST on the destination: %d in INBOX, %d in Recovered_Group2, %+v",
			len(got["INBOX"]), len(got["Recovered_Group2"]), got["INBOX"])
	}

	bad := e.mailbox(model.SourcePST, psttest.Damaged(t, t.TempDir()))
	st = e.sync(bad, model.RunInitial)
	if st.Transferred != 1 {
		t.Fatalf("st.Transferred: want 1; damaged PST: transferred %d quarantined %d, want 1, 1",
			st.Transferred, st.Quarantined)
	}
	if st.Quarantined != 1 {
		t.Fatalf("st.Quarantined: want 1; damaged PST: transferred %d quarantined %d, want 1, 1",
			st.Transferred, st.Quarantined)
	}
	rep := e.verify(bad, 1)
	_ = rep
	if f := gate.Assess(facts(bad, st), gate.Thresholds{})[model.CheckPSTQuarantine]; f.Status != model.CheckFail {
		t.Fatalf("damaged PST: pst_quarantine %v, want fail", f)
	}
	qs, err := e.db.ListMailQuarantine(ctx, bad.MailboxID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 {
		t.Fatalf("len(qs) = %v, want 1; quarantine rows %+v", len(qs), qs)
	}
	if qs[0].ErrorClass != "unreadable" {
		t.Fatalf("qs[0].ErrorClass = %v, want \"unreadable\"; quarantine rows %+v", qs[0].ErrorClass, qs)
	}
	if !strings.Contains(qs[0].Reason, "readpst") {
		t.Fatalf("strings.Contains(qs[0].Reason, \"readpst\") is false; quarantine rows %+v", qs)
	}
	runs, err := e.db.ListRuns(ctx, e.job.ID, bad.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range runs {
		kinds = append(kinds, string(r.RunType)+"/"+string(r.Tool)+"/"+string(r.Status))
	}
	slices.Sort(kinds) // readpst runs inside the pass that needs it first: its row starts later
	if !slices.Equal(kinds, []string{"pst_extract/readpst/success", "pst_upload/imap-upload/success", "verify/verify/success"}) {
		t.Fatalf("runs %v", kinds)
	}
	mb, err := e.db.GetMailbox(ctx, bad.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if mb.Status != model.MailboxQuarantine {
		t.Fatalf("mailbox status %s, want quarantine", mb.Status)
	}
}

func TestMalformedSourceIsPermanent(t *testing.T) {
	e := newFileEnv(t, 1)
	p := filepath.Join(t.TempDir(), "broken.mbox")
	if err := os.WriteFile(p, []byte("Subject: no From_ line\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := e.mailbox(model.SourceMbox, p)
	_, err := e.acts.SyncMailbox(context.Background(), emailapi.PassRequest{Spec: spec, Mode: model.ModeCopy, RunType: model.RunInitial})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != "BadSource" || !ae.NonRetryable() {
		t.Fatalf("err = %v, want a non-retryable BadSource", err)
	}
	if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("error %q does not name the file and offset", err)
	}
}

// TestDovecotSources reads one account both ways the dovecot source type allows: its Maildir on
// this host (Dovecot's UIDs kept: a delta pass after a delivery copies exactly it), and over
// IMAP as the master user.
func TestDovecotSources(t *testing.T) {
	e := newFileEnv(t, 2)
	ctx := context.Background()
	corpus := sourcetest.Corpus()
	src := testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: "alice-pw"}},
		testenv.WithMasterUser("master", "master-pw"), testenv.WithDovecotConfig("namespace inbox {", "  separator = /", "}"))
	if err := sourcetest.WriteMaildir(src.Maildir("alice"), corpus); err != nil {
		t.Fatal(err)
	}
	src.FixOwnership(t)
	// Let Dovecot index the account so dovecot-uidlist holds its UIDs.
	if out, err := src.Doveadm(t, "mailbox", "status", "-u", "alice", "-t", "messages", "*"); err != nil {
		t.Fatalf("err: want nil; doveadm: %q %v", out, err)
	} else if strings.TrimSpace(out) != fmt.Sprintf("messages=%d", len(corpus)) {
		t.Fatalf("strings.TrimSpace(out) = %v, want %v (fmt.Sprintf(\"messages=%%d\", len(corpus))); doveadm: %q %v",
			strings.TrimSpace(out), fmt.Sprintf("messages=%d", len(corpus)), out, err)
	}

	t.Run("maildir", func(t *testing.T) {
		e.t = t
		spec := e.mailbox(model.SourceDovecot, src.Maildir("alice"))
		if st := e.sync(spec, model.RunInitial); st.Transferred != int64(len(corpus)) {
			t.Fatalf("transferred %d", st.Transferred)
		}
		e.verify(spec, 0)
		// A delivery on the live source: the next pass copies exactly that message.
		c, err := imapx.Dial(ctx, imapx.Config{Addr: src.Addr(), Security: "plain", User: "alice"}, imapx.Credentials{Password: "alice-pw"})
		if err != nil {
			t.Fatal(err)
		}
		d := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		msg := []byte("From: late@example.com\r\nSubject: Late delivery\r\nMessage-ID: <late@example.com>\r\nDate: " + d.Format(time.RFC1123Z) + "\r\n\r\nlate\r\n")
		cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Time: d})
		_, _ = cmd.Write(msg)
		_ = cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		c.Logout()
		if st := e.sync(spec, model.RunDelta); st.Transferred != 1 {
			t.Fatalf("delta pass transferred %d, want 1", st.Transferred)
		}
		e.verify(spec, 0)
	})
	t.Run("imap master user", func(t *testing.T) {
		e.t = t
		spec := e.mailbox(model.SourceDovecot, "")
		ref, err := e.vault.Put(ctx, vault.Secret{Password: "master-pw"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		spec.Source = emailapi.Endpoint{Addr: src.Addr(), Security: "plain", User: "alice*master", CredentialsRef: ref}
		st := e.sync(spec, model.RunInitial)
		if st.Transferred != int64(len(corpus))+1 {
			t.Fatalf("transferred %d, want %d", st.Transferred, len(corpus)+1)
		}
		e.verify(spec, 0)
	})
}

// TestZimbraFetchedOverHTTPS: the export is fetched from Zimbra's REST interface with the
// vault's credentials (an admin exporting the user's mailbox), imported and verified; a wrong
// password is AuthFailed.
func TestZimbraFetchedOverHTTPS(t *testing.T) {
	e := newFileEnv(t, 2)
	ctx := context.Background()
	corpus := sourcetest.Corpus()
	export := filepath.Join(t.TempDir(), "export.tgz")
	if err := sourcetest.WriteZimbra(export, corpus, sourcetest.ZimbraOptions{Batch: 4, Tags: true}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if r.URL.Path != "/home/alice@example.org/" || r.URL.Query().Get("fmt") != "tgz" {
			http.NotFound(w, r)
			return
		}
		if !ok || u != "admin@example.org" || p != "zimbra-admin-pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/x-compressed-tar")
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")

	good, err := e.vault.Put(ctx, vault.Secret{Password: "zimbra-admin-pw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := e.mailbox(model.SourceZimbra, "")
	spec.Source = emailapi.Endpoint{Addr: addr, Security: "tls", CAFile: ca, User: "alice@example.org", AuthUser: "admin@example.org", CredentialsRef: good}
	st := e.sync(spec, model.RunInitial)
	if st.Transferred != int64(len(corpus)) {
		t.Fatalf("st.Transferred: want int64(len(corpus)); transferred %d quarantined %d",
			st.Transferred, st.Quarantined)
	}
	if st.Quarantined != 0 {
		t.Fatalf("st.Quarantined: want 0; transferred %d quarantined %d", st.Transferred, st.Quarantined)
	}
	e.verify(spec, 0)
	e.requireCorpus("user0", corpus, raw)
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for one pass and its verify, want 1 (the export is shared)", n)
	}
	runs, err := e.db.ListRuns(ctx, e.job.ID, spec.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range runs {
		kinds = append(kinds, string(r.RunType)+"/"+string(r.Tool))
	}
	if !slices.Contains(kinds, "tgz_export/zmmailbox") || !slices.Contains(kinds, "tgz_import/zmmailbox") {
		t.Errorf("runs %v, want tgz_export and tgz_import by zmmailbox", kinds)
	}

	bad, err := e.vault.Put(ctx, vault.Secret{Password: "wrong"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec2 := e.mailbox(model.SourceZimbra, "")
	spec2.Source = emailapi.Endpoint{Addr: addr, Security: "tls", CAFile: ca, User: "alice@example.org", AuthUser: "admin@example.org", CredentialsRef: bad}
	_, err = e.acts.SyncMailbox(ctx, emailapi.PassRequest{Spec: spec2, Mode: model.ModeCopy, RunType: model.RunInitial})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != emailapi.ErrTypeAuthFailed || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong password: %v, want AuthFailed without the password", err)
	}
}
