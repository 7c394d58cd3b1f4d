package jobspec

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cutover/cutover/internal/model"
)

// ProblemsError lists everything wrong with a spec, each problem prefixed by its path.
type ProblemsError struct{ Problems []string }

func (e *ProblemsError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid job spec: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid job spec (%d problems):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
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
		if m.PresyncMode != "" && !presyncMode(m.PresyncMode) {
			p.add(path+".presync_mode", fmt.Sprintf("%q: want mirror, copy or strict_mirror (destructive)", m.PresyncMode))
		}
		if len(p.list) >= maxProblems {
			p.list = append(p.list, "(stopping after "+strconv.Itoa(maxProblems)+" problems)")
			break
		}
	}

	s.Filters.validate(&p)
	s.sharedAccounts(&p)
	if s.DNS != nil {
		s.DNS.validate(&p)
	}
	for i, h := range s.Webhooks {
		if msg := h.Check(); msg != "" {
			p.add(fmt.Sprintf("webhooks[%d]", i), msg)
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
	if !presyncMode(sc.PresyncMode) {
		p.add("schedule.presync_mode", fmt.Sprintf("%q: want mirror, copy or strict_mirror (destructive)", sc.PresyncMode))
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
	if !model.IsCredentialsRef(ref) {
		p.add(path, model.NotACredentialsRef) // never the value
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
	for i, k := range m.Namespaces {
		if k != "other" && k != "shared" {
			p.add(fmt.Sprintf("%s.namespaces[%d]", path, i), fmt.Sprintf("%q: want other or shared (the personal namespace "+
				"is always migrated)", k))
		}
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
