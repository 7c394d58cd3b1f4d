package onboard

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// Importer registers a CSV's mailboxes into a job, its secrets into the vault.
type Importer struct {
	DB    *store.DB
	Vault *vault.Vault
}

// Options shape one import.
type Options struct {
	File  string // the CSV's name in messages; default "mailboxes.csv"
	Check bool   // validate, read what exists, write nothing
}

// Report is what an import did (or, checking, would do). It holds references, never secrets.
type Report struct {
	JobID     int64  `json:"job_id"` // 0 when checking a spec without job_id
	Domain    string `json:"domain"`
	CheckOnly bool   `json:"check_only,omitempty"`
	// Mailboxes is how many mailboxes the job has registered afterwards (skipped ones apart).
	Mailboxes int `json:"mailboxes"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	// SecretsStored counts new vault entries; SecretsReplaced the entries of mailboxes
	// imported before whose secret was replaced under the same credentials_ref.
	SecretsStored   int         `json:"secrets_stored"`
	SecretsReplaced int         `json:"secrets_replaced"`
	Rows            []RowReport `json:"rows"`
	// Spec is the whole job (the spec's own mailboxes and the CSV's, with their references),
	// ready to start; never encoded (it is the job's input, not the report).
	Spec jobspec.Spec `json:"-"`
}

// RowReport is one CSV line's mailbox.
type RowReport struct {
	Line               int    `json:"line"`
	Email              string `json:"email"`
	SourceType         string `json:"source_type"`
	SourceUser         string `json:"source_user"`
	DestUser           string `json:"dest_user"`
	MailboxID          int64  `json:"mailbox_id,omitempty"`
	CredentialsRef     string `json:"credentials_ref,omitempty"`
	DestCredentialsRef string `json:"dest_credentials_ref,omitempty"`
	Status             string `json:"status"` // created or updated (would be, when checking)
}

// placeholderRef stands for a secret not stored yet while the spec is validated.
const placeholderRef = "00000000-0000-4000-8000-000000000000"

// Import validates spec with the CSV's rows as further mailboxes, then, in one transaction,
// creates the job (spec.JobID 0: PostgreSQL assigns one), stores every secret in the vault
// and registers every mailbox with its references. A bad row is a *CSVError naming its line
// and nothing is written. The rows and the spec's own mailboxes are the whole job: registered
// mailboxes neither lists are skipped, as when a job restarts with a shorter spec.
func (im *Importer) Import(ctx context.Context, spec jobspec.Spec, rows []Row, o Options) (Report, error) {
	if o.File == "" {
		o.File = "mailboxes.csv"
	}
	full, err := merged(spec, rows, o.File)
	if err != nil {
		return Report{}, err
	}
	rep := Report{JobID: full.JobID, Domain: full.Domain, CheckOnly: o.Check}
	if o.Check {
		return rep, im.check(ctx, &rep, full, rows)
	}
	err = im.DB.InTx(ctx, func(st *store.Store) error {
		rep = Report{Domain: full.Domain}
		return im.importTx(ctx, st, &rep, full, rows)
	})
	if err != nil {
		return Report{}, registrationError(err)
	}
	return rep, nil
}

// merged is spec plus the rows' mailboxes (secrets as placeholders), validated; problems of
// CSV mailboxes name their line.
func merged(spec jobspec.Spec, rows []Row, file string) (jobspec.Spec, error) {
	base := len(spec.Mailboxes)
	full := spec
	full.Mailboxes = append([]jobspec.Mailbox(nil), spec.Mailboxes...)
	for _, r := range rows {
		m := r.Mailbox
		if hasSecret(r.Source) {
			m.CredentialsRef = placeholderRef
		}
		if hasSecret(r.Dest) {
			m.DestCredentialsRef = placeholderRef
		}
		full.Mailboxes = append(full.Mailboxes, m)
	}
	full = full.WithDefaults()
	err := full.Validate()
	var pe *jobspec.ProblemsError
	if !errors.As(err, &pe) {
		return full, err
	}
	return full, lineProblems(pe.Problems, base, rows, file)
}

var mailboxPath = regexp.MustCompile(`mailboxes\[(\d+)\]`)

// lineProblems turns the spec's problems about CSV mailboxes into line errors, and
// references to them in other problems into "<file> line N".
func lineProblems(problems []string, base int, rows []Row, file string) error {
	cerr := &CSVError{File: file}
	var specProblems []string
	for _, p := range problems {
		loc := mailboxPath.FindStringSubmatchIndex(p)
		if loc != nil && loc[0] == 0 {
			i, _ := strconv.Atoi(p[loc[2]:loc[3]])
			if i >= base && i-base < len(rows) {
				rest := strings.TrimPrefix(p[loc[1]:], ".")
				cerr.add(rows[i-base].Line, "%s", rowRefs(rest, base, rows))
				continue
			}
		}
		specProblems = append(specProblems, rowRefs(p, base, rows))
	}
	if len(specProblems) > 0 {
		return &jobspec.ProblemsError{Problems: append(specProblems, lineStrings(cerr)...)}
	}
	return cerr.err()
}

func rowRefs(s string, base int, rows []Row) string {
	return mailboxPath.ReplaceAllStringFunc(s, func(m string) string {
		i, _ := strconv.Atoi(mailboxPath.FindStringSubmatch(m)[1])
		if i >= base && i-base < len(rows) {
			return fmt.Sprintf("line %d", rows[i-base].Line)
		}
		return m
	})
}

func lineStrings(e *CSVError) []string {
	out := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		out[i] = fmt.Sprintf("%s line %d: %s", e.File, l.Line, l.Msg)
	}
	return out
}

func (im *Importer) check(ctx context.Context, rep *Report, full jobspec.Spec, rows []Row) error {
	existing := map[string]store.MailboxRefs{}
	if full.JobID > 0 && im.DB != nil {
		var err error
		if existing, err = im.DB.JobMailboxRefs(ctx, full.JobID); err != nil {
			return err
		}
	}
	base := len(full.Mailboxes) - len(rows)
	for i, r := range rows {
		m := full.Mailboxes[base+i]
		rr := rowReport(r, m)
		if e, ok := existing[m.Email]; ok {
			rr.Status, rr.MailboxID = "updated", e.ID
			rep.Updated++
		} else {
			rr.Status = "created"
			rep.Created++
		}
		rr.CredentialsRef, rr.DestCredentialsRef = "", ""
		rep.Rows = append(rep.Rows, rr)
	}
	rep.Spec = full
	return nil
}

func rowReport(r Row, m jobspec.Mailbox) RowReport {
	return RowReport{Line: r.Line, Email: m.Email, SourceType: string(m.SourceType), SourceUser: orDefault(m.User, m.Email),
		DestUser: orDefault(m.DestUser, m.Email), CredentialsRef: m.CredentialsRef, DestCredentialsRef: m.DestCredentialsRef}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// importTx is the import's one transaction.
func (im *Importer) importTx(ctx context.Context, st *store.Store, rep *Report, full jobspec.Spec, rows []Row) error {
	if full.JobID == 0 {
		j, err := st.CreateJob(ctx, store.Job{TenantID: full.TenantID, Domain: full.Domain})
		if err != nil {
			return err
		}
		full.JobID = j.ID
	}
	rep.JobID = full.JobID
	existing, err := st.JobMailboxRefs(ctx, full.JobID)
	if err != nil {
		return err
	}
	base := len(full.Mailboxes) - len(rows)
	if err := im.storeSecrets(ctx, st, rep, full.Mailboxes[base:], rows, existing); err != nil {
		return err
	}
	reg, err := emailjob.RegisterTx(ctx, st, full)
	if err != nil {
		return err
	}
	if _, err := st.AttachJobCredentials(ctx, full.JobID); err != nil {
		return err
	}
	after, err := st.JobMailboxRefs(ctx, full.JobID)
	if err != nil {
		return err
	}
	for i, r := range rows {
		m := full.Mailboxes[base+i]
		rr := rowReport(r, m)
		rr.MailboxID = after[m.Email].ID
		rr.Status = "created"
		if _, ok := existing[m.Email]; ok {
			rr.Status = "updated"
			rep.Updated++
		} else {
			rep.Created++
		}
		rep.Rows = append(rep.Rows, rr)
	}
	rep.Mailboxes = reg.Mailboxes - len(reg.Skipped)
	rep.Spec = full
	return nil
}

// storeSecrets puts every row's secrets in the vault and sets the references on mbs (the
// rows' mailboxes in the full spec). A mailbox imported before keeps its references, its
// secret replaced, unless another mailbox shares the reference.
func (im *Importer) storeSecrets(ctx context.Context, st *store.Store, rep *Report, mbs []jobspec.Mailbox, rows []Row,
	existing map[string]store.MailboxRefs) error {
	v := im.Vault.Within(st)
	uses := map[string]int{}
	for _, e := range existing {
		uses[e.Source]++
		uses[e.Dest]++
	}
	var fresh []vault.Secret
	var targets []*string
	put := func(s vault.Secret, old string, ref *string) error {
		*ref = ""
		if !hasSecret(s) {
			return nil
		}
		if old != "" && uses[old] == 1 {
			err := v.Update(ctx, old, s)
			if err == nil {
				*ref = old
				rep.SecretsReplaced++
				return nil
			}
			if !errors.Is(err, vault.ErrUnknownRef) {
				return err
			}
		}
		fresh = append(fresh, s)
		targets = append(targets, ref)
		return nil
	}
	for i, r := range rows {
		m := &mbs[i]
		e := existing[m.Email]
		if err := put(r.Source, e.Source, &m.CredentialsRef); err != nil {
			return err
		}
		if err := put(r.Dest, e.Dest, &m.DestCredentialsRef); err != nil {
			return err
		}
	}
	refs, err := v.PutMany(ctx, fresh)
	if err != nil {
		return err
	}
	for i, ref := range refs {
		*targets[i] = ref
	}
	rep.SecretsStored = len(refs)
	return nil
}

// registrationError keeps the message of a registration refusal (an account another job
// uses) without the SDK's decorations.
func registrationError(err error) error {
	var ae interface{ Message() string }
	if errors.As(err, &ae) {
		return errors.New(ae.Message())
	}
	return err
}
