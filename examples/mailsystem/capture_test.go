package mailsystem_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestMailSystemDrainsKeepTheTargetEqual: the shipped spec, captured. After the full load, the
// application updates flags, password hashes and session expiry in place, deletes and inserts
// (as the benchmark's 1% does), renames one email's message_id, and in the next pass gives the
// freed message_id to an email of another month. After each drain the target equals the source
// row for row (both read here, the target independently of the engine), every email holds
// exactly its own claim on its message_id in the table that keeps it unique across partitions,
// and nothing is quarantined.
func TestMailSystemDrainsKeepTheTargetEqual(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := mailsystem.Sizes{Accounts: 2000, Sessions: 1000, Emails: 3000}
	data, err := mailsystem.GenerateSized(ctx, t.TempDir(), n)
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
	if err := e.InstallCapture(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.RemoveCapture(context.Background())
	order, _ := sp.Order()
	for _, name := range order {
		res, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		if !res.Done {
			t.Fatalf("load %s: res.Done is false; %+v", name, res)
		}
		if err := e.Finalize(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	drain := func(pass string) {
		t.Helper()
		for _, src := range []string{"auth", "emails"} {
			st, err := e.Drain(ctx, src)
			if err != nil {
				t.Fatalf("%s: drain %s: %v", pass, src, err)
			}
			if st.Failed != 0 {
				t.Fatalf("%s: drain %s quarantined %d rows: %+v", pass, src, st.Failed, st)
			}
		}
		assertMailSame(ctx, t, pass, data, e.Pool())
	}
	drain("after the load")

	if _, err := data.ChangeRows(ctx, mailsystem.ChangeSizes(n, 0.06)); err != nil {
		t.Fatal(err)
	}
	renamed, taker := n.Emails-10, n.Emails/2 // December's email frees its message_id; November's takes it
	freed := sqliteString(ctx, t, data.EmailsDB, `SELECT message_id FROM emails WHERE id = ?`, renamed)
	sqliteExec(ctx, t, data.EmailsDB, `UPDATE emails SET message_id = '<renamed>' WHERE id = ?`, renamed)
	drain("after updates, deletes, inserts and a renamed message_id")

	sqliteExec(ctx, t, data.EmailsDB, `UPDATE emails SET message_id = ?, is_read = 1 - is_read WHERE id = ?`, freed, taker)
	drain("after the freed message_id went to another month's email")
}

// assertMailSame compares the source files and the target row by row.
func assertMailSame(ctx context.Context, t *testing.T, pass string, data *mailsystem.Data, pool interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) {
	t.Helper()
	for _, c := range []struct {
		name, file, source, target string
	}{
		{"emails", data.EmailsDB, `SELECT id, message_id, is_read, starred FROM emails`,
			`SELECT legacy_id, message_id, is_read::int, starred::int FROM public.emails`},
		{"accounts", data.AuthDB, `SELECT id, email, password_hash FROM accounts`,
			`SELECT legacy_id, email, password_hash FROM public.accounts`},
		{"sessions", data.AuthDB, `SELECT s.token, a.email, CAST(s.expires_at AS INTEGER) FROM sessions s JOIN accounts a ON a.id = s.account_id`,
			`SELECT s.token, a.email, extract(epoch FROM s.expires_at)::bigint FROM public.sessions s JOIN public.accounts a ON a.id = s.account_id`},
		{"message_id claims", data.EmailsDB, `SELECT message_id FROM emails`,
			`SELECT u.value FROM public.emails_message_id_uniq u JOIN public.emails e ON e.id = u.row_key AND e.message_id = u.value`},
		{"message_id claims without their email", "", ``,
			`SELECT u.value FROM public.emails_message_id_uniq u WHERE NOT EXISTS (SELECT 1 FROM public.emails e WHERE e.id = u.row_key)`},
		{"open errors", "", ``, `SELECT source_record_id FROM migration_errors WHERE NOT is_resolved`},
	} {
		var want []string
		if c.file != "" {
			want = sqliteRows(ctx, t, c.file, c.source)
		}
		rows, err := pool.Query(ctx, c.target)
		if err != nil {
			t.Fatalf("%s: %s: %v", pass, c.target, err)
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			vals, err := r.Values()
			return rowText(vals), err
		})
		if err != nil {
			t.Fatalf("%s: %s: %v", pass, c.target, err)
		}
		slices.Sort(got)
		if d := diffSorted(want, got); d != "" {
			t.Fatalf("%s: %s differ (source %d rows, target %d):%s", pass, c.name, len(want), len(got), d)
		}
	}
}

func sqliteRows(ctx context.Context, t *testing.T, file, q string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, rowText(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// rowText renders a row's values for comparing.
func rowText(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, "|")
}

func sqliteString(ctx context.Context, t *testing.T, file, q string, args ...any) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	if err := db.QueryRowContext(ctx, q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func sqliteExec(ctx context.Context, t *testing.T, file, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// diffSorted lists (up to 10 of) the rows only one of two sorted lists holds.
func diffSorted(want, got []string) string {
	var b strings.Builder
	i, j, n := 0, 0, 0
	for (i < len(want) || j < len(got)) && n < 10 {
		switch {
		case j == len(got) || (i < len(want) && want[i] < got[j]):
			fmt.Fprintf(&b, "\n  source only: %s", want[i])
			i++
			n++
		case i == len(want) || got[j] < want[i]:
			fmt.Fprintf(&b, "\n  target only: %s", got[j])
			j++
			n++
		default:
			i++
			j++
		}
	}
	return b.String()
}
