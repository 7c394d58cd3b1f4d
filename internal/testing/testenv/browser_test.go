package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestChromiumSeesWorkflowInTemporalUI proves the browser harness against the real Web UI: a
// workflow tagged with our search attribute appears in the UI's list filtered by it.
func TestChromiumSeesWorkflowInTemporalUI(t *testing.T) {
	srv := StartTemporal(t, WithUI())
	c := srv.Client(t)
	queue := "ui-" + randomHex(4)
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(upsertKindWorkflow, workflow.RegisterOptions{Name: "UpsertKind"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	id := "ui-check-" + randomHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, "UpsertKind", "uitest")
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}

	browser := Chromium(t)
	bctx, bcancel := context.WithTimeout(browser, 60*time.Second)
	defer bcancel()
	url := srv.UIURL() + "/namespaces/default/workflows?query=" + strings.ReplaceAll("MigrationKind=\"uitest\"", "\"", "%22")
	if err := chromedp.Do(bctx, chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.Search(`//a[contains(., '`+id+`')]`))); err != nil {
		t.Fatalf("UI did not list %s at %s: %v", id, url, err)
	}
	body, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, id) {
		t.Fatalf("page text lacks %s", id)
	}
	out := filepath.Join(t.ArtifactDir(), "temporal-ui.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
}
