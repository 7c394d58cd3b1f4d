// Package jobspec is the email migration job spec: what an operator writes (YAML or JSON) to
// start a job, parsed strictly and validated with every problem named by its path before
// anything starts. The same Spec is the EmailMigrationWorkflow input, so Validate and
// WithDefaults are pure (no I/O, no clock, no map order) and run in workflow code too.
package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/internal/model"
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
}

// Schedule is the migration plan of seed 003: presyncs until the cutover hour, a short wait
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
	// PresyncMode: mirror (default, imapsync --delete2) or copy. Never mirror after DNS.
	PresyncMode mail.Mode `json:"presync_mode,omitempty" yaml:"presync_mode,omitempty"`
	// FinalSyncDelay: wait after the DNS confirmation before the final sync (default 5m, seed 003).
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

// Duration is a time.Duration written as "90s", "24h" in specs.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "24h" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration %s: want a string such as \"24h\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a value such as \"90s\", \"30m\" or \"24h\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads "24h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: duration %q: want a value such as \"90s\", \"30m\" or \"24h\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ProblemsError lists everything wrong with a spec, each problem prefixed by its path.
type ProblemsError struct{ Problems []string }

func (e *ProblemsError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid job spec: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid job spec (%d problems):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Parse decodes a YAML or JSON spec strictly (unknown fields are errors), then validates it.
// The returned spec has its defaults filled.
func Parse(data []byte) (Spec, error) {
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
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	return strings.ReplaceAll(msg, "in type jobspec.", "in ")
}

var secretKey = regexp.MustCompile(`(?i)^(pass(word|wd)?|secret|.*_secret|(access_|refresh_|oauth_)?token|api_key|private_key)$`)

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

// WithDefaults returns the spec with every optional field filled; the receiver is not modified.
func (s Spec) WithDefaults() Spec {
	s.Domain = strings.ToLower(strings.TrimSpace(s.Domain))
	s.Source = s.Source.withDefaults()
	s.Destination = s.Destination.withDefaults()
	mbs := make([]Mailbox, len(s.Mailboxes))
	for i, m := range s.Mailboxes {
		m.Email = strings.ToLower(strings.TrimSpace(m.Email))
		if m.SourceType == "" {
			m.SourceType = defaultSourceType
		}
		mbs[i] = m
	}
	if s.Mailboxes != nil {
		s.Mailboxes = mbs
	}
	sc := &s.Schedule
	if sc.PresyncInterval == 0 && sc.PresyncAt == "" {
		sc.PresyncInterval = Duration(DefaultPresyncInterval)
	}
	if sc.Timezone == "" {
		sc.Timezone = "UTC"
	}
	if sc.PresyncMode == "" {
		sc.PresyncMode = mail.ModeMirror
	}
	if sc.FinalSyncDelay == 0 {
		sc.FinalSyncDelay = Duration(DefaultFinalSyncDelay)
	}
	if sc.FinalSyncRounds == 0 {
		sc.FinalSyncRounds = DefaultFinalSyncRounds
	}
	if sc.Soak == 0 {
		sc.Soak = Duration(DefaultSoak)
	}
	if sc.PostSyncInterval == 0 {
		sc.PostSyncInterval = Duration(DefaultPostSyncInterval)
	}
	if s.Concurrency.Mailboxes == 0 {
		s.Concurrency.Mailboxes = DefaultMailboxes
	}
	if s.Retry.MaxAttempts == 0 {
		s.Retry.MaxAttempts = DefaultRetryMaxAttempts
	}
	if s.Retry.MaxInterval == 0 {
		s.Retry.MaxInterval = Duration(DefaultRetryMaxInterval)
	}
	s.Gate = s.Gate.WithDefaults()
	return s
}

func (e Endpoint) withDefaults() Endpoint {
	if e.Security == "" {
		e.Security = defaultSecurity
	}
	if e.Auth == "" {
		e.Auth = defaultAuth
	}
	if e.Host != "" {
		e.Host = withPort(e.Host, e.Security)
	}
	return e
}

// withPort appends the default port of the security mode when host has none.
func withPort(host, security string) string {
	host = strings.TrimSpace(host)
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := defaultTLSPort
	if security != "tls" {
		port = defaultPlainPort
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

var (
	domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^localhost$`)
	emailRE  = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)
	hhmmRE   = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

var securities = []string{"tls", "starttls", "plain"}
var auths = []string{"login", "plain", "xoauth2", "oauthbearer"}

// fileSource reports source types read from an uploaded file rather than a server.
func fileSource(t model.SourceType) bool {
	switch t {
	case model.SourcePST, model.SourceMbox, model.SourceEML, model.SourceTgz:
		return true
	}
	return false
}

// readsFiles reports whether a mailbox is read from files on the worker: the file source types,
// and a zimbra export or dovecot Maildir given by source_path instead of a server to fetch from
// (activities/mail/sourceopen.go).
func readsFiles(m Mailbox) bool {
	return fileSource(m.SourceType) ||
		m.SourcePath != "" && (m.SourceType == model.SourceZimbra || m.SourceType == model.SourceDovecot)
}

// Validate checks a spec (defaults filled, see WithDefaults) and returns a *ProblemsError
// listing every problem, or nil.
func (s Spec) Validate() error {
	var p problems
	if s.JobID < 0 {
		p.add("job_id", "must be positive (or absent to have one assigned)")
	}
	if s.TenantID <= 0 {
		p.add("tenant_id", "required, a positive integer")
	}
	if s.TicketID < 0 {
		p.add("ticket_id", "must be positive")
	}
	if !domainRE.MatchString(s.Domain) {
		p.add("domain", fmt.Sprintf("%q is not a domain name", s.Domain))
	}
	needSourceHost := false
	for _, m := range s.Mailboxes {
		needSourceHost = needSourceHost || (!readsFiles(m) && m.SourceHost == "")
	}
	s.Source.validate(&p, "source", needSourceHost)
	s.Destination.validate(&p, "destination", true)

	switch {
	case len(s.Mailboxes) == 0 && s.MailboxCount == 0:
		p.add("mailboxes", "at least one mailbox is required")
	case len(s.Mailboxes) > 0 && s.MailboxCount != 0:
		p.add("mailbox_count", "set only when mailboxes are already registered (then mailboxes must be empty)")
	case s.MailboxCount < 0:
		p.add("mailbox_count", "must be positive")
	case s.MailboxCount > 0 && s.JobID == 0:
		p.add("mailbox_count", "registered mailboxes need the job_id they were registered under")
	}
	seen := map[string]int{}
	for i, m := range s.Mailboxes {
		path := fmt.Sprintf("mailboxes[%d]", i)
		if j, dup := seen[m.Email]; dup {
			p.add(path+".email", fmt.Sprintf("%s is listed twice (also mailboxes[%d])", m.Email, j))
		}
		seen[m.Email] = i
		m.validate(&p, path, s)
		if len(p.list) >= maxProblems {
			p.list = append(p.list, "(stopping after "+strconv.Itoa(maxProblems)+" problems)")
			break
		}
	}

	sc := s.Schedule
	if sc.PresyncAt != "" && sc.PresyncInterval != 0 {
		p.add("schedule", "set presync_interval or presync_at, not both")
	}
	if sc.PresyncAt != "" && !hhmmRE.MatchString(sc.PresyncAt) {
		p.add("schedule.presync_at", fmt.Sprintf("%q: want a time of day HH:MM (24h)", sc.PresyncAt))
	}
	if sc.PresyncInterval < 0 {
		p.add("schedule.presync_interval", "must be positive")
	}
	if sc.PresyncMode != mail.ModeMirror && sc.PresyncMode != mail.ModeCopy {
		p.add("schedule.presync_mode", fmt.Sprintf("%q: want mirror or copy", sc.PresyncMode))
	}
	for name, d := range map[string]Duration{"final_sync_delay": sc.FinalSyncDelay, "soak": sc.Soak, "post_sync_interval": sc.PostSyncInterval} {
		if d < 0 {
			p.addMap("schedule."+name, "must not be negative")
		}
	}
	if sc.PostSyncInterval == 0 && sc.Soak > 0 {
		p.add("schedule.post_sync_interval", "must be positive")
	}
	if sc.FinalSyncRounds < 1 || sc.FinalSyncRounds > 20 {
		p.add("schedule.final_sync_rounds", "want 1..20")
	}
	if c := s.Concurrency.Mailboxes; c < 1 || c > MaxConcurrentMailboxes {
		p.add("concurrency.mailboxes", fmt.Sprintf("%d: want 1..%d", c, MaxConcurrentMailboxes))
	}
	if c := s.Concurrency.Folders; c < 0 || c > MaxConcurrentFolders {
		p.add("concurrency.folders", fmt.Sprintf("%d: want 0..%d (0 = engine default)", c, MaxConcurrentFolders))
	}
	if s.Retry.MaxAttempts < 1 {
		p.add("retry.max_attempts", "must be at least 1")
	}
	if s.Retry.MaxInterval <= 0 {
		p.add("retry.max_interval", "must be positive")
	}
	if err := s.Gate.Validate(); err != nil {
		p.add("gate", err.Error())
	}
	p.sortMapProblems()
	var nul []string
	nulFields(reflect.ValueOf(s), "", &nul)
	for _, path := range nul {
		p.add(path, "contains a NUL byte (PostgreSQL text cannot hold one)")
	}
	return p.err()
}

// nulFields appends the paths of the strings (map keys included) under v that hold a NUL
// byte. Such a spec once passed validation and then failed at registration, retried as if
// PostgreSQL were down (found by FuzzParse). Map keys are visited in sorted order.
func nulFields(v reflect.Value, path string, out *[]string) {
	switch v.Kind() {
	case reflect.String:
		if strings.IndexByte(v.String(), 0) >= 0 {
			*out = append(*out, path)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			nulFields(v.Elem(), path, out)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			nulFields(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			kp := fmt.Sprintf("%s[%q]", path, k.String())
			if strings.IndexByte(k.String(), 0) >= 0 {
				*out = append(*out, kp)
			}
			nulFields(v.MapIndex(k), kp, out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = f.Name
			}
			nulFields(v.Field(i), joinPath(path, name), out)
		}
	}
}

func (e Endpoint) validate(p *problems, path string, needHost bool) {
	if e.Host == "" {
		if needHost {
			p.add(path+".host", "required")
		}
	} else if h, port, err := net.SplitHostPort(e.Host); err != nil || h == "" {
		p.add(path+".host", fmt.Sprintf("%q: want host or host:port", e.Host))
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		p.add(path+".host", fmt.Sprintf("%q: port must be 1..65535", e.Host))
	}
	if !slices.Contains(securities, e.Security) {
		p.add(path+".security", fmt.Sprintf("%q: want tls, starttls or plain", e.Security))
	}
	if !slices.Contains(auths, e.Auth) {
		p.add(path+".auth", fmt.Sprintf("%q: want login, plain, xoauth2 or oauthbearer", e.Auth))
	}
	if e.CredentialsRef != "" {
		checkRef(p, path+".credentials_ref", e.CredentialsRef)
	}
	if e.AuthUser != "" && e.CredentialsRef == "" {
		p.add(path+".credentials_ref", "auth_user logs in with job-wide credentials: give its credentials_ref")
	}
}

func checkRef(p *problems, path, ref string) {
	if _, err := uuid.Parse(ref); err != nil {
		p.add(path, fmt.Sprintf("%q is not a vault reference (cutover vault put prints one)", ref))
	}
}

func (m Mailbox) validate(p *problems, path string, s Spec) {
	if !emailRE.MatchString(m.Email) {
		p.add(path+".email", fmt.Sprintf("%q is not an email address", m.Email))
	}
	if !slices.Contains(model.SourceTypes, m.SourceType) {
		names := make([]string, len(model.SourceTypes))
		for i, t := range model.SourceTypes {
			names[i] = string(t)
		}
		p.add(path+".source_type", fmt.Sprintf("%q: want one of %s", m.SourceType, strings.Join(names, ", ")))
	} else if readsFiles(m) {
		if m.SourcePath == "" {
			p.add(path+".source_path", fmt.Sprintf("required for source_type %s", m.SourceType))
		}
	} else {
		if m.SourcePath != "" {
			p.add(path+".source_path", fmt.Sprintf("only for file sources, not %s", m.SourceType))
		}
		if m.CredentialsRef == "" && s.Source.CredentialsRef == "" {
			p.add(path+".credentials_ref", "required (or a job-wide source.credentials_ref)")
		}
	}
	if m.SourceHost != "" {
		var sub problems
		Endpoint{Host: withPort(m.SourceHost, s.Source.Security), Security: s.Source.Security, Auth: s.Source.Auth}.validate(&sub, path+".source_host", false)
		for _, q := range sub.list {
			p.list = append(p.list, strings.Replace(q, path+".source_host.host", path+".source_host", 1))
		}
	}
	if m.CredentialsRef != "" {
		checkRef(p, path+".credentials_ref", m.CredentialsRef)
	}
	if m.DestCredentialsRef != "" {
		checkRef(p, path+".dest_credentials_ref", m.DestCredentialsRef)
	} else if s.Destination.CredentialsRef == "" {
		p.add(path+".dest_credentials_ref", "required (or a job-wide destination.credentials_ref)")
	}
	keys := make([]string, 0, len(m.FolderMap))
	for k := range m.FolderMap {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(m.FolderMap[k]) == "" {
			p.add(path+".folder_map", fmt.Sprintf("%q: %q: folder names must not be empty", k, m.FolderMap[k]))
		}
	}
	for name, list := range map[string][]string{"include": m.Include, "exclude": m.Exclude} {
		if len(list) > maxIncludeExcludeEntries {
			p.addMap(path+"."+name, fmt.Sprintf("%d entries: at most %d", len(list), maxIncludeExcludeEntries))
		}
		for i, re := range list {
			if _, err := regexp.Compile(re); err != nil {
				p.addMap(fmt.Sprintf("%s.%s[%d]", path, name, i), fmt.Sprintf("%q is not a regular expression: %v", re, err))
			}
		}
	}
	if m.Since != nil && m.Before != nil && !m.Since.Before(*m.Before) {
		p.add(path+".since", "must be before before")
	}
}

// problems collects "path: message" lines. Lines added while ranging over a map are kept in a
// separate list and sorted, so the output never depends on map order.
type problems struct {
	list    []string
	fromMap []string
}

func (p *problems) add(path, msg string)    { p.list = append(p.list, path+": "+msg) }
func (p *problems) addMap(path, msg string) { p.fromMap = append(p.fromMap, path+": "+msg) }

func (p *problems) sortMapProblems() {
	slices.Sort(p.fromMap)
	p.list = append(p.list, p.fromMap...)
	p.fromMap = nil
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ProblemsError{Problems: p.list}
}

// IsProblems reports whether err is a spec validation error.
func IsProblems(err error) bool {
	var pe *ProblemsError
	return errors.As(err, &pe)
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

// MailboxSpec builds the engine's view of one mailbox: the mailbox's own settings over the
// job-wide endpoints.
func (s Spec) MailboxSpec(jobID, mailboxID int64, m Mailbox) mail.MailboxSpec {
	src := s.Source
	if m.SourceHost != "" {
		src.Host = withPort(m.SourceHost, src.Security)
	}
	out := mail.MailboxSpec{
		JobID: jobID, MailboxID: mailboxID, Email: m.Email, SourceType: m.SourceType, SourcePath: m.SourcePath,
		Source:    endpoint(src, orDefault(m.User, m.Email), m.CredentialsRef),
		Dest:      endpoint(s.Destination, orDefault(m.DestUser, m.Email), m.DestCredentialsRef),
		FolderMap: m.FolderMap, Include: m.Include, Exclude: m.Exclude, Since: m.Since, Before: m.Before,
	}
	if m.SourceType == model.SourceIMAPOAuth && s.Source.Auth == defaultAuth {
		out.Source.Auth = defaultOAuthAuth
	}
	return out
}

func endpoint(e Endpoint, user, ref string) mail.Endpoint {
	out := mail.Endpoint{Addr: e.Host, Security: e.Security, CAFile: e.CAFile, InsecureSkipVerify: e.InsecureSkipVerify,
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
