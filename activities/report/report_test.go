package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/html"

	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/metrics"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
)

// parsed is what a test reads back from a report: the totals row by data-field, the number of
// counted rows, the quarantine count and the verdict.
type parsed struct {
	totals      map[string]int64
	rows        int
	quarantined int64
	verdict     string
	svg         bool
	text        string
}

func parseReport(t *testing.T, path string) parsed {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatalf("report is not HTML: %v", err)
	}
	p := parsed{totals: map[string]int64{}}
	var text strings.Builder
	attr := func(n *html.Node, key string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == key {
				return a.Val, true
			}
		}
		return "", false
	}
	var content func(n *html.Node) string
	content = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(content(c))
		}
		return b.String()
	}
	var walk func(n *html.Node, inTotal, inCounts bool)
	walk = func(n *html.Node, inTotal, inCounts bool) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script", "link", "img", "iframe":
				t.Errorf("report is not self-contained: <%s>", n.Data)
			case "svg":
				p.svg = true
			case "table":
				id, _ := attr(n, "id")
				inCounts = id == "counts"
			case "tr":
				if r, _ := attr(n, "data-row"); r == "total" {
					inTotal = true
				} else if inCounts && n.Parent != nil && n.Parent.Data == "tbody" {
					p.rows++
				}
			case "td":
				if field, ok := attr(n, "data-field"); ok && inTotal {
					s := strings.ReplaceAll(strings.Fields(content(n) + " x")[0], ",", "")
					v, err := strconv.ParseInt(s, 10, 64)
					if err != nil {
						t.Errorf("total %s = %q: %v", field, content(n), err)
					}
					p.totals[field] = v
				}
			case "span":
				if id, _ := attr(n, "id"); id == "quarantine-count" {
					c, _ := attr(n, "data-count")
					p.quarantined, _ = strconv.ParseInt(c, 10, 64)
				}
			case "p":
				if id, _ := attr(n, "id"); id == "verdict" {
					p.verdict = content(n)
				}
			}
		}
		if n.Type == html.TextNode {
			text.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inTotal, inCounts)
		}
	}
	walk(doc, false, false)
	p.text = text.String()
	return p
}

// observations is how many phase durations the histogram holds for kind and phase.
func observations(t *testing.T, kind, phase string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.PhaseDuration.WithLabelValues(kind, phase).(interface{ Write(*dto.Metric) error }).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func one(t *testing.T, db *store.DB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestEmailReport writes the report of a verified job from real control tables and reads it
// back: the totals are the database's, quarantined messages are listed with their reasons,
// the approval and the passes are there, and the path is recorded in migration_runs.log_path.
func TestEmailReport(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	const jobID = 77
	if _, err := db.CreateJob(ctx, store.Job{ID: jobID, TenantID: 3, Domain: "example.org", SourceServerLabel: "old host",
		DestIMAPHost: "imap.new.example:993"}); err != nil {
		t.Fatal(err)
	}
	rep := &report.Reporter{Dir: t.ArtifactDir(), DB: db} // kept with -artifacts: a sample report
	// The phases as the workflow records them: each change lands in the phase log.
	approvedAt := time.Now().UTC().Truncate(time.Second)
	before := observations(t, "email", "preflight")
	for _, ph := range []model.Phase{model.PhasePreflight, model.PhaseInitialSync, model.PhaseDeltaSync, model.PhaseDeltaSync,
		model.PhaseCutoverReady, model.PhaseDNSCutover, model.PhaseFinalSync} {
		st := store.JobState{ID: jobID, Phase: ph, Gate: model.GateWarning}
		if _, err := db.RecordJobState(ctx, st, "", ""); err != nil {
			t.Fatal(err)
		}
		rep.EmailRecorded(ctx, st)
	}
	if n := observations(t, "email", "preflight"); n != before+1 {
		t.Errorf("preflight durations observed: %d before, %d after; want one more", before, n)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE migration_jobs SET approved_by = 'ops-lead', approved_at = $2, migration_gate = 'ready_for_dns' WHERE id = $1`,
		jobID, approvedAt); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordGateChecks(ctx, jobID, []store.GateCheck{
		{CheckID: model.CheckCountRatio, Status: model.CheckPass, Message: "all mailboxes at 100%"},
		{CheckID: model.CheckManualApproval, Status: model.CheckPass, Message: "approved by ops-lead"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	var mbIDs []int64
	for i, email := range []string{"alice@example.org", "bob@example.org", "carol@example.org"} {
		m, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: jobID, Email: email, SourceType: model.SourceIMAP})
		if err != nil {
			t.Fatal(err)
		}
		mbIDs = append(mbIDs, m.ID)
		if err := db.SetMailboxProgress(ctx, m.ID, store.MailboxProgress{MessagesSource: int64(100 + i), MessagesDest: int64(100 + i - i%2),
			BytesSource: 1 << 20, BytesDest: 1 << 20, Status: model.MailboxOK}); err != nil {
			t.Fatal(err)
		}
		for j, rt := range []model.RunType{model.RunPreflight, model.RunInitial, model.RunDelta, model.RunDelta, model.RunFinal, model.RunVerify} {
			started := start.Add(time.Duration(j)*10*time.Minute + time.Duration(i)*time.Second)
			done := started.Add(30 * time.Second)
			// As the verify activity writes it: the destination rewrote one of carol's messages' headers.
			stats, _ := json.Marshal(map[string]any{"transferred": 40 * (j + 1), "bytes_transferred": 1000, "missing": 0, "extra": i,
				"rewritten": i / 2})
			mb := m.ID
			if _, err := db.RecordRun(ctx, store.Run{JobID: jobID, MailboxID: &mb, RunType: rt, Tool: model.ToolIMAPSync,
				Status: model.RunSuccess, Stats: stats, StartedAt: started, FinishedAt: &done}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// bob's second message was refused by the destination: quarantined, with the reason.
	f, err := db.EnsureMailFolder(ctx, mbIDs[1], "INBOX", "INBOX", `\Inbox`)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.QuarantineMailMessage(ctx, store.MailQuarantine{MailboxID: mbIDs[1], FolderID: f.ID, SourceUID: 2, Identity: "id-2",
		Description: "<huge@example.org> Holiday pictures", Size: 60 << 20, ErrorClass: "too_big", Reason: "NO [LIMIT] message too large"}); err != nil {
		t.Fatal(err)
	}

	// Two of bob's messages were stored without keywords the destination refused.
	dest := int64(7)
	var ms []store.MailMessage
	for uid, dropped := range [][]string{nil, {"tag101", "tag100"}, {"tag102"}} {
		ms = append(ms, store.MailMessage{FolderID: f.ID, SourceUID: int64(10 + uid), DestUID: &dest, State: store.MailCopied,
			Identity: fmt.Sprint("id-", uid), DroppedFlags: dropped})
	}
	if err := db.PutMailMessages(ctx, ms); err != nil {
		t.Fatal(err)
	}

	st := store.JobState{ID: jobID, Phase: model.PhaseVerified, Gate: model.GateReadyForDNS, ApprovedBy: "ops-lead", ApprovedAt: &approvedAt}
	if _, err := db.RecordJobState(ctx, st, "", ""); err != nil {
		t.Fatal(err)
	}
	rep.EmailRecorded(ctx, st) // verified: the report is written
	path, err := db.JobReportPath(ctx, jobID)
	if err != nil {
		t.Fatalf("err: want nil; report path in migration_runs = %q (%v), want %s", path, err, rep.EmailPath(jobID))
	}
	if path != rep.EmailPath(jobID) {
		t.Fatalf("path: want rep.EmailPath(jobID); report path in migration_runs = %q (%v), want %s",
			path, err, rep.EmailPath(jobID))
	}
	p := parseReport(t, path)
	want := map[string]int64{
		"source":      one(t, db, `SELECT sum(messages_source) FROM migration_mailboxes WHERE job_id = $1`, jobID),
		"dest":        one(t, db, `SELECT sum(messages_dest) FROM migration_mailboxes WHERE job_id = $1`, jobID),
		"quarantined": one(t, db, `SELECT count(*) FROM mail_quarantine q JOIN migration_mailboxes m ON m.id = q.mailbox_id WHERE m.job_id = $1 AND q.resolved_at IS NULL`, jobID),
		"missing":     0,
	}
	for k, v := range want {
		if p.totals[k] != v {
			t.Errorf("report total %s = %d, database says %d", k, p.totals[k], v)
		}
	}
	if totals, err := report.ReadTotals(path); err != nil {
		t.Errorf("err: want nil; ReadTotals = %v, %v; want %v", totals, err, want)
	} else if totals["source"] != want["source"] {
		t.Errorf("totals[\"source\"] = %v, want %v (want[\"source\"]); ReadTotals = %v, %v; want %v",
			totals["source"], want["source"], totals, err, want)
	} else if totals["dest"] != want["dest"] {
		t.Errorf("totals[\"dest\"] = %v, want %v (want[\"dest\"]); ReadTotals = %v, %v; want %v",
			totals["dest"], want["dest"], totals, err, want)
	} else if totals["quarantined"] != want["quarantined"] {
		t.Errorf("totals[\"quarantined\"] = %v, want %v (want[\"quarantined\"]); ReadTotals = %v, %v; want %v",
			totals["quarantined"], want["quarantined"], totals, err, want)
	} else if totals["missing"] != 0 {
		t.Errorf("totals[\"missing\"] = %v, want 0; ReadTotals = %v, %v; want %v",
			totals["missing"], totals, err, want)
	}
	if p.rows != 3 {
		t.Errorf("p.rows: want 3; rows %d, quarantine count %d, svg %v", p.rows, p.quarantined, p.svg)
	} else if p.quarantined != 1 {
		t.Errorf("p.quarantined: want 1; rows %d, quarantine count %d, svg %v", p.rows, p.quarantined, p.svg)
	} else if !p.svg {
		t.Errorf("p.svg is false; rows %d, quarantine count %d, svg %v", p.rows, p.quarantined, p.svg)
	}
	for _, s := range []string{"Complete: 0 messages missing", "NO [LIMIT] message too large", "Holiday pictures", "ops-lead",
		approvedAt.Format("2006-01-02 15:04:05"), "delta #2", "verify #1", "dns_cutover", "manual_approval",
		"carol@example.org: 1 message(s) present with identifying headers the destination rewrote",
		"bob@example.org: 2 message(s) stored without keywords the destination refused: tag100 tag101 tag102"} {
		if !strings.Contains(p.text, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if !strings.HasPrefix(p.verdict, "Complete: 0 messages missing") {
		t.Errorf("verdict %q", p.verdict)
	}
	// Re-entering verified writes nothing new; closed rewrites the same report and run row.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	rep.EmailRecorded(ctx, st)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a repeated record of the same phase wrote the report again")
	}
	st.Phase = model.PhaseClosed
	rep.EmailRecorded(ctx, st)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("closed: %v", err)
	}
	if n := one(t, db, `SELECT count(*) FROM migration_runs WHERE job_id = $1 AND mailbox_id IS NULL AND log_path = $2`, jobID, path); n != 1 {
		t.Errorf("%d report runs, want 1", n)
	}
	phases, err := db.ListPhases(ctx, report.KindEmail, strconv.Itoa(jobID))
	if err != nil {
		t.Errorf("err: want nil; phase log: %+v %v", phases, err)
	} else if len(phases) != 8 {
		t.Errorf("len(phases) = %v, want 8; phase log: %+v %v", len(phases), phases, err)
	} else if phases[7].Phase != "closed" {
		t.Errorf("phases[7].Phase = %v, want \"closed\"; phase log: %+v %v", phases[7].Phase, phases, err)
	} else if phases[7].LeftAt != nil {
		t.Errorf("phases[7].LeftAt = %v, want nil; phase log: %+v %v", phases[7].LeftAt, phases, err)
	} else if phases[6].LeftAt == nil {
		t.Errorf("phases[6].LeftAt is nil; phase log: %+v %v", phases, err)
	}
}

// TestDBReport writes a completed migration's report from a real ledger and reads it back.
func TestDBReport(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	id := uuid.New()
	if _, err := db.CreateOrchestration(ctx, store.Orchestration{ID: id, MigrationType: model.MigrationFull, TotalEntities: 2, CreatedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	rep := &report.Reporter{Dir: t.ArtifactDir()}
	rep.DBTransition(ctx, db.Store, id, model.OrchPending)
	if err := db.TransitionOrchestration(ctx, id, model.OrchRunning); err != nil {
		t.Fatal(err)
	}
	rep.DBTransition(ctx, db.Store, id, model.OrchRunning)
	start := time.Now().Add(-time.Minute)
	for i, name := range []string{"accounts", "emails"} {
		es, err := db.UpsertEntityStatus(ctx, store.EntityStatus{MigrationID: id, EntityName: name, TargetEntity: name,
			DependencyOrder: int32(i), RecordsTotal: int64(1000 * (i + 1)), BatchSize: 500})
		if err != nil {
			t.Fatal(err)
		}
		failed := int64(i) // one emails row quarantined
		if err := db.SetEntityProgress(ctx, es.ID, store.EntityProgress{RecordsTotal: int64(1000 * (i + 1)), RecordsProcessed: int64(1000*(i+1)) - failed, RecordsFailed: failed}); err != nil {
			t.Fatal(err)
		}
		for b := range 2 * (i + 1) {
			s := start.Add(time.Duration(b) * time.Second)
			e := s.Add(500 * time.Millisecond)
			ms := int64(500)
			if _, err := db.RecordBatch(ctx, store.Batch{EntityStatusID: es.ID, BatchNumber: int64(b), BatchSize: 500,
				Status: model.BatchCompleted, RecordsSuccessful: 500, StartedAt: &s, CompletedAt: &e, ProcessingDurationMS: &ms}); err != nil {
				t.Fatal(err)
			}
		}
		details, _ := json.Marshal(map[string]any{"source_rows": 1000 * (i + 1), "mapped": 1000*(i+1) - i, "quarantined": i})
		if err := db.RecordValidation(ctx, store.ValidationResult{MigrationID: id, EntityName: name, ValidationType: model.ValidationCompleteness,
			Status: model.ValidationPassed, RecordsValidated: int64(1000 * (i + 1)), IssueDetails: details,
			ValidationCriteria: json.RawMessage(`{"check":"counts"}`)}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			rid := "4242"
			if _, err := db.RecordError(ctx, store.MigrationError{MigrationID: id, EntityStatusID: &es.ID, ErrorType: model.ErrConstraintViolation,
				ErrorCode: "23505", ErrorMessage: "duplicate key value violates unique constraint \"emails_message_id_uniq_pkey\"", SourceRecordID: &rid}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.TransitionOrchestration(ctx, id, model.OrchCompleted); err != nil {
		t.Fatal(err)
	}
	rep.DBTransition(ctx, db.Store, id, model.OrchCompleted)
	path, err := db.OrchestrationReport(ctx, id)
	if err != nil {
		t.Fatalf("err: want nil; report_path = %q (%v)", path, err)
	}
	if path != rep.DBPath(id) {
		t.Fatalf("path: want rep.DBPath(id); report_path = %q (%v)", path, err)
	}
	p := parseReport(t, path)
	want := map[string]int64{
		"source":      one(t, db, `SELECT sum(records_total) FROM entity_migration_status WHERE migration_id = $1`, id),
		"loaded":      one(t, db, `SELECT sum(records_processed) FROM entity_migration_status WHERE migration_id = $1`, id),
		"quarantined": one(t, db, `SELECT sum(records_failed) FROM entity_migration_status WHERE migration_id = $1`, id),
		"missing":     0,
	}
	for k, v := range want {
		if p.totals[k] != v {
			t.Errorf("report total %s = %d, ledger says %d", k, p.totals[k], v)
		}
	}
	if p.rows != 2 {
		t.Errorf("p.rows: want 2; rows %d quarantined %d svg %v verdict %q", p.rows, p.quarantined, p.svg, p.verdict)
	} else if p.quarantined != 1 {
		t.Errorf("p.quarantined: want 1; rows %d quarantined %d svg %v verdict %q",
			p.rows, p.quarantined, p.svg, p.verdict)
	} else if !p.svg {
		t.Errorf("p.svg is false; rows %d quarantined %d svg %v verdict %q", p.rows, p.quarantined, p.svg, p.verdict)
	} else if !strings.HasPrefix(p.verdict, "Complete: 0 rows missing") {
		t.Errorf("strings.HasPrefix(p.verdict, \"Complete: 0 rows missing\") is false; rows %d quarantined %d svg %v verdict %q",
			p.rows, p.quarantined, p.svg, p.verdict)
	}
	for _, s := range []string{"source id 4242", "23505", "emails_message_id_uniq_pkey", "running", "completed", "accounts data_completeness (counts)"} {
		if !strings.Contains(p.text, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

// TestLedgerMessageCounts counts what the sync ledger maps per mailbox (pending APPENDs not yet).
func TestLedgerMessageCounts(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.CreateJob(ctx, store.Job{ID: 5, TenantID: 1, Domain: "example.org"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i, email := range []string{"a@example.org", "b@example.org"} {
		m, err := db.UpsertMailbox(ctx, store.Mailbox{JobID: 5, Email: email, SourceType: model.SourceIMAP})
		if err != nil {
			t.Fatal(err)
		}
		for j, folder := range []string{"INBOX", "Sent"} {
			f, err := db.EnsureMailFolder(ctx, m.ID, folder, folder, "")
			if err != nil {
				t.Fatal(err)
			}
			var ms []store.MailMessage
			for uid := range 3 + i + j {
				state := store.MailCopied
				if uid == 0 {
					state = "pending" // sent, answer unknown: not counted
				} else {
					want[email]++
				}
				ms = append(ms, store.MailMessage{FolderID: f.ID, SourceUID: int64(uid + 1), State: state, Identity: fmt.Sprint(uid), Size: 10})
			}
			if err := db.PutMailMessages(ctx, ms); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := db.LedgerMessageCounts(ctx, 5, []string{"a@example.org", "b@example.org", "nobody@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("len(got) = %v, want 2; ledger counts %v, want %v", len(got), got, want)
	} else if got["a@example.org"] != want["a@example.org"] {
		t.Errorf("got[\"a@example.org\"] = %v, want %v (want[\"a@example.org\"]); ledger counts %v, want %v",
			got["a@example.org"], want["a@example.org"], got, want)
	} else if got["b@example.org"] != want["b@example.org"] {
		t.Errorf("got[\"b@example.org\"] = %v, want %v (want[\"b@example.org\"]); ledger counts %v, want %v",
			got["b@example.org"], want["b@example.org"], got, want)
	}
}

// TestDBReportShowsCaptureSlotAndWindow: while a PostgreSQL source's capture is installed the
// report names its replication slot (it keeps WAL until dropped); once removed it says nothing
// is left in the source; a measured cutover window is listed with its seconds and figures.
func TestDBReportShowsCaptureSlotAndWindow(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenAndMigrate(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	id := uuid.New()
	if _, err := db.CreateOrchestration(ctx, store.Orchestration{ID: id, MigrationType: model.MigrationIncremental, TotalEntities: 1, CreatedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO change_capture (migration_id, source_name, direction, method, position, slot_name,
		changes_applied, drains, rows_per_second) VALUES ($1, 'app', 'forward', 'pg_logical', '0/1C84CF0', 'cutover_fwd_1', 6463, 4, 2642)`, id); err != nil {
		t.Fatal(err)
	}
	render := func() string {
		r, err := report.CollectDB(ctx, db.Store, id, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := report.RenderDB(&b, r); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	page := render()
	for _, want := range []string{"forward app by pg_logical: 6,463 changes applied in 4 drains (last 2642/s), position 0/1C84CF0; still installed, " +
		"replication slot cutover_fwd_1 (it keeps WAL until dropped)", "No cutover freeze measured."} {
		if !strings.Contains(page, want) {
			t.Errorf("report during catch-up lacks %q", want)
		}
	}
	start := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	if _, err := db.Pool.Exec(ctx, `UPDATE change_capture SET removed_at = now() WHERE migration_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO cutover_windows (migration_id, started_at, completed_at, seconds, drained_changes, validated_rows, passed)
		VALUES ($1, $2, $3, 4.218, 6463, 6437, true)`, id, start, start.Add(4218*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	page = render()
	for _, want := range []string{"nothing of it is left in the source", "4.22 s from ", "6,463 changes drained, 6,437 rows validated, validated"} {
		if !strings.Contains(page, want) {
			t.Errorf("report after cutover lacks %q", want)
		}
	}
	if strings.Contains(page, "cutover_fwd_1 (it keeps WAL") {
		t.Error("report after removal still shows the slot as kept")
	}
}
