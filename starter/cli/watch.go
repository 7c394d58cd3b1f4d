package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

func init() {
	register("email watch", "follow a job live: a progress bar per mailbox with msg/s and ETA (plain lines when not a terminal)", runEmailWatch)
	register("db watch", "follow a database migration live: a progress bar per entity with rows/s and ETA", runDBWatch)
}

// progressItem is one mailbox or entity in a watch frame.
type progressItem struct {
	Name  string  `json:"name"`
	State string  `json:"state"`
	Done  int64   `json:"done"`
	Total int64   `json:"total"`
	Rate  float64 `json:"rate_per_second"`
	ETA   float64 `json:"eta_seconds,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// progressFrame is what one poll shows.
type progressFrame struct {
	At    time.Time      `json:"at"`
	Title string         `json:"title"`
	Unit  string         `json:"unit"` // msg or row
	Items []progressItem `json:"items"`
	Notes []string       `json:"notes,omitempty"`
	Ended bool           `json:"ended"` // the workflow is closed
}

// rates turns successive Done counts into a smoothed per-second rate per item.
type rates struct {
	last map[string]sample
}

type sample struct {
	done int64
	at   time.Time
	rate float64
}

func newRates() *rates { return &rates{last: map[string]sample{}} }

// observe records done for name at t and returns the smoothed rate (fallback when there is
// no history yet: the workflow's own throughput figure, if any).
func (r *rates) observe(name string, done int64, t time.Time, fallback float64) float64 {
	prev, ok := r.last[name]
	s := sample{done: done, at: t, rate: fallback}
	if ok {
		s.rate = prev.rate
		if dt := t.Sub(prev.at).Seconds(); dt > 0 && done >= prev.done {
			inst := float64(done-prev.done) / dt
			if prev.rate == 0 {
				s.rate = inst
			} else {
				s.rate = 0.5*inst + 0.5*prev.rate
			}
		}
	}
	r.last[name] = s
	return s.rate
}

// withETA completes an item's rate and ETA.
func (r *rates) withETA(it progressItem, t time.Time, fallback float64) progressItem {
	it.Rate = r.observe(it.Name, it.Done, t, fallback)
	if it.Rate > 0 && it.Total > it.Done {
		it.ETA = float64(it.Total-it.Done) / it.Rate
	}
	return it
}

// renderer draws frames: redrawn in place on a terminal, plain lines for what changed
// otherwise (logs, pipes, CI), JSON lines with --output json.
type renderer struct {
	w      io.Writer
	tty    bool
	json   bool
	width  int // bar width in characters
	lines  int // lines drawn last time (terminal)
	shown  map[string]string
	titled string
}

func newRenderer(w io.Writer, tty, asJSON bool) *renderer {
	return &renderer{w: w, tty: tty && !asJSON, json: asJSON, width: 24, shown: map[string]string{}}
}

func (r *renderer) draw(f progressFrame) {
	switch {
	case r.json:
		b, _ := json.Marshal(f)
		fmt.Fprintf(r.w, "%s\n", b)
	case r.tty:
		r.drawTTY(f)
	default:
		r.drawPlain(f)
	}
}

func (r *renderer) drawTTY(f progressFrame) {
	var b strings.Builder
	if r.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", r.lines) // back to the first line of the last frame
	}
	lines := []string{f.Title}
	nameW := 0
	for _, it := range f.Items {
		nameW = max(nameW, len(it.Name))
	}
	for _, it := range f.Items {
		lines = append(lines, "  "+r.itemLine(it, f.Unit, nameW, true))
	}
	for _, n := range f.Notes {
		lines = append(lines, "  "+n)
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K" + l + "\n") // clear the line, draw it
	}
	for i := len(lines); i < r.lines; i++ { // the last frame was longer
		b.WriteString("\x1b[2K\n")
	}
	r.lines = max(len(lines), r.lines)
	io.WriteString(r.w, b.String())
}

func (r *renderer) drawPlain(f progressFrame) {
	stamp := f.At.Format("15:04:05")
	if f.Title != r.titled {
		r.titled = f.Title
		fmt.Fprintf(r.w, "%s %s\n", stamp, f.Title)
	}
	for _, it := range f.Items {
		line := r.itemLine(it, f.Unit, 0, false)
		key := fmt.Sprintf("%s|%d|%d", it.State, it.Done, it.Total)
		if r.shown[it.Name] == key {
			continue
		}
		r.shown[it.Name] = key
		fmt.Fprintf(r.w, "%s   %s\n", stamp, line)
	}
	for _, n := range f.Notes {
		if r.shown["\x00note"+n] == "" {
			r.shown["\x00note"+n] = "shown"
			fmt.Fprintf(r.w, "%s   %s\n", stamp, n)
		}
	}
}

// itemLine is "name [#####-----]  50.0%  120/240 msg  35.2 msg/s  ETA 3s  state".
func (r *renderer) itemLine(it progressItem, unit string, nameW int, bar bool) string {
	pct := 100.0
	if it.Total > 0 {
		pct = math.Min(100, 100*float64(it.Done)/float64(it.Total))
	}
	var b strings.Builder
	if nameW > 0 {
		fmt.Fprintf(&b, "%-*s ", nameW, it.Name)
	} else {
		b.WriteString(it.Name + " ")
	}
	if bar {
		fill := int(math.Round(pct / 100 * float64(r.width)))
		b.WriteString("[" + strings.Repeat("#", fill) + strings.Repeat("-", r.width-fill) + "] ")
	}
	fmt.Fprintf(&b, "%5.1f%% %d/%d %s", pct, it.Done, it.Total, unit)
	if it.Rate > 0 {
		fmt.Fprintf(&b, "  %.1f %s/s", it.Rate, unit)
	}
	if it.ETA > 0 {
		fmt.Fprintf(&b, "  ETA %s", fmtDur(time.Duration(it.ETA*float64(time.Second))))
	}
	b.WriteString("  " + it.State)
	if it.Note != "" {
		b.WriteString("  " + it.Note)
	}
	return b.String()
}

// emailFrame builds a job's frame from its status, the live heartbeats of its pass and, when
// PostgreSQL answers, the sync ledger's count of each busy mailbox's copied messages (heartbeats
// reach the server at most every 30-60 s; the ledger grows with every batch).
func emailFrame(st emailapi.Status, live []client.LiveMailbox, ledger map[string]int64, at time.Time, rt *rates) progressFrame {
	f := progressFrame{At: at, Unit: "msg", Title: fmt.Sprintf("job %d %s · phase %s · gate %s · %.1f%% synced",
		st.JobID, st.Domain, st.Phase, st.Gate, st.SyncPercent)}
	if p := st.CurrentPass; p != nil {
		f.Title += fmt.Sprintf(" · %s %s pass running %s", p.RunType, p.Mode, fmtDur(at.Sub(p.Started)))
	}
	inFlight := map[string]client.LiveMailbox{}
	for _, l := range live {
		inFlight[l.Email] = l
	}
	items := map[string]progressItem{}
	for _, m := range st.MailboxDetails {
		it := progressItem{Name: m.Email, State: string(m.Status), Done: min(m.MessagesDest, m.MessagesSource), Total: m.MessagesSource}
		if m.Quarantined > 0 {
			it.Note = fmt.Sprintf("%d quarantined", m.Quarantined)
		}
		if m.LastError != "" {
			it.Note = m.LastError
		}
		items[m.Email] = it
	}
	for addr, l := range inFlight {
		it := items[addr]
		it.Name = addr
		c := l.Progress.Counters
		it.State = "syncing"
		switch l.Activity {
		case "PreflightMailbox":
			it.State = "preflight"
		case "VerifyMailbox":
			it.State = "verifying"
		}
		it.Done = max(it.Done+c.Transferred, ledger[addr])
		it.Total = max(it.Total, c.Found, it.Done)
		if l.Attempt > 1 {
			it.Note = fmt.Sprintf("attempt %d", l.Attempt)
		}
		if l.Progress.Folder != "" {
			it.Note = strings.TrimSpace(it.Note + " in " + l.Progress.Folder)
		}
		if l.WorkerSilent != "" {
			it.Note = strings.TrimSpace(it.Note + "; " + l.WorkerSilent)
		}
		items[addr] = it
	}
	names := make([]string, 0, len(items))
	for n := range items {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f.Items = append(f.Items, rt.withETA(items[n], at, 0))
	}
	if st.Mailboxes > len(f.Items) {
		f.Notes = append(f.Notes, fmt.Sprintf("%d mailboxes in all; the status lists failing ones of large jobs", st.Mailboxes))
	}
	if hint := nextStep(st); hint != "" {
		f.Notes = append(f.Notes, "next: "+hint)
	}
	return f
}

// dbFrame builds a migration's frame from its status query.
func dbFrame(st dbmigrateapi.State, at time.Time, rt *rates) progressFrame {
	f := progressFrame{At: at, Unit: "row", Title: fmt.Sprintf("migration %s · phase %s · %s · %.1f%% · %d/%d entities · %d errors",
		st.MigrationID, st.Phase, st.Status, st.ProgressPercent, st.CompletedEntities, st.TotalEntities, st.ErrorCount)}
	for _, e := range st.Entities {
		it := progressItem{Name: e.Name, State: string(e.Status), Done: e.Processed + e.Failed, Total: max(e.Total, e.Processed+e.Failed)}
		if e.Failed > 0 {
			it.Note = fmt.Sprintf("%d quarantined", e.Failed)
		}
		fallback := 0.0
		if e.Status == model.EntityRunning {
			fallback = e.Throughput
		}
		it = rt.withETA(it, at, fallback)
		if e.Status != model.EntityRunning {
			it.Rate, it.ETA = 0, 0
			if e.Throughput > 0 && e.Status == model.EntityCompleted {
				it.Note = strings.TrimSpace(it.Note + fmt.Sprintf(" loaded at %.0f rows/s", e.Throughput))
			}
		}
		f.Items = append(f.Items, it)
	}
	for _, op := range st.Ops {
		if op.AwaitingApproval {
			f.Notes = append(f.Notes, fmt.Sprintf("schema change %s (risk %s) waits: cutover db approve-op %s %s", op.Name, op.Risk, st.MigrationID, op.Name))
		}
	}
	if st.Passes > 0 {
		f.Notes = append(f.Notes, fmt.Sprintf("%d catch-up passes; 'cutover db cutover %s' ends them", st.Passes, st.MigrationID))
	}
	if c := st.Capture; c != nil && !c.Removed {
		f.Notes = append(f.Notes, fmt.Sprintf("change capture: %d changes at the last pass, %.0f changes/s, final pass ≈ %.1f s",
			c.ChangesPending, c.RowsPerSecond, c.PredictedFinalSeconds))
		for _, s := range c.Sources {
			if s.Slot != "" {
				f.Notes = append(f.Notes, fmt.Sprintf("replication slot %s on %s: %d WAL bytes retained", s.Slot, s.Source, s.RetainedWALBytes))
			}
		}
	}
	if st.CutoverWindowSeconds > 0 {
		f.Notes = append(f.Notes, fmt.Sprintf("cutover window %.2f s", st.CutoverWindowSeconds))
	}
	if r := st.Reverse; r != nil && !r.Removed {
		f.Notes = append(f.Notes, fmt.Sprintf("reverse flow: %d changes written back; 'cutover db close %s' ends it", r.ChangesApplied, st.MigrationID))
	}
	if st.Error != "" {
		f.Notes = append(f.Notes, "error: "+st.Error)
	}
	return f
}

// watchFlags are shared by both watch commands.
type watchFlags struct {
	interval time.Duration
	until    string
	once     bool
}

func bindWatch(fs interface {
	DurationVar(*time.Duration, string, time.Duration, string)
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}, untilHelp string) *watchFlags {
	w := &watchFlags{}
	fs.DurationVar(&w.interval, "interval", time.Second, "how often to poll")
	fs.StringVar(&w.until, "until", "", untilHelp)
	fs.BoolVar(&w.once, "once", false, "print one frame and exit")
	return w
}

// loop polls until the workflow ends, the wanted phase is reached, or ctx ends.
func (w *watchFlags) loop(ctx context.Context, r *renderer, poll func(context.Context, time.Time) (progressFrame, bool, error)) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		f, reached, err := poll(ctx, time.Now())
		if err != nil {
			return err
		}
		r.draw(f)
		if w.once || reached || f.Ended {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // Ctrl-C ends a watch, not a failure
		case <-t.C:
		}
	}
}

func runEmailWatch(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "email watch")
	wf := bindWatch(fs, "exit once the job reaches this phase (e.g. cutover_ready, verified)")
	ledgerFlag := fs.Bool("ledger", true, "count copied messages in the sync ledger (DATABASE_URL) for live per-mailbox progress")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := parseJobID(pos[0])
	if err != nil {
		return err
	}
	if wf.until != "" && model.Phase(wf.until).Index() < 0 && wf.until != string(model.PhaseFailed) {
		return usagef("--until %q is not a phase (%v)", wf.until, model.Phases)
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// The ledger is optional: watch works with Temporal alone (and never creates a database).
	var db *store.Store
	if *ledgerFlag {
		if pool, err := pgxpool.New(ctx, databaseURL(e)); err == nil {
			defer pool.Close()
			db = store.New(pool)
		}
	}
	rt := newRates()
	r := newRenderer(e.Stdout, isTerminal(e.Stdout), out.json())
	failed := false
	err = wf.loop(ctx, r, func(ctx context.Context, now time.Time) (progressFrame, bool, error) {
		st, err := c.EmailStatus(ctx, id)
		if err != nil {
			return progressFrame{}, false, fromClient(err, "cutover email list")
		}
		live, _ := c.LiveMailboxes(ctx, st) // a pass ending between the calls is fine
		var ledger map[string]int64
		if db != nil && len(live) > 0 {
			emails := make([]string, len(live))
			for i, l := range live {
				emails[i] = l.Email
			}
			lctx, lcancel := context.WithTimeout(ctx, time.Second)
			ledger, _ = db.LedgerMessageCounts(lctx, id, emails)
			lcancel()
		}
		f := emailFrame(st, live, ledger, now, rt)
		running, rerr := c.EmailRunning(ctx, id)
		f.Ended = rerr == nil && !running
		if f.Ended {
			f.Title += " · ended"
		}
		failed = st.Phase == model.PhaseFailed
		return f, wf.until != "" && string(st.Phase) == wf.until, nil
	})
	if err != nil {
		return err
	}
	if failed && wf.until != string(model.PhaseFailed) && !wf.once {
		return fmt.Errorf("job %d failed; 'cutover email status %d' says why", id, id)
	}
	return nil
}

func runDBWatch(ctx context.Context, e *Env, args []string) error {
	fs, tf, out := commandFlags(e, "db watch")
	wf := bindWatch(fs, "exit once the migration reaches this phase (e.g. catching_up, done)")
	pos, err := parseAnyOrder(fs, args, 1)
	if err != nil {
		return err
	}
	if _, err := dbWorkflowID(pos[0]); err != nil {
		return err
	}
	c, err := tf.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rt := newRates()
	r := newRenderer(e.Stdout, isTerminal(e.Stdout), out.json())
	var last dbmigrateapi.State
	err = wf.loop(ctx, r, func(ctx context.Context, now time.Time) (progressFrame, bool, error) {
		st, err := c.DBStatus(ctx, pos[0])
		if err != nil {
			return progressFrame{}, false, fromClient(err, "cutover db list")
		}
		last = st
		f := dbFrame(st, now, rt)
		running, rerr := c.DBRunning(ctx, pos[0])
		f.Ended = rerr == nil && !running
		if f.Ended {
			f.Title += " · ended"
		}
		return f, wf.until != "" && string(st.Phase) == wf.until, nil
	})
	if err != nil {
		return err
	}
	if last.Status == model.OrchFailed && !wf.once {
		return fmt.Errorf("migration %s failed: %s", last.MigrationID, last.Error)
	}
	return nil
}
