// Package jobspec is the email migration job spec: what an operator writes (YAML or JSON) to
// start a job, parsed strictly and validated with every problem named by its path before
// anything starts. The same Spec is the EmailMigrationWorkflow input, so Validate and
// WithDefaults are pure (no I/O, no clock, no map order) and run in workflow code too.
package jobspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/workflows/email/gate"
)

// Spec is one email migration job: a domain, its two servers and its mailboxes.
type Spec struct {
	// JobID is migration_jobs.id and names the workflow (email-job-<id>); 0 lets
	// `cutover email start` assign one.
	JobID    int64  `json:"job_id,omitempty" yaml:"job_id,omitempty"`
	TenantID int64  `json:"tenant_id" yaml:"tenant_id"`
	TicketID int64  `json:"ticket_id,omitempty" yaml:"ticket_id,omitempty"`
	Domain   string `json:"domain" yaml:"domain"`
	Notes    string `json:"notes,omitempty" yaml:"notes,omitempty"`

	Source      Endpoint `json:"source" yaml:"source"`
	Destination Endpoint `json:"destination" yaml:"destination"`

	Mailboxes []Mailbox `json:"mailboxes,omitempty" yaml:"mailboxes,omitempty"`
	// MailboxCount is set instead of Mailboxes when the mailboxes were already registered in
	// PostgreSQL (cutover email start does this so a 10,000-mailbox job never travels in a
	// workflow input); the workflow then reads them from migration_mailboxes page by page.
	MailboxCount int `json:"mailbox_count,omitempty" yaml:"mailbox_count,omitempty"`

	Schedule    Schedule        `json:"schedule,omitzero" yaml:"schedule,omitempty"`
	Concurrency Concurrency     `json:"concurrency,omitzero" yaml:"concurrency,omitempty"`
	Retry       Retry           `json:"retry,omitzero" yaml:"retry,omitempty"`
	Gate        gate.Thresholds `json:"gate,omitzero" yaml:"gate,omitempty"`
	// Webhooks receive the job's notifications (internal/notify): the ticket desk's payload
	// with the ticket, the event and the next action, signed with each one's vault secret.
	Webhooks []notify.Webhook `json:"webhooks,omitempty" yaml:"webhooks,omitempty"`
	// Filters choose what of every mailbox is migrated (filters.go): size limit, folder
	// regexes and renames, date window, special uses left out.
	Filters Filters `json:"filters,omitzero" yaml:"filters,omitempty"`
	// DNS turns on the DNS/MX checks (dns.go); absent, DNS is the operator's business.
	DNS *DNSCheck `json:"dns,omitempty" yaml:"dns,omitempty"`

	input *inputCheck // what decoding from JSON found (input.go); never encoded
}

// Endpoint is one side's server. Credentials given here are job-wide (an admin or Dovecot
// master login acting for every mailbox); a mailbox's own credentials_ref wins.
type Endpoint struct {
	Label              string `json:"label,omitempty" yaml:"label,omitempty"` // source_server_label, e.g. "cPanel HostGator"
	Host               string `json:"host,omitempty" yaml:"host,omitempty"`   // host or host:port; the port defaults by security
	Security           string `json:"security,omitempty" yaml:"security,omitempty"`
	Auth               string `json:"auth,omitempty" yaml:"auth,omitempty"`
	AuthUser           string `json:"auth_user,omitempty" yaml:"auth_user,omitempty"`
	CredentialsRef     string `json:"credentials_ref,omitempty" yaml:"credentials_ref,omitempty"`
	CAFile             string `json:"ca_file,omitempty" yaml:"ca_file,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty" yaml:"insecure_skip_verify,omitempty"`
}

// Mailbox is one migration_mailboxes row to be.
type Mailbox struct {
	Email              string            `json:"email" yaml:"email"`
	SourceType         model.SourceType  `json:"source_type,omitempty" yaml:"source_type,omitempty"`
	User               string            `json:"user,omitempty" yaml:"user,omitempty"` // source login; default the email
	CredentialsRef     string            `json:"credentials_ref,omitempty" yaml:"credentials_ref,omitempty"`
	SourceHost         string            `json:"source_host,omitempty" yaml:"source_host,omitempty"`
	SourcePath         string            `json:"source_path,omitempty" yaml:"source_path,omitempty"` // pst/mbox/eml/tgz file
	DestUser           string            `json:"dest_user,omitempty" yaml:"dest_user,omitempty"`
	DestCredentialsRef string            `json:"dest_credentials_ref,omitempty" yaml:"dest_credentials_ref,omitempty"`
	FolderMap          map[string]string `json:"folder_map,omitempty" yaml:"folder_map,omitempty"`
	Include            []string          `json:"include,omitempty" yaml:"include,omitempty"`
	Exclude            []string          `json:"exclude,omitempty" yaml:"exclude,omitempty"`
	Since              *time.Time        `json:"since,omitempty" yaml:"since,omitempty"`
	Before             *time.Time        `json:"before,omitempty" yaml:"before,omitempty"`
	// PresyncMode replaces the job's schedule.presync_mode for this mailbox's presyncs: the
	// per-mailbox opt-in to strict_mirror (destructive), or copy for one account.
	PresyncMode model.SyncMode `json:"presync_mode,omitempty" yaml:"presync_mode,omitempty"`
	// Merge: this entry shares its destination (or source) account with other entries on
	// purpose, several sources merged into one account; every such entry says so. Messages are
	// deduplicated by identity across them, and strict_mirror is refused for them.
	Merge bool `json:"merge,omitempty" yaml:"merge,omitempty"`
	// Namespaces also migrates the source folders of these kinds: "other" (other users'
	// folders the account can read) and "shared". Default: the personal namespace only.
	Namespaces []string `json:"namespaces,omitempty" yaml:"namespaces,omitempty"`
}

// Schedule is the email migration plan: presyncs until the cutover hour, a short wait
// after DNS, the final sync, then a soak with INBOX post-syncs.
type Schedule struct {
	// PresyncInterval: time between the end of one presync and the start of the next (default 24h).
	PresyncInterval Duration `json:"presync_interval,omitempty" yaml:"presync_interval,omitempty"`
	// PresyncAt: instead of an interval, a daily time of day "HH:MM" in Timezone.
	PresyncAt string `json:"presync_at,omitempty" yaml:"presync_at,omitempty"`
	Timezone  string `json:"timezone,omitempty" yaml:"timezone,omitempty"` // IANA name; default UTC
	// CutoverAt: the migration hour; presyncs stop there and the job waits for DNS. Unset:
	// presyncs go on until it is set (set_cutover_time) or DNS is confirmed.
	CutoverAt *time.Time `json:"cutover_at,omitempty" yaml:"cutover_at,omitempty"`
	// PresyncMode is what presyncs may delete on the destination; nothing is ever deleted
	// after DNS cutover, whatever the mode:
	//   - mirror (default): only the copies this job placed whose source message is gone;
	//     never a message the job did not place (the user's own, early deliveries, another
	//     tool's copies, even when the job found and adopted them).
	//   - copy: nothing.
	//   - strict_mirror: DESTRUCTIVE (imapsync --delete2): also every message of the synced
	//     folders the source lacks, whoever put it there. Opt in per job here, or per mailbox.
	// Specs written before strict_mirror existed say mirror and keep its safe meaning.
	PresyncMode model.SyncMode `json:"presync_mode,omitempty" yaml:"presync_mode,omitempty"`
	// FinalSyncDelay: wait after the DNS confirmation before the final sync (default 5m).
	FinalSyncDelay Duration `json:"final_sync_delay,omitempty" yaml:"final_sync_delay,omitempty"`
	// FinalSyncRounds: final sync + verify rounds before the job fails (default 3).
	FinalSyncRounds int `json:"final_sync_rounds,omitempty" yaml:"final_sync_rounds,omitempty"`
	// Soak: after verified, how long INBOX post-syncs run before the job closes by itself
	// (default 72h); a close signal ends it sooner.
	Soak Duration `json:"soak,omitempty" yaml:"soak,omitempty"`
	// PostSyncInterval: time between INBOX post-syncs during the soak (default 1h).
	PostSyncInterval Duration `json:"post_sync_interval,omitempty" yaml:"post_sync_interval,omitempty"`
}

// Concurrency bounds the work in flight.
type Concurrency struct {
	Mailboxes int `json:"mailboxes,omitempty" yaml:"mailboxes,omitempty"` // mailboxes synced at once (default 4)
	Folders   int `json:"folders,omitempty" yaml:"folders,omitempty"`     // per mailbox, engine default when 0
}

// Retry bounds how long a mailbox activity retries transient failures before the mailbox (and
// the phase) fails.
type Retry struct {
	MaxAttempts int      `json:"max_attempts,omitempty" yaml:"max_attempts,omitempty"` // default 10
	MaxInterval Duration `json:"max_interval,omitempty" yaml:"max_interval,omitempty"` // default 5m
}

// Defaults.
const (
	DefaultPresyncInterval   = 24 * time.Hour
	DefaultFinalSyncDelay    = 5 * time.Minute
	DefaultFinalSyncRounds   = 3
	DefaultSoak              = 72 * time.Hour
	DefaultPostSyncInterval  = time.Hour
	DefaultMailboxes         = 4
	DefaultRetryMaxAttempts  = 10
	DefaultRetryMaxInterval  = 5 * time.Minute
	MaxConcurrentMailboxes   = 1000
	MaxConcurrentFolders     = 64
	defaultTLSPort           = "993"
	defaultPlainPort         = "143"
	defaultSecurity          = "tls"
	defaultAuth              = "login"
	defaultOAuthAuth         = "xoauth2"
	defaultSourceType        = model.SourceIMAP
	maxProblems              = 50
	maxIncludeExcludeEntries = 100
)

// Parse decodes a YAML or JSON spec strictly (unknown fields are errors), then validates it.
// The returned spec has its defaults filled.
func Parse(data []byte) (Spec, error) {
	s, err := Decode(data)
	if err != nil {
		return Spec{}, err
	}
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// Decode is Parse without the validation: a spec whose mailboxes come from elsewhere (a CSV,
// the mailboxes already registered) is completed, then validated, by its caller.
func Decode(data []byte) (Spec, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Spec{}, &ProblemsError{[]string{"empty spec"}}
	}
	// Secrets are refused with their own message before the generic unknown-field error.
	var tree any
	if err := yaml.Unmarshal(trimmed, &tree); err != nil {
		return Spec{}, &ProblemsError{[]string{"not YAML or JSON: " + cleanYAMLError(err)}}
	}
	if probs := findSecrets(tree, ""); len(probs) > 0 {
		return Spec{}, &ProblemsError{probs}
	}
	var s Spec
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Spec{}, &ProblemsError{[]string{"JSON: " + err.Error()}}
		}
		if err := s.InputError(); err != nil { // UnmarshalJSON's own strict decode
			return Spec{}, err
		}
		if dec.More() {
			return Spec{}, &ProblemsError{[]string{"JSON: trailing data after the spec object"}}
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(trimmed))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			return Spec{}, &ProblemsError{[]string{"YAML: " + cleanYAMLError(err)}}
		}
	}
	return s.WithDefaults(), nil
}

func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	return strings.ReplaceAll(msg, "in type jobspec.", "in ")
}

var secretKey = regexp.MustCompile(`(?i)^(pass(word|wd)?|secret|.*_secret|(access_|refresh_|oauth_)?token|api_key|private_key)$`)

// refKey names the fields that hold a vault reference.
var refKey = regexp.MustCompile(`(?i)^(.*_)?(credentials|secret)_ref$`)

// pastedSecret reports whether a vault-reference field holds something else: likely the secret
// itself, pasted there by mistake. Validate refuses it without showing it; a run started with
// it must not keep it in its history either (Redacted itself counts as already redacted).
func pastedSecret(k string, v any) bool {
	if !refKey.MatchString(k) || v == nil {
		return false
	}
	s, isString := v.(string)
	if !isString {
		return true // anything but a string where a reference belongs
	}
	return s != "" && s != Redacted && !model.IsCredentialsRef(s)
}

// findSecrets walks the decoded document for keys that hold secrets; paths sorted for stable output.
func findSecrets(v any, path string) []string {
	var out []string
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := joinPath(path, k)
			if secretKey.MatchString(k) {
				out = append(out, p+": secrets do not belong in a job spec; store it with `cutover vault put` and give its credentials_ref")
				continue
			}
			out = append(out, findSecrets(t[k], p)...)
		}
	case []any:
		for i, e := range t {
			out = append(out, findSecrets(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// CheckFiles checks what Validate cannot without I/O: the time zone exists and the CA files
// are readable. For the CLI, before starting a job; never in workflow code.
func (s Spec) CheckFiles() error {
	var p problems
	if _, err := time.LoadLocation(s.Schedule.Timezone); err != nil {
		p.add("schedule.timezone", fmt.Sprintf("%q: %v", s.Schedule.Timezone, err))
	}
	for path, e := range map[string]Endpoint{"source": s.Source, "destination": s.Destination} {
		if e.CAFile == "" {
			continue
		}
		if _, err := os.ReadFile(e.CAFile); err != nil {
			p.addMap(path+".ca_file", err.Error())
		}
	}
	p.sortMapProblems()
	return p.err()
}

// Presyncs are daily at PresyncAt or every PresyncInterval; NextPresync computes the next start.
// loc must be the Schedule's Timezone (time.LoadLocation is I/O: workflows call it in a side effect).
func (sc Schedule) NextPresync(lastEnd time.Time, loc *time.Location) time.Time {
	if sc.PresyncAt == "" {
		return lastEnd.Add(sc.PresyncInterval.D())
	}
	h, _ := strconv.Atoi(sc.PresyncAt[:2])
	mi, _ := strconv.Atoi(sc.PresyncAt[3:])
	t := lastEnd.In(loc)
	next := time.Date(t.Year(), t.Month(), t.Day(), h, mi, 0, 0, loc)
	if !next.After(t) {
		next = time.Date(t.Year(), t.Month(), t.Day()+1, h, mi, 0, 0, loc)
	}
	return next
}

// Login is one side of a mailbox as the engine opens it: where (Addr is host:port) and how it
// logs in. No secrets: CredentialsRef is resolved with the vault inside activities.
type Login struct {
	Addr               string
	Security           string
	CAFile             string
	InsecureSkipVerify bool
	User               string // the mailbox to open
	AuthUser           string // admin/proxy login acting as User; "" logs in as User
	Auth               string
	CredentialsRef     string
}

// Logins returns the source and destination logins of one mailbox: the mailbox's own settings
// over the job-wide endpoints.
func (s Spec) Logins(m Mailbox) (src, dest Login) {
	se := s.Source
	if m.SourceHost != "" {
		se.Host = withPort(m.SourceHost, se.Security)
	}
	src = login(se, orDefault(m.User, m.Email), m.CredentialsRef)
	if m.SourceType == model.SourceIMAPOAuth && s.Source.Auth == defaultAuth {
		src.Auth = defaultOAuthAuth
	}
	return src, login(s.Destination, orDefault(m.DestUser, m.Email), m.DestCredentialsRef)
}

func login(e Endpoint, user, ref string) Login {
	out := Login{Addr: e.Host, Security: e.Security, CAFile: e.CAFile, InsecureSkipVerify: e.InsecureSkipVerify,
		User: user, Auth: e.Auth, CredentialsRef: ref}
	if ref == "" {
		// Job-wide credentials: an admin (or Dovecot master) logs in for the user.
		out.CredentialsRef, out.AuthUser = e.CredentialsRef, e.AuthUser
	}
	return out
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
