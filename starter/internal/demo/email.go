// Package demo is what `cutover demo` runs and what the operator-experience tests run on: a
// demo mail domain (users, a generated corpus, credentials in the vault, a job spec), a driver
// that takes an email job through every phase with a logged demo operator approving, and seed
// 002's mail-system database migration from generated SQLite files.
package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/devtools/corpus"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Domain is the demo mail domain.
const Domain = "demo.example"

// Operator is the identity the demo approves and confirms as (recorded like any ops lead's).
const Operator = "demo-operator"

// MailUser is one demo mailbox: its login on both servers and how much mail it has.
type MailUser struct {
	Name        string
	SrcPassword string
	DstPassword string
	Messages    int // bulk messages beside the edge-case corpus of the first user
}

var names = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}

// Users returns n demo users with messages each (the first also gets the edge-case corpus:
// non-ASCII and nested folders, duplicates, messages without Message-ID, malformed MIME).
// The passwords are throwaway ones for the local Dovecots; they go into the vault, never into
// a spec.
func Users(n, messages int) []MailUser {
	out := make([]MailUser, 0, n)
	for i := range n {
		name := names[i%len(names)]
		if i >= len(names) {
			name = fmt.Sprintf("%s%d", name, i/len(names))
		}
		out = append(out, MailUser{Name: name, SrcPassword: "src-" + name + "-pw", DstPassword: "dst-" + name + "-pw", Messages: messages})
	}
	return out
}

// Corpus is the mail of the i-th demo user.
func Corpus(i int, u MailUser) []corpus.Message {
	msgs := corpus.Bulk(corpus.BulkOptions{Messages: u.Messages, Folders: []string{"INBOX", "Sent", "Archive", "Projects/2024"},
		Seed: uint64(i + 1), Prefix: "demo-" + u.Name})
	if i == 0 {
		msgs = append(corpus.Standard(0), msgs...)
	}
	return msgs
}

// SeedCorpus writes every user's mail into the Maildir maildir(user) returns.
func SeedCorpus(users []MailUser, maildir func(user string) string) (int, error) {
	total := 0
	for i, u := range users {
		msgs := Corpus(i, u)
		if err := corpus.WriteMaildir(maildir(u.Name), msgs); err != nil {
			return total, fmt.Errorf("seed %s: %w", u.Name, err)
		}
		total += len(msgs)
	}
	return total, nil
}

// Arrival is mail that arrives at the source while a migration runs (the presync copies it).
func Arrival(u MailUser, n int, at time.Time) []corpus.Message {
	var msgs []corpus.Message
	for i := range n {
		d := at.Add(time.Duration(i) * time.Minute)
		id := fmt.Sprintf("arrival-%d-%d@%s", at.Unix(), i, Domain)
		msgs = append(msgs, corpus.Message{Folder: "INBOX", Date: d,
			Raw: corpus.Text(id, "Newsletter <news@example.com>", fmt.Sprintf("Arrived during the migration (%d)", i), d, "new mail\n")})
	}
	return msgs
}

// Refs are the vault references of each user's credentials on both sides.
type Refs struct{ Src, Dst map[string]string }

// PutCredentials stores every user's passwords in the vault.
func PutCredentials(ctx context.Context, v *vault.Vault, users []MailUser) (Refs, error) {
	r := Refs{Src: map[string]string{}, Dst: map[string]string{}}
	for _, u := range users {
		var err error
		if r.Src[u.Name], err = v.Put(ctx, vault.Secret{Password: u.SrcPassword}, nil); err != nil {
			return r, err
		}
		if r.Dst[u.Name], err = v.Put(ctx, vault.Secret{Password: u.DstPassword}, nil); err != nil {
			return r, err
		}
	}
	return r, nil
}

// EmailSpec is the demo job: the two local Dovecots (plain IMAP on loopback), presyncs only
// when asked (the driver asks), a short wait after the DNS confirmation.
func EmailSpec(jobID int64, srcAddr, dstAddr string, users []MailUser, refs Refs) jobspec.Spec {
	s := jobspec.Spec{JobID: jobID, TenantID: 1, TicketID: 1000 + jobID, Domain: Domain,
		Notes:       "cutover demo: two local Dovecot servers",
		Source:      jobspec.Endpoint{Label: "old Dovecot (demo)", Host: srcAddr, Security: "plain"},
		Destination: jobspec.Endpoint{Host: dstAddr, Security: "plain"},
		Schedule: jobspec.Schedule{PresyncInterval: jobspec.Duration(24 * time.Hour), FinalSyncDelay: jobspec.Duration(2 * time.Second),
			Soak: jobspec.Duration(time.Hour), PostSyncInterval: jobspec.Duration(30 * time.Minute)},
		Concurrency: jobspec.Concurrency{Mailboxes: 4},
	}
	for _, u := range users {
		s.Mailboxes = append(s.Mailboxes, jobspec.Mailbox{Email: u.Name + "@" + Domain, User: u.Name, CredentialsRef: refs.Src[u.Name],
			DestUser: u.Name, DestCredentialsRef: refs.Dst[u.Name]})
	}
	return s
}

// Step is one thing the driver did, for its log.
type Step struct {
	At     time.Time
	Action string
	Detail string
}

// EmailDriver takes a started job through every phase, acting as Operator: a presync (after
// Arrive, if set, delivered new mail), the approval, the migration hour, the DNS confirmation,
// then close once verified.
type EmailDriver struct {
	C        *client.Client
	JobID    int64
	Out      io.Writer     // the operator's log
	Poll     time.Duration // default 500ms
	Arrive   func() error  // mail arriving at the source before the presync
	KeepOpen bool          // stop at verified instead of closing the job
}

func (d *EmailDriver) logf(action, format string, a ...any) {
	if d.Out != nil {
		fmt.Fprintf(d.Out, "%s  %-14s %s\n", time.Now().Format("15:04:05"), action, fmt.Sprintf(format, a...))
	}
}

func (d *EmailDriver) wait(ctx context.Context, what string, done func(emailapi.Status) bool) (emailapi.Status, error) {
	poll := d.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	last := ""
	st, err := d.C.WaitEmail(ctx, d.JobID, poll, func(st emailapi.Status) bool {
		if line := fmt.Sprintf("phase %s, gate %s, %.1f%% synced", st.Phase, st.Gate, st.SyncPercent); line != last {
			last = line
			d.logf("job", "%s", line)
		}
		return done(st)
	})
	if err != nil {
		return st, fmt.Errorf("waiting for %s: %w", what, err)
	}
	return st, nil
}

// Run drives the job to verified (and closed unless KeepOpen) and returns its last status.
func (d *EmailDriver) Run(ctx context.Context) (emailapi.Status, error) {
	st, err := d.wait(ctx, "delta_sync", func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync })
	if err != nil {
		return st, err
	}
	d.logf("initial sync", "done: %d mailboxes, %.1f%% synced", st.Mailboxes, st.SyncPercent)
	if d.Arrive != nil {
		if err := d.Arrive(); err != nil {
			return st, err
		}
		d.logf("source", "new mail arrived at the source")
	}
	before := st.Presyncs
	if err := d.C.SignalEmail(ctx, d.JobID, emailapi.PresyncNow, emailapi.Request{By: Operator}); err != nil {
		return st, err
	}
	d.logf(Operator, "presync_now (signal)")
	if st, err = d.wait(ctx, "the presync", func(st emailapi.Status) bool { return st.Presyncs > before && st.CurrentPass == nil }); err != nil {
		return st, err
	}
	for _, c := range st.Checks {
		d.logf("gate check", "%-15s %-4s %s", c.ID, c.Status, c.Message)
	}
	ack, err := d.C.Approve(ctx, d.JobID, Operator, "approved automatically by cutover demo after reviewing the checks above")
	if err != nil {
		return st, err
	}
	d.logf(Operator, "approve (update): %s", ack.Message)
	now := time.Now().UTC()
	if _, err := d.C.EmailCommand(ctx, d.JobID, emailapi.SetCutoverTime, emailapi.Request{By: Operator, At: &now}); err != nil {
		return st, err
	}
	d.logf(Operator, "set_cutover_time %s (update)", now.Format(time.RFC3339))
	if st, err = d.wait(ctx, "cutover_ready", func(st emailapi.Status) bool { return st.Phase == model.PhaseCutoverReady }); err != nil {
		return st, err
	}
	d.logf(Operator, "switching DNS/MX to the destination (demo: nothing to switch)")
	ack, err = d.C.ConfirmDNSCutover(ctx, d.JobID, Operator, nil)
	if err != nil {
		return st, err
	}
	d.logf(Operator, "dns_cutover_confirmed (update): %s; phase %s", ack.Message, ack.Phase)
	if st, err = d.wait(ctx, "verified", func(st emailapi.Status) bool { return st.Phase == model.PhaseVerified }); err != nil {
		return st, err
	}
	if v := st.Verify; v != nil {
		d.logf("verify", "missing %d, quarantined %d, extra %d", v.Missing, v.Quarantined, v.Extra)
	}
	if d.KeepOpen {
		return st, nil
	}
	if err := d.C.SignalEmail(ctx, d.JobID, emailapi.Close, emailapi.Request{By: Operator, Note: "demo done"}); err != nil {
		return st, err
	}
	d.logf(Operator, "close (signal)")
	st, err = d.C.EmailResult(ctx, d.JobID)
	if err != nil {
		return st, err
	}
	d.logf("job", "phase %s (%s)", st.Phase, st.State)
	return st, nil
}
