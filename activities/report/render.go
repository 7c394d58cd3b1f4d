package report

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/store"
)

// The report is one HTML file: inline CSS, inline SVG, no script, no external resource, so it
// can be mailed, attached to a ticket or opened offline. Counts carry data-field attributes so
// tools (and the tests) can read them back.

type cell struct {
	Field string // data-field, for machines
	Text  string
	Class string
	Href  string // a link, when set
}

type fact struct{ Label, Value string }

// logCell links a mailbox's last run log (per-run logs, activities/mail/runlog.go).
func logCell(path string) cell {
	if path == "" {
		return cell{}
	}
	return cell{Text: "last run", Href: path}
}

type phaseRow struct{ Phase, Entered, Left, Duration string }

type view struct {
	Kind        string // email | database
	Title       string
	Subtitle    string
	Generated   string
	Facts       []fact
	Verdict     string
	VerdictOK   bool
	CountsTitle string
	Columns     []string
	Rows        [][]cell
	Total       []cell

	QuarantineTitle string
	Quarantine      []QuarantineRow
	QuarantineN     int

	ChecksTitle  string
	ChecksNote   string
	Checks       []CheckRow
	Checks2Title string
	Checks2      []CheckRow

	ChangesTitle string // "" for a report without the section
	Changes      []store.TransformationCount
	Sections     []section

	Phases      []phaseRow
	PassesTitle string
	PassUnit    string // "mailboxes", "batches"
	ItemUnit    string // "messages", "rows"
	Passes      []Pass
	Chart       template.HTML
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts":    func(t time.Time) string { return fmtTime(&t) },
	"tsp":   fmtTime,
	"num":   func(n any) string { return fmtInt(toInt64(n)) },
	"bytes": fmtBytes,
	"rate":  func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"secs":  func(p Pass) string { return fmtDuration(p.Finished.Sub(p.Started)) },
	"lower": strings.ToLower,
}).Parse(`<!DOCTYPE html>
<html lang="en" data-kind="{{.Kind}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#5b6474;margin:0 0 16px}
.verdict{padding:10px 14px;border-radius:6px;font-weight:600;margin:12px 0}
.v-ok{background:#e3f5e8;color:#17612f}.v-bad{background:#fde8e8;color:#8f1d1d}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:8px;margin:0;padding:0}
.facts div{background:#fff;border:1px solid #dfe3ea;border-radius:6px;padding:8px 10px}
.facts dt{color:#5b6474;font-size:12px}.facts dd{margin:0;font-weight:600;word-break:break-all}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dfe3ea}
th,td{padding:6px 8px;border-bottom:1px solid #eceff3;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#444c5a}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:700;background:#f7f8fa}
.pass,.passed,.ok-cell,.completed,.success{color:#17612f}.warn,.warning,.partial{color:#8a5a00}.fail,.failed,.error{color:#a11d1d}
.muted{color:#7a8291}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
</style>
</head>
<body><main>
<h1>{{.Title}}</h1>
<p class="sub">{{.Subtitle}} · report generated {{.Generated}}</p>
<p class="verdict {{if .VerdictOK}}v-ok{{else}}v-bad{{end}}" id="verdict">{{.Verdict}}</p>
<dl class="facts">{{range .Facts}}<div><dt>{{.Label}}</dt><dd>{{.Value}}</dd></div>{{end}}</dl>

<h2>{{.CountsTitle}}</h2>
<table id="counts">
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .}}<td{{if .Field}} data-field="{{.Field}}"{{end}} class="{{.Class}}">{{if .Href}}<a href="{{.Href}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}</td>{{end}}</tr>
{{end}}<tr class="total" data-row="total">{{range .Total}}<td{{if .Field}} data-field="{{.Field}}"{{end}} class="{{.Class}}">{{.Text}}</td>{{end}}</tr>
</tbody>
</table>

<h2>{{.QuarantineTitle}} <span class="muted" id="quarantine-count" data-count="{{.QuarantineN}}">({{num .QuarantineN}})</span></h2>
{{if .Quarantine}}<table id="quarantine">
<thead><tr><th>Where</th><th>Item</th><th>Size</th><th>Class</th><th>Reason</th><th>Tries</th><th>Last seen</th></tr></thead>
<tbody>
{{range .Quarantine}}<tr><td>{{.Where}}</td><td>{{.Item}}</td><td class="n">{{if .Size}}{{bytes .Size}}{{end}}</td><td>{{.Class}}{{if .Retried}} <span class="muted">(retried by later passes)</span>{{end}}</td><td>{{.Reason}}</td><td class="n">{{if .Tries}}{{.Tries}}{{end}}</td><td>{{ts .Seen}}</td></tr>
{{end}}</tbody>
</table>
{{if gt .QuarantineN (len .Quarantine)}}<p class="muted">… and {{num .QuarantineN}} in all; the control tables list every one.</p>{{end}}
{{else}}<p class="muted">Nothing quarantined.</p>{{end}}

<h2>{{.ChecksTitle}}</h2>
{{if .ChecksNote}}<p>{{.ChecksNote}}</p>{{end}}
{{if .Checks}}<table id="checks">
<thead><tr><th>Check</th><th>Status</th><th>Detail</th><th>By</th><th>At</th></tr></thead>
<tbody>
{{range .Checks}}<tr><td>{{.ID}}</td><td class="{{lower .Status}}">{{.Status}}</td><td>{{.Message}}</td><td>{{.By}}</td><td>{{tsp .At}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p class="muted">None recorded.</p>{{end}}
{{if .Checks2Title}}<h2>{{.Checks2Title}}</h2>
{{if .Checks2}}<table id="checks2">
<thead><tr><th>Operation</th><th>Status</th><th>Detail</th><th>Approved by</th><th>Executed</th></tr></thead>
<tbody>
{{range .Checks2}}<tr><td>{{.ID}}</td><td class="{{lower .Status}}">{{.Status}}</td><td>{{.Message}}</td><td>{{.By}}</td><td>{{tsp .At}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p class="muted">None.</p>{{end}}{{end}}

{{range .Sections}}<h2>{{.Title}}</h2>
{{if .Lines}}<ul id="{{.ID}}">{{range .Lines}}<li>{{.}}</li>{{end}}</ul>{{else}}<p class="muted">{{.Empty}}</p>{{end}}
{{end}}
{{if .ChangesTitle}}<h2>{{.ChangesTitle}}</h2>
{{if .Changes}}<table id="changes">
<thead><tr><th>Entity</th><th>Column</th><th>Change</th><th>Values</th></tr></thead>
<tbody>
{{range .Changes}}<tr><td>{{.EntityName}}</td><td>{{.ColumnName}}</td><td>{{.Change}}</td><td class="n" data-field="changed">{{num .ValueCount}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p class="muted">No value was changed on its way: every loaded value is the source's.</p>{{end}}{{end}}

<h2>Phases</h2>
{{if .Phases}}<table id="phases">
<thead><tr><th>Phase</th><th>Entered</th><th>Left</th><th>Duration</th></tr></thead>
<tbody>
{{range .Phases}}<tr><td>{{.Phase}}</td><td>{{.Entered}}</td><td>{{.Left}}</td><td class="n">{{.Duration}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p class="muted">No phase changes recorded.</p>{{end}}

<h2>{{.PassesTitle}}</h2>
{{if .Passes}}{{.Chart}}
<table id="passes">
<thead><tr><th>Pass</th><th>Started</th><th>Duration</th><th>{{.PassUnit}}</th><th>{{.ItemUnit}}</th><th>{{.ItemUnit}}/s</th></tr></thead>
<tbody>
{{range .Passes}}<tr><td>{{.Label}}</td><td>{{ts .Started}}</td><td class="n">{{secs .}}</td><td class="n">{{num .Units}}</td><td class="n">{{num .Items}}</td><td class="n">{{rate .PerSec}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p class="muted">No passes recorded.</p>{{end}}
</main></body>
</html>
`))

// RenderEmail writes an email job's report.
func RenderEmail(w io.Writer, r EmailReport) error {
	v := view{Kind: KindEmail, Title: fmt.Sprintf("Email migration of %s — job %d", r.Domain, r.JobID),
		Subtitle: fmt.Sprintf("phase %s, gate %s", r.Phase, r.Gate), Generated: fmtTime(&r.GeneratedAt),
		CountsTitle: "Mailboxes: source vs destination", QuarantineTitle: "Quarantined messages",
		ChecksTitle: "Go/no-go gate", PassesTitle: "Passes", PassUnit: "mailboxes", ItemUnit: "messages"}
	v.Verdict, v.VerdictOK = verdict(r.Totals.Missing, r.QuarantineN, r.MissingKnown, "message", "verification")
	v.Facts = []fact{{"Domain", r.Domain}, {"Tenant", fmt.Sprint(r.TenantID)}, {"Source", orDash(r.Source)},
		{"Destination", orDash(r.Destination)}, {"Phase", string(r.Phase)}, {"Gate", string(r.Gate)},
		{"Approved", approval(r.ApprovedBy, r.ApprovedAt)}, {"DNS cut over", fmtTime(r.DNSCutoverAt)}}
	if r.TicketID != nil {
		v.Facts = append(v.Facts, fact{"Ticket", fmt.Sprint(*r.TicketID)})
	}
	if r.FailedPhase != "" {
		v.Facts = append(v.Facts, fact{"Failed in", string(r.FailedPhase) + ": " + r.LastError})
	}
	v.Columns = []string{"Mailbox", "Status", "Source", "Destination", "Quarantined", "Missing", "Extra", "Source size",
		"Destination size", "Note", "Log"}
	row := func(m MailboxRow) []cell {
		missing := fmtInt(m.Missing)
		if !m.Verified {
			missing += " (est.)"
		}
		return []cell{{Text: m.Email}, {Text: string(m.Status), Class: string(m.Status)},
			{Field: "source", Text: fmtInt(m.Source), Class: "n"}, {Field: "dest", Text: fmtInt(m.Dest), Class: "n"},
			{Field: "quarantined", Text: fmtInt(m.Quarantined), Class: "n"}, {Field: "missing", Text: missing, Class: "n"},
			{Field: "extra", Text: fmtInt(m.Extra), Class: "n"}, {Text: fmtBytes(m.BytesSource), Class: "n"},
			{Text: fmtBytes(m.BytesDest), Class: "n"}, {Text: m.LastError}, logCell(m.LogPath)}
	}
	for _, m := range r.Mailboxes {
		v.Rows = append(v.Rows, row(m))
	}
	v.Total = row(r.Totals)
	v.Total[1].Text = fmt.Sprintf("%d mailboxes", len(r.Mailboxes))
	v.Quarantine, v.QuarantineN = r.Quarantine, r.QuarantineN
	v.Checks = r.Checks
	if r.ApprovedBy != "" {
		v.ChecksNote = fmt.Sprintf("Approved by %s at %s; %d gate evaluation(s) recorded.", r.ApprovedBy, fmtTime(r.ApprovedAt), r.Evaluations)
	} else {
		v.ChecksNote = fmt.Sprintf("Not approved; %d gate evaluation(s) recorded.", r.Evaluations)
	}
	v.Sections = emailSections(r)
	v.Phases = phaseRows(r.Phases, r.GeneratedAt)
	v.Passes = r.Passes
	v.Chart = chart(r.Passes, "messages/s")
	return page.Execute(w, v)
}

// section is a titled list of lines.
type section struct {
	Title, ID, Empty string
	Lines            []string
}

// emailSections lists the skipped mailboxes and what passes deleted on the destination.
func emailSections(r EmailReport) []section {
	skipped := section{Title: "Skipped mailboxes", ID: "skipped", Empty: "None: every mailbox is in the job."}
	for _, s := range r.Skipped {
		skipped.Lines = append(skipped.Lines, fmt.Sprintf("%s — skipped by %s at %s: %s", s.Email, s.By, fmtTime(&s.At), s.Reason))
	}
	dels := section{Title: "Deleted on the destination", ID: "deletions",
		Empty: "Nothing: no pass deleted a message on the destination."}
	for _, d := range r.Deletions {
		why := "copies this job placed whose source message was deleted"
		if d.Reason == store.DeletedNotOnSource {
			why = "messages the source lacks, deleted by strict_mirror (destructive, imapsync --delete2)"
		}
		dels.Lines = append(dels.Lines, fmt.Sprintf("%s: %s message(s), %s — %s (mode %s)", d.Email, fmtInt(d.Messages),
			fmtBytes(d.Bytes), why, d.Mode))
	}
	stored := section{Title: "Stored differently by the destination", ID: "rewritten",
		Empty: "Nothing: the destination stored every message's headers and keywords as sent."}
	for _, m := range r.Mailboxes {
		var parts []string
		if m.Rewritten > 0 {
			parts = append(parts, fmt.Sprintf("%s message(s) present with identifying headers the destination rewrote "+
				"(found through the job's record of each copy, not missing)", fmtInt(m.Rewritten)))
		}
		if m.KeywordsDropped > 0 {
			parts = append(parts, fmt.Sprintf("%s message(s) stored without keywords the destination refused: %s",
				fmtInt(m.KeywordsDropped), strings.Join(m.DroppedKeywords, " ")))
		}
		if len(parts) > 0 {
			stored.Lines = append(stored.Lines, m.Email+": "+strings.Join(parts, "; "))
		}
	}
	return []section{skipped, dels, stored}
}

// RenderDB writes a database migration's report.
func RenderDB(w io.Writer, r DBReport) error {
	v := view{Kind: KindDatabase, Title: fmt.Sprintf("Database migration %s", r.MigrationID),
		Subtitle: fmt.Sprintf("%s, %s", r.Type, r.Status), Generated: fmtTime(&r.GeneratedAt),
		CountsTitle: "Entities: source vs target", QuarantineTitle: "Quarantined rows",
		ChecksTitle: "Validation", Checks2Title: "Schema changes", PassesTitle: "Entity loads", PassUnit: "batches", ItemUnit: "rows"}
	v.Verdict, v.VerdictOK = verdict(r.Totals.Missing, r.QuarantineN, r.MissingKnown, "row", "completeness validation")
	v.Facts = []fact{{"Type", string(r.Type)}, {"Status", string(r.Status)}, {"Started by", r.CreatedBy},
		{"Started", fmtTime(r.StartedAt)}, {"Completed", fmtTime(r.CompletedAt)}, {"Progress", fmt.Sprintf("%.2f%%", r.Progress)},
		{"Errors", fmtInt(r.ErrorCount)}}
	if r.Error != "" {
		v.Facts = append(v.Facts, fact{"Failed with", r.Error})
	}
	v.Columns = []string{"Entity", "Target", "Status", "Source rows", "Loaded", "Quarantined", "Missing", "Rows/s", "Validation"}
	row := func(e EntityRow) []cell {
		return []cell{{Text: e.Name}, {Text: e.Target}, {Text: string(e.Status), Class: string(e.Status)},
			{Field: "source", Text: fmtInt(e.Source), Class: "n"}, {Field: "loaded", Text: fmtInt(e.Loaded), Class: "n"},
			{Field: "quarantined", Text: fmtInt(e.Quarantined), Class: "n"}, {Field: "missing", Text: fmtInt(e.Missing), Class: "n"},
			{Text: fmt.Sprintf("%.0f", e.PerSec), Class: "n"}, {Text: orDash(e.Validation), Class: e.Validation}}
	}
	for _, e := range r.Entities {
		v.Rows = append(v.Rows, row(e))
	}
	v.Total = row(r.Totals)
	v.Total[2].Text, v.Total[7].Text, v.Total[8].Text = fmt.Sprintf("%d entities", len(r.Entities)), "", ""
	v.Quarantine, v.QuarantineN = r.Quarantine, r.QuarantineN
	v.Checks, v.Checks2 = r.Validations, r.SchemaOps
	v.ChangesTitle, v.Changes = "Values changed by transformations", r.Changes
	v.Phases = phaseRows(r.Phases, r.GeneratedAt)
	v.Passes = r.Passes
	v.Chart = chart(r.Passes, "rows/s while copying")
	v.Sections = dbSections(r)
	return page.Execute(w, v)
}

// dbSections lists the change captures (a replication slot while it exists) and the cutover
// windows.
func dbSections(r DBReport) []section {
	caps := section{Title: "Change capture", ID: "capture", Empty: "None: catch-up by key cursor, or a full migration."}
	for _, c := range r.Captures {
		state := "removed " + fmtTime(c.RemovedAt) + ": nothing of it is left in the source"
		if c.RemovedAt == nil {
			state = "still installed"
			if c.SlotName != nil {
				state += ", replication slot " + *c.SlotName + " (it keeps WAL until dropped)"
			}
		}
		caps.Lines = append(caps.Lines, fmt.Sprintf("%s %s by %s: %s changes applied in %d drains (last %.0f/s), position %s; %s",
			c.Direction, c.SourceName, c.Method, fmtInt(c.ChangesApplied), c.Drains, c.RowsPerSecond, c.Position, state))
	}
	wins := section{Title: "Cutover window", ID: "window", Empty: "No cutover freeze measured."}
	for _, w := range r.Windows {
		ok := "validated"
		if !w.Passed {
			ok = "validation failed"
		}
		wins.Lines = append(wins.Lines, fmt.Sprintf("%.2f s from %s to %s: %s changes drained, %s rows validated, %s",
			w.Seconds, fmtTime(&w.StartedAt), fmtTime(&w.CompletedAt), fmtInt(w.DrainedChanges), fmtInt(w.ValidatedRows), ok))
	}
	acc := section{Title: "Quarantine accepted", ID: "accepted",
		Empty: "No acceptance: quarantined rows stop the migration unless the spec's error budget holds them."}
	for _, a := range r.Acceptances {
		acc.Lines = append(acc.Lines, fmt.Sprintf("%s rows accepted by %s at %s: %s", fmtInt(a.QuarantinedRows), a.AcceptedBy,
			fmtTime(&a.AcceptedAt), a.Reason))
	}
	reqs := section{Title: "Operator requests", ID: "requests", Empty: "No operator request recorded."}
	for _, q := range r.Requests {
		what := q.Request
		if q.Subject != "" {
			what += " " + q.Subject
		}
		by := q.RequestedBy
		if by == "" {
			by = "?"
		}
		line := fmt.Sprintf("%s by %s at %s", what, by, fmtTime(&q.RequestedAt))
		if q.Reason != "" {
			line += ": " + q.Reason
		}
		reqs.Lines = append(reqs.Lines, line)
	}
	return []section{reqs, acc, caps, wins}
}

func verdict(missing int64, quarantined int, known bool, item, proof string) (string, bool) {
	switch {
	case !known:
		return fmt.Sprintf("Not yet proven complete: %s %s(s) unaccounted for so far, %d quarantined (no %s for every part yet).",
			fmtInt(missing), item, quarantined, proof), false
	case missing > 0:
		return fmt.Sprintf("%s %s(s) missing; %d quarantined.", fmtInt(missing), item, quarantined), false
	}
	return fmt.Sprintf("Complete: 0 %ss missing; %d quarantined with reasons below.", item, quarantined), true
}

func phaseRows(spans []store.PhaseSpan, now time.Time) []phaseRow {
	var out []phaseRow
	for _, p := range spans {
		left := "(current)"
		if p.LeftAt != nil {
			left = fmtTime(p.LeftAt)
		}
		out = append(out, phaseRow{Phase: p.Phase, Entered: fmtTime(&p.EnteredAt), Left: left, Duration: fmtDuration(p.Duration(now))})
	}
	return out
}

// chart draws the passes' throughput as horizontal bars, labelled with the rate and duration.
func chart(passes []Pass, unit string) template.HTML {
	if len(passes) == 0 {
		return ""
	}
	const (
		labelW = 150
		barW   = 520
		rowH   = 26
		top    = 28
	)
	maxRate := 0.0
	for _, p := range passes {
		maxRate = math.Max(maxRate, p.PerSec)
	}
	h := top + rowH*len(passes) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="throughput" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="throughput per pass">`,
		labelW+barW+170, h, labelW+barW+170, h)
	fmt.Fprintf(&b, `<text x="0" y="16" font-weight="600">Throughput (%s)</text>`, html.EscapeString(unit))
	for i, p := range passes {
		y := top + i*rowH
		w := 0.0
		if maxRate > 0 {
			w = float64(barW) * p.PerSec / maxRate
		}
		fmt.Fprintf(&b, `<text x="0" y="%d">%s</text>`, y+16, html.EscapeString(p.Label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" rx="3" fill="#3b7ddd" data-rate="%.3f"><title>%s: %.1f %s</title></rect>`,
			labelW, y+3, math.Max(w, 1), rowH-8, p.PerSec, html.EscapeString(p.Label), p.PerSec, html.EscapeString(unit))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.1f · %s · %s</text>`, float64(labelW)+math.Max(w, 1)+6, y+16, p.PerSec,
			fmtInt(p.Items), fmtDuration(p.Finished.Sub(p.Started)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every interpolated string above is escaped
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtInt[T ~int | ~int32 | ~int64](n T) string {
	s := fmt.Sprint(int64(n))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func toInt64(n any) int64 {
	switch v := n.(type) {
	case int:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	}
	return 0
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func approval(by string, at *time.Time) string {
	if by == "" {
		return "—"
	}
	return by + " at " + fmtTime(at)
}
