package report

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
)

// maxListed bounds the quarantine rows a report lists one by one (the totals count them all).
const maxListed = 1000

// EmailReport is everything an email job's report shows.
type EmailReport struct {
	GeneratedAt  time.Time
	JobID        int64
	Domain       string
	TenantID     int64
	TicketID     *int64
	Phase        model.Phase
	Gate         model.Gate
	FailedPhase  model.Phase
	LastError    string
	Source       string
	Destination  string
	ApprovedBy   string
	ApprovedAt   *time.Time
	DNSCutoverAt *time.Time
	// MissingKnown: every mailbox has a verification; otherwise Missing is source − destination
	// − quarantined, an estimate.
	MissingKnown bool
	Mailboxes    []MailboxRow
	Totals       MailboxRow
	Quarantine   []QuarantineRow
	QuarantineN  int // all unresolved quarantined messages (Quarantine may list fewer)
	Checks       []CheckRow
	Evaluations  int // gate evaluations recorded
	Passes       []Pass
	Phases       []store.PhaseSpan
	// Skipped: mailboxes taken out of the job (who, when, why).
	Skipped []store.MailboxSkip
	// Deletions: what passes deleted on the destination, per mailbox, reason and mode.
	Deletions []DeletionRow
}

// DeletionRow is what one mailbox's passes deleted on the destination for one reason.
type DeletionRow struct {
	Email    string
	Reason   string // source_gone: the job's own copy; not_on_source: strict_mirror
	Mode     string // mirror or strict_mirror (destructive)
	Messages int64
	Bytes    int64
}

// MailboxRow is one mailbox's counts.
type MailboxRow struct {
	Email       string
	Status      model.MailboxStatus
	Source      int64 // messages on the source
	Dest        int64 // messages on the destination (mapped from the source, adopted included)
	Quarantined int64 // unresolved quarantined messages
	Missing     int64 // source messages neither on the destination nor in quarantine
	Extra       int64 // destination messages with no source (new mail after the cutover, ...)
	BytesSource int64
	BytesDest   int64
	Verified    bool // Missing comes from a verification
	LastError   string
	// What the destination stored differently: messages present with identifying headers it
	// rewrote (the latest verification), and messages stored without keywords it refused.
	Rewritten       int64
	KeywordsDropped int64
	DroppedKeywords []string // some of them (maxKeywordsListed)
	// LogPath is the log of the mailbox's last run (migration_runs.log_path), relative to the
	// report when the report's directory holds it.
	LogPath string
}

// maxKeywordsListed bounds the refused keywords a report names per mailbox.
const maxKeywordsListed = 20

// QuarantineRow is a message (or a row) that was not copied, and why.
type QuarantineRow struct {
	Where   string // mailbox and folder, or entity
	Item    string // message description, or source record id
	Size    int64
	Class   string
	Reason  string
	Tries   int32
	Seen    time.Time
	Retried bool // later passes try it again
}

// CheckRow is one go/no-go check (email) or a validation / schema change (database).
type CheckRow struct {
	ID      string
	Status  string
	Message string
	At      *time.Time
	By      string
}

// Pass is one pass over every mailbox (or one entity's load), for the timeline and the chart.
type Pass struct {
	Label    string
	Kind     string // run type, or entity
	Started  time.Time
	Finished time.Time
	Units    int64   // mailboxes, or batches
	Items    int64   // messages transferred, or rows loaded
	Bytes    int64   // bytes transferred (email)
	PerSec   float64 // Items per second over the pass
}

// Seconds is the pass's wall time.
func (p Pass) Seconds() float64 { return p.Finished.Sub(p.Started).Seconds() }

type runStats struct {
	Transferred      int64   `json:"transferred"`
	BytesTransferred int64   `json:"bytes_transferred"`
	Missing          *int64  `json:"missing"`
	Extra            int64   `json:"extra"`
	Rewritten        int64   `json:"rewritten"`
	Report           bool    `json:"report"`
	Mode             string  `json:"mode"`
	Duration         float64 `json:"duration_seconds"`
}

// CollectEmail reads a job's report from the control tables.
func CollectEmail(ctx context.Context, st *store.Store, jobID int64, now time.Time) (EmailReport, error) {
	job, err := st.GetJobProgress(ctx, jobID)
	if err != nil {
		return EmailReport{}, err
	}
	rep := EmailReport{GeneratedAt: now.UTC(), JobID: jobID, Domain: job.Domain, TenantID: job.TenantID, TicketID: job.TicketID,
		Phase: job.Phase, Gate: job.Gate, FailedPhase: job.FailedPhase, LastError: job.LastError,
		Source: job.SourceServerLabel, Destination: job.DestIMAPHost, ApprovedAt: job.ApprovedAt, DNSCutoverAt: job.DNSCutoverAt}
	if job.ApprovedBy != nil {
		rep.ApprovedBy = *job.ApprovedBy
	}
	mbs, err := st.ListMailboxes(ctx, jobID)
	if err != nil {
		return rep, err
	}
	runs, err := st.ListRuns(ctx, jobID, 0)
	if err != nil {
		return rep, err
	}
	quarantine, err := st.ListJobQuarantine(ctx, jobID)
	if err != nil {
		return rep, err
	}
	qPerMailbox := map[int64]int64{}
	for _, q := range quarantine {
		qPerMailbox[q.MailboxID]++
	}
	// The latest verification of each mailbox.
	verified := map[int64]runStats{}
	var mailboxRuns []store.Run
	lastLog := map[int64]string{}
	for _, r := range runs {
		var s runStats
		_ = json.Unmarshal(r.Stats, &s)
		if r.MailboxID == nil || s.Report {
			continue
		}
		mailboxRuns = append(mailboxRuns, r)
		if r.LogPath != "" {
			lastLog[*r.MailboxID] = r.LogPath
		}
		if r.RunType == model.RunVerify && r.Status != model.RunFailed && s.Missing != nil {
			verified[*r.MailboxID] = s
		}
	}
	dropped, err := st.JobDroppedKeywords(ctx, jobID, maxKeywordsListed)
	if err != nil {
		return rep, err
	}
	rep.MissingKnown = len(mbs) > 0
	for _, m := range mbs {
		row := MailboxRow{Email: m.Email, Status: m.Status, Source: m.MessagesSource, Dest: m.MessagesDest,
			Quarantined: qPerMailbox[m.ID], BytesSource: m.BytesSource, BytesDest: m.BytesDest, LastError: m.LastError,
			KeywordsDropped: dropped[m.ID].Messages, DroppedKeywords: dropped[m.ID].Keywords,
			LogPath: lastLog[m.ID]}
		if v, ok := verified[m.ID]; ok {
			row.Missing, row.Extra, row.Verified, row.Rewritten = *v.Missing, v.Extra, true, v.Rewritten
		} else {
			rep.MissingKnown = false
			row.Missing = max(0, row.Source-row.Dest-row.Quarantined)
		}
		rep.Mailboxes = append(rep.Mailboxes, row)
		t := &rep.Totals
		t.Source += row.Source
		t.Dest += row.Dest
		t.Quarantined += row.Quarantined
		t.Missing += row.Missing
		t.Extra += row.Extra
		t.BytesSource += row.BytesSource
		t.BytesDest += row.BytesDest
	}
	rep.Totals.Email, rep.Totals.Verified = "total", rep.MissingKnown
	rep.QuarantineN = len(quarantine)
	for i, q := range quarantine {
		if i == maxListed {
			break
		}
		item := q.Description
		if item == "" {
			item = q.Identity
		}
		rep.Quarantine = append(rep.Quarantine, QuarantineRow{Where: q.Email + " " + q.Folder, Item: item, Size: q.Size,
			Class: q.ErrorClass, Reason: q.Reason, Tries: q.Attempts, Seen: q.LastSeenAt, Retried: q.Retry})
	}
	checks, err := st.LatestGateChecks(ctx, jobID)
	if err != nil {
		return rep, err
	}
	for _, id := range model.AllCheckIDs() { // the gate's order
		for _, c := range checks {
			if c.CheckID == id {
				at := c.CheckedAt
				row := CheckRow{ID: string(c.CheckID), Status: string(c.Status), Message: c.Message, At: &at}
				if id == model.CheckManualApproval {
					row.By = rep.ApprovedBy
				}
				if c.AcceptedBy != nil && c.AcceptedAt != nil && c.AcceptReason != nil {
					// A warning a human reviewed: who accepted it, when and why.
					row.Status, row.By, row.At = string(c.Status)+" (accepted)", *c.AcceptedBy, c.AcceptedAt
					row.Message += " — accepted: " + *c.AcceptReason
				}
				rep.Checks = append(rep.Checks, row)
			}
		}
	}
	all, err := st.ListGateChecks(ctx, jobID)
	if err != nil {
		return rep, err
	}
	evaluations := map[time.Time]bool{}
	for _, c := range all {
		evaluations[c.CheckedAt] = true
	}
	rep.Evaluations = len(evaluations)
	rep.Passes = emailPasses(mailboxRuns)
	if rep.Skipped, err = st.ListSkips(ctx, jobID); err != nil {
		return rep, err
	}
	dels, err := st.CountMailDeletions(ctx, jobID)
	if err != nil {
		return rep, err
	}
	emails := map[int64]string{}
	for _, m := range mbs {
		emails[m.ID] = m.Email
	}
	for _, d := range dels {
		rep.Deletions = append(rep.Deletions, DeletionRow{Email: emails[d.MailboxID], Reason: d.Reason, Mode: d.Mode,
			Messages: d.Messages, Bytes: d.Bytes})
	}
	if rep.Phases, err = st.ListPhases(ctx, KindEmail, strconv.FormatInt(jobID, 10)); err != nil {
		return rep, err
	}
	return rep, nil
}

// emailPasses groups mailbox runs into passes: runs of one type in start order, a new pass
// beginning when a mailbox comes round again (a pass touches each mailbox once; a retried
// activity keeps its row).
func emailPasses(runs []store.Run) []Pass {
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].StartedAt.Before(runs[j].StartedAt) })
	var out []Pass
	counts := map[model.RunType]int{}
	var cur *Pass
	seen := map[int64]bool{}
	for _, r := range runs {
		if cur == nil || cur.Kind != string(r.RunType) || seen[*r.MailboxID] {
			if cur != nil {
				out = append(out, *cur)
			}
			counts[r.RunType]++
			label := string(r.RunType)
			if r.RunType == model.RunDelta || r.RunType == model.RunFinal || r.RunType == model.RunVerify {
				label = fmt.Sprintf("%s #%d", r.RunType, counts[r.RunType])
			}
			var rs runStats
			_ = json.Unmarshal(r.Stats, &rs)
			switch rs.Mode {
			case "strict_mirror":
				label += " strict_mirror (destructive)"
			case "mirror":
				label += " mirror"
			}
			cur = &Pass{Label: label, Kind: string(r.RunType), Started: r.StartedAt, Finished: r.StartedAt}
			seen = map[int64]bool{}
		}
		seen[*r.MailboxID] = true
		var s runStats
		_ = json.Unmarshal(r.Stats, &s)
		cur.Units++
		cur.Items += s.Transferred
		cur.Bytes += s.BytesTransferred
		if r.StartedAt.Before(cur.Started) {
			cur.Started = r.StartedAt
		}
		end := r.StartedAt
		if r.FinishedAt != nil {
			end = *r.FinishedAt
		}
		if end.After(cur.Finished) {
			cur.Finished = end
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	for i := range out {
		if s := out[i].Seconds(); s > 0 {
			out[i].PerSec = float64(out[i].Items) / s
		}
	}
	return out
}

// DBReport is everything a database migration's report shows.
type DBReport struct {
	GeneratedAt  time.Time
	MigrationID  uuid.UUID
	Type         model.MigrationType
	Status       model.OrchestrationStatus
	CreatedBy    string
	StartedAt    *time.Time
	CompletedAt  *time.Time
	Progress     float64
	ErrorCount   int64
	Entities     []EntityRow
	Totals       EntityRow
	Quarantine   []QuarantineRow
	QuarantineN  int
	Validations  []CheckRow
	SchemaOps    []CheckRow
	Passes       []Pass // one per entity: its load
	Phases       []store.PhaseSpan
	MissingKnown bool                  // every entity passed a completeness validation
	Captures     []store.CaptureRow    // change capture per source (and the reverse flow)
	Windows      []store.CutoverWindow // measured cutover freezes
	// Changes are the values transformations changed, per entity and column (none silently).
	Changes []store.TransformationCount
	// Acceptances are the operators' acceptances of quarantined rows (db accept-errors).
	Acceptances []store.ErrorAcceptance
	// Requests are what operators asked the migration for, who and why (db approve-op,
	// cutover, close, retry-failed, rollback, retry).
	Requests []store.OperatorRequest
	// Error is why the migration failed, when the report is written from the workflow's state
	// (a migration that failed before its ledger existed).
	Error string
}

// EntityRow is one entity's counts.
type EntityRow struct {
	Name        string
	Target      string
	Status      model.EntityStatus
	Source      int64 // rows in the source
	Loaded      int64 // rows written to the target
	Quarantined int64 // rows refused, in migration_errors
	Missing     int64 // source rows neither loaded nor quarantined
	PerSec      float64
	Validation  string // passed | warning | failed | "" (not validated)
}

// CollectDB reads a database migration's report from its ledger.
func CollectDB(ctx context.Context, ledger *store.Store, id uuid.UUID, now time.Time) (DBReport, error) {
	o, err := ledger.GetOrchestration(ctx, id)
	if err != nil {
		return DBReport{}, err
	}
	rep := DBReport{GeneratedAt: now.UTC(), MigrationID: id, Type: o.MigrationType, Status: o.Status, CreatedBy: o.CreatedBy,
		StartedAt: o.StartedAt, CompletedAt: o.CompletedAt, Progress: o.ProgressPercentage, ErrorCount: o.ErrorCount}
	ents, err := ledger.ListEntityStatus(ctx, id)
	if err != nil {
		return rep, err
	}
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].DependencyOrder < ents[j].DependencyOrder })
	vals, err := ledger.ListValidations(ctx, id)
	if err != nil {
		return rep, err
	}
	// The latest completeness count per entity says how many source rows there were when the
	// copy was proven; the latest status per (entity, check) is the entity's validation.
	type completeness struct {
		SourceRows *int64 `json:"source_rows"`
	}
	sourceRows := map[string]int64{}
	valStatus := map[string]model.ValidationStatus{}
	for _, v := range vals {
		var c completeness
		if json.Unmarshal(v.IssueDetails, &c) == nil && c.SourceRows != nil && v.ValidationType == model.ValidationCompleteness {
			sourceRows[v.EntityName] = *c.SourceRows
		}
		switch s := valStatus[v.EntityName]; {
		case v.ValidationType == model.ValidationPerformance: // a measurement, listed below: not the entity's verdict
		case s == "", v.Status == model.ValidationFailed, v.Status == model.ValidationWarning && s == model.ValidationPassed:
			valStatus[v.EntityName] = v.Status
		}
		var crit struct {
			Check string `json:"check"`
		}
		_ = json.Unmarshal(v.ValidationCriteria, &crit)
		at := v.ExecutedAt
		rep.Validations = append(rep.Validations, CheckRow{ID: v.EntityName + " " + string(v.ValidationType) + orEmpty(" ("+crit.Check+")", crit.Check),
			Status: string(v.Status), Message: fmt.Sprintf("%d records validated, %d issues", v.RecordsValidated, v.IssuesFound), At: &at})
	}
	rep.MissingKnown = len(ents) > 0
	names := map[uuid.UUID]string{}
	for _, e := range ents {
		names[e.ID] = e.EntityName
		row := EntityRow{Name: e.EntityName, Target: e.TargetEntity, Status: e.Status, Source: e.RecordsTotal,
			Loaded: e.RecordsProcessed, Quarantined: e.RecordsFailed, PerSec: e.ThroughputPerSecond,
			Validation: string(valStatus[e.EntityName])}
		if n, ok := sourceRows[e.EntityName]; ok {
			row.Source = n
		} else {
			rep.MissingKnown = false
		}
		row.Missing = max(0, row.Source-row.Loaded-row.Quarantined)
		rep.Entities = append(rep.Entities, row)
		t := &rep.Totals
		t.Source += row.Source
		t.Loaded += row.Loaded
		t.Quarantined += row.Quarantined
		t.Missing += row.Missing

		batches, err := ledger.ListBatches(ctx, e.ID)
		if err != nil {
			return rep, err
		}
		p := Pass{Label: e.EntityName, Kind: e.EntityName}
		busy := 0.0 // seconds spent in batch transactions: catch-up pauses are not copy time
		for _, b := range batches {
			if b.ProcessingDurationMS != nil {
				busy += float64(*b.ProcessingDurationMS) / 1000
			}
			if b.StartedAt == nil {
				continue
			}
			end := *b.StartedAt
			if b.CompletedAt != nil {
				end = *b.CompletedAt
			}
			if p.Units == 0 || b.StartedAt.Before(p.Started) {
				p.Started = *b.StartedAt
			}
			if end.After(p.Finished) {
				p.Finished = end
			}
			p.Units++
			p.Items += int64(b.RecordsSuccessful)
		}
		if p.Units > 0 {
			if busy > 0 {
				p.PerSec = float64(p.Items) / busy
			} else if s := p.Seconds(); s > 0 {
				p.PerSec = float64(p.Items) / s
			}
			rep.Passes = append(rep.Passes, p)
		}
	}
	rep.Totals.Name = "total"
	errs, err := ledger.ListErrors(ctx, id, true)
	if err != nil {
		return rep, err
	}
	rep.QuarantineN = len(errs)
	for i, e := range errs {
		if i == maxListed {
			break
		}
		where := ""
		if e.EntityStatusID != nil {
			where = names[*e.EntityStatusID]
		}
		item := ""
		if e.SourceRecordID != nil {
			item = "source id " + *e.SourceRecordID
		}
		rep.Quarantine = append(rep.Quarantine, QuarantineRow{Where: where, Item: item, Class: string(e.ErrorType) + orEmpty(" "+e.ErrorCode, e.ErrorCode),
			Reason: e.ErrorMessage, Seen: e.OccurredAt})
	}
	ops, err := ledger.ListSchemaOps(ctx, id)
	if err != nil {
		return rep, err
	}
	for _, op := range ops {
		what := string(op.OperationType) + " " + op.TableName
		if op.ColumnName != nil {
			what += "." + *op.ColumnName
		}
		row := CheckRow{ID: what, Status: string(op.Status), Message: "risk " + string(op.RiskLevel), At: op.ExecutedAt}
		if op.ApprovedBy != nil {
			row.By = *op.ApprovedBy
			if op.ApprovedAt != nil {
				row.Message += ", approved " + op.ApprovedAt.UTC().Format(time.RFC3339)
			}
		}
		rep.SchemaOps = append(rep.SchemaOps, row)
	}
	if rep.Phases, err = ledger.ListPhases(ctx, KindDatabase, id.String()); err != nil {
		return rep, err
	}
	if rep.Captures, err = ledger.ListCaptures(ctx, id); err != nil {
		return rep, err
	}
	if rep.Windows, err = ledger.ListCutoverWindows(ctx, id); err != nil {
		return rep, err
	}
	if rep.Changes, err = ledger.ListTransformationCounts(ctx, id); err != nil {
		return rep, err
	}
	if rep.Acceptances, err = ledger.ListErrorAcceptances(ctx, id); err != nil {
		return rep, err
	}
	if rep.Requests, err = ledger.ListOperatorRequests(ctx, id); err != nil {
		return rep, err
	}
	return rep, nil
}

func orEmpty(s, cond string) string {
	if cond == "" {
		return ""
	}
	return s
}
