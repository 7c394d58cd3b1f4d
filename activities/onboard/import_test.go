package onboard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cutover/cutover/activities/onboard"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault/vaulttest"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

func newImporter(t *testing.T) *onboard.Importer {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	v, _ := vaulttest.New(t, db.Store)
	return &onboard.Importer{DB: db, Vault: v}
}

func jobSpec() jobspec.Spec {
	return jobspec.Spec{TenantID: 7, Domain: "big.example",
		Source:      jobspec.Endpoint{Host: "imap.old.example:993"},
		Destination: jobspec.Endpoint{Host: "imap.new.example:993"}}.WithDefaults()
}

// bulkCSV is n mailboxes in MigrationWiz's layout; line i+2 holds mailbox i.
func bulkCSV(n int, pw func(i int) string) string {
	var b strings.Builder
	b.WriteString("Source Email,Source Login Name,Source Password,Destination Email,Destination Password\n")
	for i := range n {
		fmt.Fprintf(&b, "user%03d@big.example,user%03d,%s,user%03d@big.example,%s\n", i, i, csvQuote(pw(i)), i,
			csvQuote("dst-"+pw(i)))
	}
	return b.String()
}

func password(i int) string { return fmt.Sprintf("Pw-%03d,\"quoted\" ;x", i) }

func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func counts(t *testing.T, db *store.DB) (jobs, mailboxes, creds int) {
	t.Helper()
	err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM migration_jobs),
		(SELECT count(*) FROM migration_mailboxes), (SELECT count(*) FROM migration_credentials)`).Scan(&jobs, &mailboxes, &creds)
	if err != nil {
		t.Fatal(err)
	}
	return jobs, mailboxes, creds
}

// TestImport500 imports a 500-row CSV: every secret is in the vault under the reference its
// mailbox row carries, attached to that mailbox, and nowhere else in PostgreSQL; importing it
// again replaces the secrets under the same references.
func TestImport500(t *testing.T) {
	im := newImporter(t)
	ctx := context.Background()
	const n = 500
	rows, err := onboard.ParseCSV(strings.NewReader(bulkCSV(n, password)), "m.csv")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := im.Import(ctx, jobSpec(), rows, onboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type summary struct{ Created, Updated, Stored, Replaced, Mailboxes, Rows int }
	got := summary{rep.Created, rep.Updated, rep.SecretsStored, rep.SecretsReplaced, rep.Mailboxes, len(rep.Rows)}
	if d := cmp.Diff(summary{n, 0, 2 * n, 0, n, n}, got); d != "" {
		t.Fatalf("report (-want +got):\n%s", d)
	}
	if j, m, c := counts(t, im.DB); j != 1 {
		t.Fatalf("j: want 1; tables: %d jobs, %d mailboxes, %d credentials; want 1, %d, %d", j, m, c, n, 2*n)
	} else if m != n {
		t.Fatalf("m: want n; tables: %d jobs, %d mailboxes, %d credentials; want 1, %d, %d", j, m, c, n, 2*n)
	} else if c != 2*n {
		t.Fatalf("c: want 2*n; tables: %d jobs, %d mailboxes, %d credentials; want 1, %d, %d", j, m, c, n, 2*n)
	}
	checkSecrets(t, im, rep, password)

	// Nothing but ciphertext holds a password: the mailbox rows and their spec entries neither.
	var leaks int
	if err := im.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM migration_mailboxes
		WHERE spec_json::text LIKE '%Pw-%' OR coalesce(credentials_ref, '') LIKE '%Pw-%'`).Scan(&leaks); err != nil {
		t.Fatal(err)
	}
	if leaks != 0 {
		t.Errorf("%d mailbox rows hold a password", leaks)
	}

	// Again, every password changed, into the same job: same references, new secrets.
	spec := jobSpec()
	spec.JobID = rep.JobID
	changed := func(i int) string { return "new-" + password(i) }
	rows, err = onboard.ParseCSV(strings.NewReader(bulkCSV(n, changed)), "m.csv")
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := im.Import(ctx, spec, rows, onboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got = summary{rep2.Created, rep2.Updated, rep2.SecretsStored, rep2.SecretsReplaced, rep2.Mailboxes, len(rep2.Rows)}
	if d := cmp.Diff(summary{0, n, 0, 2 * n, n, n}, got); d != "" {
		t.Fatalf("second report (-want +got):\n%s", d)
	}
	for i := range rep.Rows {
		if rep.Rows[i].CredentialsRef != rep2.Rows[i].CredentialsRef {
			t.Fatalf("rep.Rows[i].CredentialsRef = %v, want %v (rep2.Rows[i].CredentialsRef); line %d: reference or mailbox changed on re-import: %+v then %+v",
				rep.Rows[i].CredentialsRef, rep2.Rows[i].CredentialsRef, rep.Rows[i].Line, rep.Rows[i], rep2.Rows[i])
		}
		if rep.Rows[i].MailboxID != rep2.Rows[i].MailboxID {
			t.Fatalf("rep.Rows[i].MailboxID = %v, want %v (rep2.Rows[i].MailboxID); line %d: reference or mailbox changed on re-import: %+v then %+v",
				rep.Rows[i].MailboxID, rep2.Rows[i].MailboxID, rep.Rows[i].Line, rep.Rows[i], rep2.Rows[i])
		}
	}
	if _, _, c := counts(t, im.DB); c != 2*n {
		t.Errorf("%d credentials after re-import, want %d", c, 2*n)
	}
	checkSecrets(t, im, rep2, changed)
}

// checkSecrets reads every row's secrets back from the vault and the row from PostgreSQL.
func checkSecrets(t *testing.T, im *onboard.Importer, rep onboard.Report, pw func(int) string) {
	t.Helper()
	ctx := context.Background()
	for i, r := range rep.Rows {
		src, err := im.Vault.Get(ctx, r.CredentialsRef)
		if err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
		dst, err := im.Vault.Get(ctx, r.DestCredentialsRef)
		if err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
		if src.Password != pw(i) {
			t.Fatalf("src.Password = %v, want pw(i); line %d: the vault does not hold the CSV's passwords",
				src.Password, r.Line)
		}
		if dst.Password != "dst-"+pw(i) {
			t.Fatalf("dst.Password = %v, want \"dst-\"+pw(i); line %d: the vault does not hold the CSV's passwords",
				dst.Password, r.Line)
		}
		var ref string
		var attached int
		if err := im.DB.Pool.QueryRow(ctx, `SELECT m.credentials_ref, (SELECT count(*) FROM migration_credentials c
			WHERE c.mailbox_id = m.id) FROM migration_mailboxes m WHERE m.id = $1`, r.MailboxID).Scan(&ref, &attached); err != nil {
			t.Fatal(err)
		}
		if ref != r.CredentialsRef {
			t.Fatalf("ref: want r.CredentialsRef; line %d: mailbox %d has ref %s and %d credentials attached; want %s and 2",
				r.Line, r.MailboxID, ref, attached, r.CredentialsRef)
		}
		if attached != 2 {
			t.Fatalf("attached: want 2; line %d: mailbox %d has ref %s and %d credentials attached; want %s and 2",
				r.Line, r.MailboxID, ref, attached, r.CredentialsRef)
		}
	}
}

// TestImportBadRowCreatesNothing: one bad row among 500 names its line and leaves PostgreSQL
// as it was, and a job-level problem is the spec's.
func TestImportBadRowCreatesNothing(t *testing.T) {
	im := newImporter(t)
	ctx := context.Background()
	csv := bulkCSV(500, password)
	lines := strings.Split(csv, "\n")
	lines[300] = "user298@big.example,other,secret-of-a-duplicate,user298@big.example,x" // line 301 repeats line 300's mailbox
	lines[400] = "user399@big.example,u,pw,,"                                            // no destination password: fine
	rows, err := onboard.ParseCSV(strings.NewReader(strings.Join(lines, "\n")), "m.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = im.Import(ctx, jobSpec(), rows, onboard.Options{})
	var ce *onboard.CSVError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *CSVError, got %v", err)
	}
	if len(ce.Lines) == 0 {
		t.Fatalf("len(ce.Lines) = %v, want != 0; want line 301 named first, got %v", len(ce.Lines), err)
	}
	if ce.Lines[0].Line != 301 {
		t.Fatalf("ce.Lines[0].Line = %v, want 301; want line 301 named first, got %v", ce.Lines[0].Line, err)
	}
	if strings.Contains(err.Error(), "secret-of-a-duplicate") {
		t.Errorf("the error quotes a secret: %v", err)
	}
	if strings.Contains(err.Error(), "mailboxes[") {
		t.Errorf("the error names spec paths instead of lines: %v", err)
	}
	if j, m, c := counts(t, im.DB); j+m+c != 0 {
		t.Fatalf("a refused import wrote %d jobs, %d mailboxes, %d credentials", j, m, c)
	}

	// A row without a destination password, and no job-wide one: its line says so.
	rows, err = onboard.ParseCSV(strings.NewReader("Source Email,Source Password\na@big.example,pw\n"), "m.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = im.Import(ctx, jobSpec(), rows, onboard.Options{})
	if !errors.As(err, &ce) || ce.Lines[0].Line != 2 || !strings.Contains(ce.Lines[0].Msg, "dest_credentials_ref") {
		t.Fatalf("want line 2 refused for its destination credentials, got %v", err)
	}

	// The spec's own problem is the spec's.
	spec := jobSpec()
	spec.Destination.Host = ""
	rows, err = onboard.ParseCSV(strings.NewReader(bulkCSV(2, func(i int) string { return "p" })), "m.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = im.Import(ctx, spec, rows, onboard.Options{})
	if !jobspec.IsProblems(err) || !strings.Contains(err.Error(), "destination.host: required") {
		t.Fatalf("want the spec's problem, got %v", err)
	}
	if j, m, c := counts(t, im.DB); j+m+c != 0 {
		t.Fatalf("refused imports wrote %d jobs, %d mailboxes, %d credentials", j, m, c)
	}

	// Checking writes nothing and says what would be created.
	rows, err = onboard.ParseCSV(strings.NewReader(bulkCSV(3, func(i int) string { return "p" })), "m.csv")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := im.Import(ctx, jobSpec(), rows, onboard.Options{Check: true})
	if err != nil {
		t.Fatalf("err: want nil; check: %+v, %v", rep, err)
	}
	if rep.Created != 3 {
		t.Fatalf("rep.Created = %v, want 3; check: %+v, %v", rep.Created, rep, err)
	}
	if !rep.CheckOnly {
		t.Fatalf("rep.CheckOnly is false; check: %+v, %v", rep, err)
	}
	if j, m, c := counts(t, im.DB); j+m+c != 0 {
		t.Fatalf("a check wrote %d jobs, %d mailboxes, %d credentials", j, m, c)
	}
}
