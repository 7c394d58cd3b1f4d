package mailsystem_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestMailSystemExample runs the mail-system example with the shipped spec: full load of emails.db
// + auth.db into a partitioned emails table with its full-text index, writes arriving, a catch-up
// pass, and validation.
func TestMailSystemExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	data, err := mailsystem.Generate(ctx, t.TempDir(), 200, 3000)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Load(mailsystem.SpecPath())
	if err != nil {
		t.Fatal(err)
	}
	sp.Sources["emails"] = spec.Source{Driver: "sqlite", Path: data.EmailsDB}
	sp.Sources["auth"] = spec.Source{Driver: "sqlite", Path: data.AuthDB}
	e, err := dbcopy.Open(ctx, sp, dbcopy.Options{MigrationID: uuid.New(), MigrationType: model.MigrationIncremental,
		TargetURL: testenv.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	order, _ := sp.Order()
	if strings.Join(order, ",") != "accounts,sessions,emails" {
		t.Fatalf("order = %v", order)
	}
	next := map[string]dbmigrateapi.BatchRequest{}
	for _, name := range order {
		res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil)
		if err != nil || !res.Done {
			t.Fatalf("copy %s: %+v %v", name, res, err)
		}
		next[name] = dbmigrateapi.BatchRequest{Entity: name, Sync: true, After: res.Next.After, BatchNumber: res.Next.BatchNumber}
		if err := e.Finalize(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	one := func(q string) int {
		t.Helper()
		var n int
		if err := e.Pool().QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := one(`SELECT count(*) FROM public.emails`); n != data.Emails-data.Duplicates {
		t.Fatalf("%d emails, want %d (one duplicate message_id quarantined)", n, data.Emails-data.Duplicates)
	}
	if n := one(`SELECT count(*) FROM migration_errors WHERE error_code = '23505' AND source_record_id = '42'`); n != 1 {
		t.Fatal("duplicate message_id not quarantined")
	}
	// Oct 2024 .. Jan 2025: one partition per month of data.
	if n := one(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.emails'::regclass`); n != 4 {
		t.Fatalf("%d partitions, want 4", n)
	}
	if n := one(`SELECT count(*) FROM pg_indexes WHERE tablename = 'emails' AND indexname = 'idx_emails_search' AND indexdef LIKE '%USING gin%'`); n != 1 {
		t.Fatal("full-text GIN index missing")
	}

	// The application keeps writing; a catch-up pass copies the new rows, including a new month.
	if err := data.Append(ctx, 10, 150, 40*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, name := range order {
		res, err := e.CopyBatches(ctx, next[name], 0, nil)
		if err != nil || !res.Done {
			t.Fatalf("sync %s: %+v %v", name, res, err)
		}
	}
	if n := one(`SELECT count(*) FROM public.emails`); n != data.Emails-data.Duplicates {
		t.Fatalf("%d emails after catch-up, want %d", n, data.Emails-data.Duplicates)
	}
	if n := one(`SELECT count(*) FROM public.sessions`); n != data.Sessions {
		t.Fatalf("%d sessions, want %d", n, data.Sessions)
	}
	if n := one(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.emails'::regclass`); n < 5 {
		t.Fatalf("%d partitions after a new month arrived", n)
	}
	// The quarantined duplicate is missing from the target: the emails' validation fails until
	// an operator accepts it (cutover db accept-errors).
	vs, err := e.Validate(ctx, "emails")
	if err != nil || dbcopy.Passed(vs, false) {
		t.Fatalf("emails validated with a quarantined row missing (%v): %+v", err, vs)
	}
	if _, err := e.AcceptErrors(ctx, uuid.New(), "ops", "the legacy app's own duplicate message_id"); err != nil {
		t.Fatal(err)
	}
	for _, name := range order {
		vs, err := e.Validate(ctx, name)
		if err != nil || !dbcopy.Passed(vs, false) {
			for _, v := range vs {
				t.Logf("%s %s %s", v.ValidationType, v.Status, v.IssueDetails)
			}
			t.Fatalf("validate %s: %v", name, err)
		}
	}

	// The application's own duplicate is refused across partitions too.
	_, err = e.Pool().Exec(ctx, `INSERT INTO public.emails (id, message_id, from_address, to_address, created_at)
		VALUES (gen_random_uuid(), '<2.15838@sender.example>', 'a@b', 'c@d', '2024-12-15')`)
	if err == nil || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("duplicate message_id in another month accepted: %v", err)
	}

	// The full-text index answers a search.
	tx, err := e.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	rows, err := tx.Query(ctx, `EXPLAIN SELECT count(*) FROM public.emails
		WHERE to_tsvector('english'::regconfig, coalesce(subject::text, '') || ' ' || coalesce(body::text, '')) @@ plainto_tsquery('english', 'invoice payment')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		_ = rows.Scan(&line)
		plan.WriteString(line + "\n")
	}
	if !strings.Contains(plan.String(), "Bitmap Index Scan") {
		t.Fatalf("search does not use the GIN index:\n%s", plan.String())
	}
}
