package dbcopy

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
)

// TestTargetAcceptsTheApplicationsInserts: after a load, the application's own INSERT (no key,
// created_at = now(), the columns it always sets) succeeds on every table — the kept integer
// key's identity was moved past the copied maximum, a UUID key defaults, the partitioned table
// has this month's partition and the next ones and a DEFAULT one, the spec's defaults are
// there. The validation says so (application insert, rolled back); the test then inserts for
// real, as the application would, and reads what it got. A table the operator created with an
// integer key and no identity or sequence fails the check, naming the error; one whose UUID key
// has no default passes (the application makes its UUIDs).
func TestTargetAcceptsTheApplicationsInserts(t *testing.T) {
	ctx := ctxT(t)
	accounts := &dbcopytest.Table{Name: "accounts", PK: true, Columns: []string{"id", "email"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(7), "a@x"}, {int64(41), "b@x"}}}
	emails := &dbcopytest.Table{Name: "emails", PK: true, Columns: []string{"id", "account_id", "subject", "created_at"},
		Types: []string{"INTEGER", "INTEGER", "TEXT", "TEXT"},
		Rows:  [][]any{{int64(1), int64(7), "old", "2024-10-03 10:00:00"}, {int64(2), int64(41), "older", "2024-11-05 10:00:00"}}}
	notes := &dbcopytest.Table{Name: "notes", PK: true, Columns: []string{"id", "body"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(7), "n"}, {int64(41), "m"}}}
	tags := &dbcopytest.Table{Name: "tags", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(1), "t"}}}
	labels := &dbcopytest.Table{Name: "labels", PK: true, Columns: []string{"id", "name"}, Types: []string{"INTEGER", "TEXT"},
		Rows: [][]any{{int64(1), "l"}}}
	e := openEngineAt(t, []*dbcopytest.Table{accounts, emails, notes, tags, labels}, newTarget(t),
		`CREATE TABLE public.tags (id bigint NOT NULL PRIMARY KEY, name text);
		CREATE TABLE public.labels (id uuid NOT NULL PRIMARY KEY, legacy_id bigint, name text)`,
		`name: ready
sources: {legacy: {driver: sqlite, path: %q}}
target: {create_tables: true}
entities:
  - {name: accounts, source_table: accounts, target_table: accounts, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: email, type: text, unique: true, not_null: true}]}
  - name: emails
    source_table: emails
    target_table: emails
    key: {source: id}
    partition: {column: created_at, ahead: 2}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: account_id, references: accounts, not_null: true}
      - {source: subject, type: text}
      - {source: created_at, type: timestamp, not_null: true, target_default: {function: now}}
      - {target: starred, type: boolean, constant: "false", not_null: true, target_default: {value: "false"}}
  - {name: notes, source_table: notes, target_table: notes, key: {source: id, mode: keep, type: bigint},
     columns: [{source: body, type: text}]}
  - {name: tags, source_table: tags, target_table: tags, key: {source: id, mode: keep, type: bigint},
     columns: [{source: name, type: text}]}
  - {name: labels, source_table: labels, target_table: labels, key: {source: id},
     columns: [{source: id, target: legacy_id, type: bigint}, {source: name, type: text}]}
`)
	copyAll(t, e)
	for entity, want := range map[string]model.ValidationStatus{"accounts": model.ValidationPassed,
		"emails": model.ValidationPassed, "notes": model.ValidationPassed, "tags": model.ValidationFailed, "labels": model.ValidationPassed} {
		vs, err := e.Validate(ctx, entity)
		if err != nil {
			t.Fatal(err)
		}
		var got *struct {
			Status  model.ValidationStatus
			Details string
		}
		for _, v := range vs {
			if strings.Contains(string(v.ValidationCriteria), "application insert") {
				got = &struct {
					Status  model.ValidationStatus
					Details string
				}{v.Status, string(v.IssueDetails)}
			}
		}
		if got == nil {
			t.Errorf("got is nil; %s: application insert check %+v, want %s", entity, got, want)
		} else if got.Status != want {
			t.Errorf("got.Status = %v, want %v (want); %s: application insert check %+v, want %s",
				got.Status, want, entity, got, want)
		}
		if entity == "tags" && (got == nil || !strings.Contains(got.Details, "null value in column")) {
			t.Errorf("tags: the failed check does not name the error: %+v", got)
		}
	}
	// The application writes, for real.
	var noteID int64
	if err := e.Pool().QueryRow(ctx, `INSERT INTO public.notes (body) VALUES ('new') RETURNING id`).Scan(&noteID); err != nil {
		t.Fatalf("application insert into notes: %v", err)
	}
	if noteID <= 41 {
		t.Errorf("new note id %d, want past the copied maximum 41", noteID)
	}
	if _, err := e.Pool().Exec(ctx, `INSERT INTO public.accounts (email) VALUES ('new@x')`); err != nil {
		t.Fatalf("application insert into accounts: %v", err)
	}
	var part string
	var starred bool
	if err := e.Pool().QueryRow(ctx, `INSERT INTO public.emails (account_id, subject) SELECT id, 'hello' FROM public.accounts
		WHERE email = 'new@x' RETURNING tableoid::regclass::text, starred`).Scan(&part, &starred); err != nil {
		t.Fatalf("application insert into emails: %v", err)
	}
	if want := "emails_" + time.Now().UTC().Format("2006_01"); !strings.Contains(part, want) || starred {
		t.Errorf("the new email went to %s (starred %v), want this month's partition %s, not starred", part, starred, want)
	}
	var parts []string
	rows, err := e.Pool().Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'public.emails'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		parts = append(parts, n)
	}
	rows.Close()
	for i := 0; i <= 2; i++ {
		want := "emails_" + time.Now().UTC().AddDate(0, i, 0).Format("2006_01")
		if !strings.Contains(strings.Join(parts, " "), want) {
			t.Errorf("no partition %s among %v", want, parts)
		}
	}
	if !strings.Contains(strings.Join(parts, " "), "emails_default") {
		t.Errorf("no DEFAULT partition among %v", parts)
	}
}
