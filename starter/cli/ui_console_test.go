package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/starter/internal/stacktest"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// uiSession is headless Chromium on the stack's Temporal UI, with screenshots as artifacts.
type uiSession struct {
	t    *testing.T
	ctx  context.Context
	base string // the namespace's URL
}

func newUISession(t *testing.T, s *stacktest.Stack) *uiSession {
	return &uiSession{t: t, ctx: testenv.Chromium(t), base: s.Temporal.UIURL() + "/namespaces/" + s.Temporal.Namespace()}
}

// do runs browser steps, each call within a minute.
func (u *uiSession) do(steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(u.ctx, time.Minute)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

func (u *uiSession) shoot(name string) {
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		u.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(u.t.ArtifactDir(), name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		u.t.Error(err)
	}
	u.t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}

func (u *uiSession) text() string {
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		u.t.Fatal(err)
	}
	return strings.Join(strings.Fields(body), " ")
}

// list opens the workflow list on query and waits for every id in want. A page that came back
// as the UI's own error page ("500 … Try a refresh": its backend call failed under load) is
// loaded again, as an operator would.
func (u *uiSession) list(shot, query string, want ...string) string {
	u.t.Helper()
	open := chromedp.Navigate(u.base + "/workflows?query=" + url.QueryEscape(query))
	var shown []chromedp.Action[chromedp.Void]
	for _, id := range want {
		shown = append(shown, chromedp.WaitVisible(chromedp.Search(`//a[contains(., '`+id+`')]`)))
	}
	err := u.do(open)
	for deadline := time.Now().Add(time.Minute); err == nil; {
		ctx, cancel := context.WithTimeout(u.ctx, 3*time.Second)
		err = chromedp.Do(ctx, shown...)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		if strings.Contains(u.text(), "Try a refresh") {
			u.t.Logf("the UI answered its error page for %s; loading it again", query)
			err = u.do(open)
		} else {
			err = nil
		}
	}
	if err != nil {
		u.shoot(shot + "-failed.png")
		u.t.Fatalf("the UI does not list %q under %s: %v\n%s", want, query, err, u.text())
	}
	u.shoot(shot + ".png")
	return u.text()
}

// currentDetails opens a workflow's page and returns the markdown of its current details (the
// UI renders it in a frame fed by its src) once it contains want.
func (u *uiSession) currentDetails(shot, workflowID, want string) string {
	u.t.Helper()
	xpath := `//iframe[contains(@src, '` + url.QueryEscape(want)[:min(len(url.QueryEscape(want)), 40)] + `')]`
	err := u.do(chromedp.Navigate(u.base+"/workflows/"+workflowID),
		chromedp.WaitVisible(chromedp.Search(`//a[contains(., 'User Metadata')] | //button[contains(., 'User Metadata')]`)),
		chromedp.Click(chromedp.Search(`//a[contains(., 'User Metadata')] | //button[contains(., 'User Metadata')]`)),
		chromedp.WaitVisible(chromedp.Search(xpath)))
	if err != nil {
		u.shoot(shot + "-failed.png")
		u.t.Fatalf("%s: no current details with %q: %v\n%s", workflowID, want, err, u.text())
	}
	u.shoot(shot + ".png")
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.Search(xpath), "src"))
	if err != nil {
		u.t.Fatal(err)
	}
	p, err := url.Parse(src.Value)
	if err != nil {
		u.t.Fatal(err)
	}
	return p.Query().Get("content")
}

// consoleViews are the README's saved views (its sql blocks): the migrations, and the failed
// ones.
func consoleViews(t *testing.T) (view, failedView string) {
	blocks := testenv.READMEBlocks(t, "### The Temporal UI as the console", "sql")
	if len(blocks) != 2 {
		t.Fatalf("README's console section has %d sql blocks, want the two saved views", len(blocks))
	}
	view, failedView = strings.TrimSpace(blocks[0]), strings.TrimSpace(blocks[1])
	if view != client.ConsoleView {
		t.Errorf("the README's view %q is not client.ConsoleView %q (the demo prints that one)", view, client.ConsoleView)
	}
	if failedView != client.FailedView {
		t.Errorf("the README's failed view %q is not client.FailedView %q", failedView, client.FailedView)
	}
	return view, failedView
}

// consoleColumns are the list's columns as the README's saved views have them: the UI's first
// ones and the search attributes it says to add.
var consoleColumns = []string{"Status", "Workflow ID", "Type", "Start", "End",
	"MigrationPhase", "MigrationGate", "MigrationDomain", "MigrationStatus"}

// configureColumns leaves the workflow list's columns as the README's Configure Columns steps
// do: the UI keeps them per namespace in the browser's local storage.
func (u *uiSession) configureColumns(namespace string) {
	u.t.Helper()
	type column struct {
		Label  string `json:"label"`
		Pinned bool   `json:"pinned"`
	}
	var cols []column
	for i, c := range consoleColumns {
		cols = append(cols, column{Label: c, Pinned: i < 2})
	}
	raw, err := json.Marshal(map[string][]column{namespace: cols})
	if err != nil {
		u.t.Fatal(err)
	}
	if err := u.do(chromedp.Navigate(u.base + "/workflows")); err != nil {
		u.t.Fatalf("open the workflow list: %v", err)
	}
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	js := fmt.Sprintf("localStorage.setItem('namespace-workflow-table-columns', %s), true", strconv.Quote(string(raw)))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		u.t.Fatalf("configure the list's columns: %v", err)
	}
}

// shown waits up to wait for an element matching css that is laid out on the page and holds
// text, and marks it for a click: the UI keeps hidden copies of some controls (for narrow
// screens), and a control works only once the page's scripts ran.
func (u *uiSession) shown(css, text string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(u.ctx, wait)
	defer cancel()
	find := `(() => { document.querySelectorAll('[data-cutover-shown]').forEach(e => e.removeAttribute('data-cutover-shown'));
		for (const e of document.querySelectorAll(` + strconv.Quote(css) + `)) { const r = e.getBoundingClientRect();
			if (r.width > 0 && r.height > 0 && e.textContent.includes(` + strconv.Quote(text) + `)) {
				e.setAttribute('data-cutover-shown', ''); return true } }
		return false })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](find)); err != nil {
		return fmt.Errorf("no %s holding %q shows: %w", css, text, err)
	}
	return nil
}

// clickThrough opens page and clicks each step's element in turn, each once the one before
// showed it; the whole walk is tried again (five times at most) when a click is lost, as it
// is when it lands while the page still loads what the next step shows, or when the running
// workflow's page re-renders on a loaded machine before the next step shows.
func (u *uiSession) clickThrough(page string, steps ...[2]string) error {
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = u.do(chromedp.Navigate(page)); err != nil {
			return err
		}
		for i, s := range steps {
			wait := 20 * time.Second
			if i == 0 {
				wait = 30 * time.Second
			}
			if err = u.shown(s[0], s[1], wait); err != nil {
				u.t.Logf("click-through attempt %d stopped at step %d: %v", attempt, i+1, err)
				break
			}
			if i < len(steps)-1 {
				ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
				err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-cutover-shown]`)))
				cancel()
				if err != nil {
					break
				}
			}
		}
		if err == nil {
			return nil
		}
	}
	return err
}

// row returns the text of the listed workflow's row, its cells apart (the list must be open).
func (u *uiSession) row(workflowID string) string {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	js := `Array.from(document.querySelectorAll('tr')).filter(r => Array.from(r.querySelectorAll('a'))
		.some(a => a.textContent.trim() === ` + strconv.Quote(workflowID) + `)).map(r => Array.from(r.cells)
		.map(c => c.textContent.trim()).join(' | ')).join('\n')`
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		u.t.Fatalf("%s's row: %v", workflowID, err)
	}
	return text
}

// checkConsole is the Temporal UI as the operator's console, in Chromium, the list's columns
// as the README sets them: the README's saved view lists the jobs and none of their child
// workflows (whose summaries name their parent), each row with its phase and status (a
// failed job reads failed there, though Temporal's badge says Running); the running job's
// details say what it waits for and what to do next; the README's failed view lists the failed
// job, whose page says why and which command to send; the Send a Signal dialog offers each
// signal with its description.
func checkConsole(t *testing.T, s *stacktest.Stack, running, failed int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	view, failedView := consoleViews(t)
	u := newUISession(t, s)
	u.configureColumns(s.Temporal.Namespace())
	runID, failedID := emailapi.WorkflowID(running), emailapi.WorkflowID(failed)

	t.Run("saved view without children", func(t *testing.T) {
		tc := s.Client.Temporal()
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: view})
		if err != nil {
			t.Fatalf("the README's view %q: %v", view, err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetParentExecution() != nil {
				t.Errorf("the view lists child workflow %s", e.GetExecution().GetWorkflowId())
			}
		}
		children, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("RootWorkflowId = '%s' AND ParentWorkflowId IS NOT NULL", runID)})
		if err != nil {
			t.Fatal(err)
		}
		if len(children.GetExecutions()) == 0 {
			t.Fatalf("job %d has no child workflows to filter out", running)
		}
		for _, e := range children.GetExecutions() {
			d, err := tc.DescribeWorkflowExecution(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())
			if err != nil {
				t.Fatal(err)
			}
			var summary string
			if p := d.GetExecutionConfig().GetUserMetadata().GetSummary(); p != nil {
				if err := converter.GetDefaultDataConverter().FromPayload(p, &summary); err != nil {
					t.Fatal(err)
				}
			}
			parent := e.GetParentExecution().GetWorkflowId()
			if !strings.Contains(summary, "child of "+parent) {
				t.Errorf("child %s: summary %q does not name its parent %s", e.GetExecution().GetWorkflowId(), summary, parent)
			}
		}
		// Unfiltered, the job's waves (one per pass; each runs its mailboxes as activities) crowd
		// the list; the view shows jobs only.
		wave := fmt.Sprintf("email-wave-%d-", running)
		u.list("temporal-ui-unfiltered", fmt.Sprintf("RootWorkflowId = '%s'", runID), runID, wave)
		got := u.list("temporal-ui-saved-view", view, runID, failedID)
		if strings.Contains(got, wave) {
			t.Errorf("the saved view lists child workflows:\n%s", got)
		}
		for _, c := range consoleColumns {
			if !strings.Contains(got, c) {
				t.Errorf("the saved view has no %s column:\n%s", c, got)
			}
		}
		// Each row says where its migration is: the running job's phase and gate, the failed
		// job failed (its Status badge says Running: it waits for its retry).
		if r := u.row(runID); !strings.Contains(r, "| delta_sync") || !strings.Contains(r, "| running") {
			t.Errorf("the running job's row lacks its phase and status: %q", r)
		}
		if r := u.row(failedID); !strings.Contains(r, "Running") || strings.Count(r, "| failed") < 2 {
			t.Errorf("the failed job's row does not read failed under MigrationPhase and MigrationStatus: %q", r)
		}
	})

	t.Run("waiting reason and next action", func(t *testing.T) {
		d := u.currentDetails("temporal-ui-running-details", runID, "delta_sync")
		for _, want := range []string{"**delta_sync**", "⏳ waiting for the next presync at ", "➡ next: ",
			fmt.Sprintf("cutover email cutover %d", running)} {
			if !strings.Contains(d, want) {
				t.Errorf("current details lack %q:\n%s", want, d)
			}
		}
	})

	t.Run("failed job", func(t *testing.T) {
		got := u.list("temporal-ui-failed", failedView, failedID)
		if !strings.Contains(got, failedID) || strings.Contains(got, runID) {
			t.Errorf("the README's failed view:\n%s", got)
		}
		if r := u.row(failedID); strings.Count(r, "| failed") < 2 {
			t.Errorf("the failed job's row in the failed view: %q", r)
		}
		d := u.currentDetails("temporal-ui-failed-details", failedID, "failed")
		for _, want := range []string{"❌ **failed** in **preflight**: preflight: 1 of", "CredentialsUnavailable",
			fmt.Sprintf("➡ next: fix the cause, then `cutover email retry %d`", failed)} {
			if !strings.Contains(d, want) {
				t.Errorf("the failed job's details lack %q:\n%s", want, d)
			}
		}
		if strings.HasPrefix(d, "**") {
			t.Errorf("the failed job's details start as a running job's:\n%s", d)
		}
		// The timer it waits on for the retry carries the same in its summary (history, timeline).
		if err := u.do(chromedp.Navigate(u.base+"/workflows/"+failedID),
			chromedp.WaitVisible(chromedp.Search(`//*[contains(text(), 'next: cutover email retry `+fmt.Sprint(failed)+`')]`))); err != nil {
			u.shoot("temporal-ui-failed-history-failed.png")
			t.Errorf("the failed job's history shows no timer summary: %v\n%s", err, u.text())
		} else {
			u.shoot("temporal-ui-failed-history.png")
		}
	})

	t.Run("signal descriptions", func(t *testing.T) {
		// The UI's Send a Signal and update dialogs read the job's metadata query.
		md, err := s.Client.Temporal().QueryWorkflow(ctx, runID, "", "__temporal_workflow_metadata")
		if err != nil {
			t.Fatal(err)
		}
		var meta sdkpb.WorkflowMetadata
		if err := md.Get(&meta); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range meta.GetDefinition().GetSignalDefinitions() {
			found = found || (d.GetName() == emailapi.Retry && d.GetDescription() == emailapi.Descriptions[emailapi.Retry])
		}
		if !found {
			t.Errorf("the job's metadata lacks the retry signal's description: %v", meta.GetDefinition().GetSignalDefinitions())
		}
	})

	t.Run("send signal dialog", func(t *testing.T) {
		// An operator on the job's page: More Actions, Send a Signal, the signal list: each
		// signal offered with what it does and the JSON it takes.
		err := u.clickThrough(u.base+"/workflows/"+runID,
			[2]string{`button[aria-controls="workflow-actions"]`, "More Actions"},
			[2]string{`[data-testid="signal-button"]`, "Send a Signal"},
			[2]string{`[data-testid="signal-select-button"]`, ""},
			// the list is open: the retry signal shows with its description
			[2]string{`[role="option"]`, emailapi.Descriptions[emailapi.Retry]})
		if err != nil {
			u.shoot("temporal-ui-signal-dialog-failed.png")
			t.Fatalf("%v\n%s", err, u.text())
		}
		u.shoot("temporal-ui-signal-dialog.png")
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		defer cancel()
		offered, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries(Array.from(
			document.querySelectorAll('[role=option]')).map(o => [(o.querySelector('.menu-item-wrapper')?.textContent ?? '').trim(),
			(o.querySelector('.menu-item-description')?.textContent ?? '').trim()]))`))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{emailapi.Retry, emailapi.Approve, emailapi.DNSCutoverConfirmed} {
			if got, want := offered[name], emailapi.Descriptions[name]; got != want {
				t.Errorf("the dialog offers %s with %q, want its description %q (offered: %q)", name, got, want, offered)
			}
		}
	})
}

// passRunning is the waiting line of a job whose pass reports its progress.
var passRunning = regexp.MustCompile(`initial pass running: (\d+) of (\d+) messages copied \(([\d.]+)%\)`)

// checkInitialSyncProgress: while a job's initial sync copies, its page in the UI shows how
// far it got (messages copied of those the preflight counted), not 0% until the end. The
// page is opened once and refreshed with the UI's R key (its current details' freshness).
func checkInitialSyncProgress(t *testing.T, s *stacktest.Stack, job int64) {
	u := newUISession(t, s)
	id := emailapi.WorkflowID(job)
	details := `//iframe[contains(@src, 'synced')]`
	err := u.do(chromedp.Navigate(u.base+"/workflows/"+id),
		chromedp.WaitVisible(chromedp.Search(`//a[contains(., 'User Metadata')] | //button[contains(., 'User Metadata')]`)),
		chromedp.Click(chromedp.Search(`//a[contains(., 'User Metadata')] | //button[contains(., 'User Metadata')]`)),
		chromedp.WaitVisible(chromedp.Search(details)))
	if err != nil {
		u.shoot("temporal-ui-initial-sync-failed.png")
		t.Fatalf("%s: no current details: %v\n%s", id, err, u.text())
	}
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for i := 0; time.Now().Before(deadline); i++ {
		if i%4 == 3 { // the R key may miss its focus: a reload now and then
			if err := u.do(chromedp.Reload(),
				chromedp.WaitVisible(chromedp.Search(`//a[contains(., 'User Metadata')] | //button[contains(., 'User Metadata')]`)),
				chromedp.Click(chromedp.Search(`//a[contains(., 'User Metadata')] | //button[contains(., 'User Metadata')]`)),
				chromedp.WaitVisible(chromedp.Search(details))); err != nil {
				t.Fatalf("reload: %v", err)
			}
		} else if err := u.do(chromedp.KeyEvent("r"), chromedp.Sleep(500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.Search(details), "src"))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		p, err := url.Parse(src.Value)
		if err != nil {
			t.Fatal(err)
		}
		last = p.Query().Get("content")
		if m := passRunning.FindStringSubmatch(last); m != nil {
			copied, _ := strconv.Atoi(m[1])
			total, _ := strconv.Atoi(m[2])
			if copied > 0 && copied < total {
				u.shoot("temporal-ui-initial-sync.png")
				t.Logf("initial sync on the job's page: %s", m[0])
				if pct := fmt.Sprintf("· %s%% synced", m[3]); !strings.Contains(last, pct) {
					t.Errorf("the phase line does not follow the progress (%q):\n%s", pct, last)
				}
				return
			}
		}
		if strings.HasPrefix(last, "**delta_sync**") {
			u.shoot("temporal-ui-initial-sync-failed.png")
			t.Fatalf("job %d's page went from before the initial sync to delta_sync without showing progress:\n%s", job, last)
		}
	}
	u.shoot("temporal-ui-initial-sync-failed.png")
	t.Fatalf("job %d's page never showed the initial sync's progress; last details:\n%s", job, last)
}
