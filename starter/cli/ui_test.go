package cli_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/internal/stacktest"
)

// checkTemporalUI opens the Temporal Web UI in headless Chromium: the running job must be
// listed when filtering on MigrationKind and MigrationPhase, and its page must show the
// summary the job started with and the current details the workflow keeps (its phase).
// Screenshots of the list and the job's tabs are test artifacts (make test keeps them).
func checkTemporalUI(t *testing.T, s *stacktest.Stack, job int64) {
	t.Helper()
	browser := testenv.Chromium(t)
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	id := fmt.Sprintf("email-job-%d", job)
	base := s.Temporal.UIURL() + "/namespaces/" + s.Temporal.Namespace()
	listURL := base + "/workflows?query=" + url.QueryEscape(`MigrationKind="email" AND MigrationPhase="delta_sync"`)
	shoot := func(name string) {
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		path := filepath.Join(t.ArtifactDir(), name)
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Error(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	}
	text := func() string {
		body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			t.Fatal(err)
		}
		return body
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(listURL),
		chromedp.WaitVisible(chromedp.Search(`//a[contains(., '`+id+`')]`))); err != nil {
		shoot("temporal-ui-list-failed.png")
		t.Fatalf("the UI does not list %s at %s: %v", id, listURL, err)
	}
	list := text()
	shoot("temporal-ui-list.png")
	if !strings.Contains(list, id) || !strings.Contains(list, "Running") {
		t.Errorf("list page lacks the running job:\n%s", list)
	}

	if !strings.Contains(strings.Join(strings.Fields(list), " "), `MigrationPhase = "delta_sync"`) {
		t.Errorf("list page lacks the MigrationPhase filter:\n%s", list)
	}

	// The job's page: its summary and current details (User Metadata), its search attributes.
	tab := func(name, want string) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/workflows/"+id),
			chromedp.WaitVisible(chromedp.Search(`//a[contains(., '`+name+`')] | //button[contains(., '`+name+`')]`)),
			chromedp.Click(chromedp.Search(`//a[contains(., '`+name+`')] | //button[contains(., '`+name+`')]`)),
			chromedp.WaitVisible(chromedp.Search(`//*[contains(text(), '`+want+`')]`))); err != nil {
			shoot("temporal-ui-" + strings.ReplaceAll(strings.ToLower(name), " ", "-") + "-failed.png")
			t.Fatalf("the job's %s tab never showed %q: %v\n%s", name, want, err, text())
		}
		shoot("temporal-ui-" + strings.ReplaceAll(strings.ToLower(name), " ", "-") + ".png")
		return text()
	}
	tab("User Metadata", fmt.Sprintf("email job %d", job))
	// Markdown (the summary, the current details) renders in frames fed by their src: the
	// current details must name the phase and the gate the workflow is at.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.Search(`//iframe[contains(@src, 'delta_sync')]`))); err != nil {
		shoot("temporal-ui-current-details-failed.png")
		t.Fatalf("no current details naming delta_sync: %v", err)
	}
	var markdown []string
	for _, xpath := range []string{`//iframe[contains(@src, 'email%20job')]`, `//iframe[contains(@src, 'delta_sync')]`} {
		src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.Search(xpath), "src"))
		if err != nil {
			t.Fatalf("%s: %v", xpath, err)
		}
		if u, err := url.Parse(src.Value); err == nil {
			markdown = append(markdown, u.Query().Get("content"))
		}
	}
	shoot("temporal-ui-user-metadata.png")
	all := strings.Join(markdown, "\n")
	for _, want := range []string{fmt.Sprintf("email job %d", job), "**delta_sync**", "gate **ready_for_dns**"} {
		if !strings.Contains(all, want) {
			t.Errorf("summary and current details lack %q: %q", want, markdown)
		}
	}
	attrs := strings.Join(strings.Fields(tab("Search Attributes", "MigrationPhase")), " ")
	for _, want := range []string{`"MigrationPhase": "delta_sync"`, `"MigrationKind": "email"`, `"MigrationGate": "ready_for_dns"`} {
		if !strings.Contains(attrs, want) {
			t.Errorf("search attributes tab lacks %s:\n%s", want, attrs)
		}
	}
}
