package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/demo"
	"github.com/cutover/cutover/starter/internal/stacktest"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDBWorkflowIDAndVisibilityQuery(t *testing.T) {
	id := uuid.NewString()
	for _, in := range []string{id, dbmigrateapi.WorkflowID(id)} {
		if got, err := client.DBWorkflowID(in); err != nil {
			t.Errorf("err: want nil; DBWorkflowID(%q) = %q, %v", in, got, err)
		} else if got != dbmigrateapi.WorkflowID(id) {
			t.Errorf("got: want dbmigrateapi.WorkflowID(id); DBWorkflowID(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := client.DBWorkflowID("db-migration-42"); err == nil {
		t.Error("a non-UUID id was accepted")
	}
	for _, tc := range []struct {
		o    client.ListOptions
		want string
	}{
		{client.ListOptions{}, "WorkflowType IN ('EmailMigrationWorkflow', 'DBMigrationWorkflow')"},
		{client.ListOptions{Kind: client.KindEmail, Phase: "delta_sync", Open: true},
			"WorkflowType = 'EmailMigrationWorkflow' AND MigrationPhase = 'delta_sync' AND ExecutionStatus = 'Running'"},
		{client.ListOptions{Kind: client.KindDatabase, Status: "running", Query: "SyncPercent > 50"},
			"WorkflowType = 'DBMigrationWorkflow' AND MigrationStatus = 'running' AND (SyncPercent > 50)"},
		{client.ListOptions{Domain: "o'hara.example"}, "WorkflowType IN ('EmailMigrationWorkflow', 'DBMigrationWorkflow') AND MigrationDomain = 'o''hara.example'"},
	} {
		if got := tc.o.Visibility(); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.o, got, tc.want)
		}
	}
}

// TestClientDrivesBothKinds is an upstream service using only this package: it starts an email job
// from a typed spec, finds it by phase, sees a command refused with the reason, drives it through
// every phase to closed, then runs the mail-system database migration; the worker's metrics
// endpoint then shows non-zero cutover_* counters, and both reports exist.
func TestClientDrivesBothKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: Temporal, PostgreSQL, two Dovecots")
	}
	s := stacktest.Start(t, stacktest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := s.Client
	const jobID = 501

	if _, err := c.EmailStatus(ctx, jobID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("status of a job never started: %v", err)
	}
	bad := s.EmailSpec(jobID)
	bad.Mailboxes[0].Email = "not an address"
	if _, err := c.StartEmailJob(ctx, bad); err == nil || !strings.Contains(err.Error(), "mailboxes[0].email") {
		t.Fatalf("bad spec: %v", err)
	}
	job, err := c.StartEmailJob(ctx, s.EmailSpec(jobID))
	if err != nil {
		t.Fatal(err)
	}
	if job.WorkflowID != emailapi.WorkflowID(jobID) {
		t.Errorf("job.WorkflowID = %v, want emailapi.WorkflowID(jobID); job = %+v", job.WorkflowID, job)
	} else if job.Mailboxes != len(s.Users) {
		t.Errorf("job.Mailboxes = %v, want %v (len(s.Users)); job = %+v", job.Mailboxes, len(s.Users), job)
	}
	if _, err := c.StartEmailJob(ctx, s.EmailSpec(jobID)); !errors.Is(err, client.ErrAlreadyRunning) {
		t.Errorf("second start: %v", err)
	}
	if _, err := c.WaitEmail(ctx, jobID, 300*time.Millisecond, func(st emailapi.Status) bool { return st.Phase == model.PhaseDeltaSync }); err != nil {
		t.Fatal(err)
	}
	// Visibility is eventually consistent: the job shows up under its phase shortly.
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := c.List(ctx, client.ListOptions{Kind: client.KindEmail, Phase: string(model.PhaseDeltaSync)})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(m client.Summary) bool { return m.EmailJobID() == jobID })
		if i >= 0 {
			if m := list[i]; m.Execution != "Running" {
				t.Errorf("m.Execution = %v, want \"Running\"; listed as %+v", m.Execution, m)
			} else if m.Domain != demo.Domain {
				t.Errorf("m.Domain = %v, want demo.Domain; listed as %+v", m.Domain, m)
			} else if m.TenantID != 1 {
				t.Errorf("m.TenantID = %v, want 1; listed as %+v", m.TenantID, m)
			} else if m.Kind != client.KindEmail {
				t.Errorf("m.Kind = %v, want client.KindEmail; listed as %+v", m.Kind, m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d not listed in delta_sync: %+v", jobID, list)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var refused *client.RefusedError
	if _, err := c.ConfirmDNSCutover(ctx, jobID, "ops", nil); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "ready_for_dns") {
		t.Fatalf("DNS confirmation before approval: %v", err)
	}
	d := &demo.EmailDriver{C: c, JobID: jobID, Poll: 300 * time.Millisecond, Out: testWriter{t},
		Arrive: func() error { s.Deliver(t, s.Users[1], 3, time.Now()); return nil }}
	st, err := d.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != model.PhaseClosed {
		t.Fatalf("st.Phase: want model.PhaseClosed; final status: phase %s approved by %q verify %+v",
			st.Phase, st.ApprovedBy, st.Verify)
	}
	if st.ApprovedBy != demo.Operator {
		t.Fatalf("st.ApprovedBy: want demo.Operator; final status: phase %s approved by %q verify %+v",
			st.Phase, st.ApprovedBy, st.Verify)
	}
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; final status: phase %s approved by %q verify %+v",
			st.Phase, st.ApprovedBy, st.Verify)
	}
	if st.Verify.Missing != 0 {
		t.Fatalf("st.Verify.Missing = %v, want 0; final status: phase %s approved by %q verify %+v",
			st.Verify.Missing, st.Phase, st.ApprovedBy, st.Verify)
	}
	path, err := s.DB.JobReportPath(ctx, jobID)
	if err != nil {
		t.Fatalf("err: want nil; report path: %q %v", path, err)
	}
	if path == "" {
		t.Fatalf("path: want != \"\"; report path: %q %v", path, err)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), "Complete: 0 messages missing") {
		t.Errorf("report %s: %v", path, err)
	}
	// The report's totals are the database's.
	var source, dest int64
	if err := s.DB.Pool.QueryRow(ctx, `SELECT sum(messages_source), sum(messages_dest) FROM migration_mailboxes WHERE job_id = $1`,
		jobID).Scan(&source, &dest); err != nil {
		t.Fatal(err)
	}
	if totals, err := report.ReadTotals(path); err != nil {
		t.Errorf("err: want nil; report totals %v (%v); database: source %d, dest %d; seeded %d",
			totals, err, source, dest, s.Seeded)
	} else if totals["source"] != source {
		t.Errorf("totals[\"source\"] = %v, want %v (source); report totals %v (%v); database: source %d, dest %d; seeded %d",
			totals["source"], source, totals, err, source, dest, s.Seeded)
	} else if totals["dest"] != dest {
		t.Errorf("totals[\"dest\"] = %v, want %v (dest); report totals %v (%v); database: source %d, dest %d; seeded %d",
			totals["dest"], dest, totals, err, source, dest, s.Seeded)
	} else if totals["missing"] != 0 {
		t.Errorf("totals[\"missing\"] = %v, want 0; report totals %v (%v); database: source %d, dest %d; seeded %d",
			totals["missing"], totals, err, source, dest, s.Seeded)
	} else if totals["quarantined"] != 0 {
		t.Errorf("totals[\"quarantined\"] = %v, want 0; report totals %v (%v); database: source %d, dest %d; seeded %d",
			totals["quarantined"], totals, err, source, dest, s.Seeded)
	} else if source < int64(s.Seeded) {
		t.Errorf("source: want >= int64(s.Seeded); report totals %v (%v); database: source %d, dest %d; seeded %d",
			totals, err, source, dest, s.Seeded)
	}

	// The legacy mail system (examples/mailsystem), incremental, into the worker's default target.
	sp, data, err := demo.MailSystem(ctx, t.TempDir(), "", 60, 600)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.StartDBMigration(ctx, dbmigrateapi.Input{MigrationType: model.MigrationIncremental, CreatedBy: "upstream", Spec: sp,
		Config: dbmigrateapi.Config{SyncInterval: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Order, []string{"accounts", "sessions", "emails"}) {
		t.Errorf("order %v", m.Order)
	}
	if _, err := c.ApproveSchemaChange(ctx, m.MigrationID, "no-such-op", "ops", ""); !errors.As(err, &refused) {
		t.Errorf("approval of an unknown operation: %v", err)
	}
	dst, err := (&demo.DBDriver{C: c, ID: m.MigrationID, Data: data, Poll: 300 * time.Millisecond, Out: testWriter{t}}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Status != model.OrchCompleted {
		t.Fatalf("migration: %+v", dst)
	}
	target, err := pgxpool.New(ctx, s.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var dbReport string
	if err := target.QueryRow(ctx, `SELECT coalesce(report_path, '') FROM cutover.migration_orchestrations WHERE id = $1`,
		m.MigrationID).Scan(&dbReport); err != nil {
		t.Fatalf("err: want nil; database report path: %q %v", dbReport, err)
	} else if dbReport == "" {
		t.Fatalf("dbReport: want != \"\"; database report path: %q %v", dbReport, err)
	}
	var rows, loaded, failed int64
	if err := target.QueryRow(ctx, `SELECT sum(records_total), sum(records_processed), sum(records_failed)
		FROM cutover.entity_migration_status WHERE migration_id = $1`, m.MigrationID).Scan(&rows, &loaded, &failed); err != nil {
		t.Fatal(err)
	}
	if totals, err := report.ReadTotals(dbReport); err != nil {
		t.Errorf("err: want nil; database report totals %v (%v); ledger: %d rows, %d loaded, %d failed; %d duplicates generated",
			totals, err, rows, loaded, failed, data.Duplicates)
	} else if totals["source"] != rows {
		t.Errorf("totals[\"source\"] = %v, want %v (rows); database report totals %v (%v); ledger: %d rows, %d loaded, %d failed; %d duplicates generated",
			totals["source"], rows, totals, err, rows, loaded, failed, data.Duplicates)
	} else if totals["loaded"] != loaded {
		t.Errorf("totals[\"loaded\"] = %v, want %v (loaded); database report totals %v (%v); ledger: %d rows, %d loaded, %d failed; %d duplicates generated",
			totals["loaded"], loaded, totals, err, rows, loaded, failed, data.Duplicates)
	} else if totals["quarantined"] != failed {
		t.Errorf("totals[\"quarantined\"] = %v, want %v (failed); database report totals %v (%v); ledger: %d rows, %d loaded, %d failed; %d duplicates generated",
			totals["quarantined"], failed, totals, err, rows, loaded, failed, data.Duplicates)
	} else if totals["missing"] != 0 {
		t.Errorf("totals[\"missing\"] = %v, want 0; database report totals %v (%v); ledger: %d rows, %d loaded, %d failed; %d duplicates generated",
			totals["missing"], totals, err, rows, loaded, failed, data.Duplicates)
	} else if failed != int64(data.Duplicates) {
		t.Errorf("failed: want int64(data.Duplicates); database report totals %v (%v); ledger: %d rows, %d loaded, %d failed; %d duplicates generated",
			totals, err, rows, loaded, failed, data.Duplicates)
	}

	// The worker's metrics after the run.
	metrics := scrape(t, "http://"+s.MetricsAddr+"/metrics")
	for _, series := range []string{
		`cutover_mail_messages_total{result="transferred"}`,
		`cutover_mail_bytes_total`,
		`cutover_db_rows_total{result="ok"}`,
		`cutover_db_batches_total{outcome="committed"}`,
		`cutover_pass_duration_seconds_count{kind="mail",run_type="initial"}`,
		`cutover_phase_duration_seconds_count{kind="email",phase="delta_sync"}`,
		`cutover_phase_duration_seconds_count{kind="database",phase="running"}`,
		`cutover_db_batch_duration_seconds_count`,
	} {
		if v, ok := metrics[series]; !ok || v <= 0 {
			t.Errorf("%s = %v (present %v)", series, v, ok)
		}
	}
	if metrics[`cutover_mail_messages_total{result="transferred"}`] < float64(s.Seeded) {
		t.Errorf("transferred %v < %d messages seeded", metrics[`cutover_mail_messages_total{result="transferred"}`], s.Seeded)
	}
}

var sampleLine = regexp.MustCompile(`^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$`)

// scrape reads a Prometheus text exposition into series → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := sampleLine.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err == nil {
				out[m[1]] = v
			}
		}
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}
