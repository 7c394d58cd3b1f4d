package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumBin is Debian's Chromium (package chromium, installed by `make tools`).
const ChromiumBin = "/usr/bin/chromium"

// Chromium returns a chromedp context driving a fresh headless Chromium, closed when the test
// ends. Chromium is started without any background networking: only loopback exists here.
func Chromium(t testing.TB) context.Context {
	t.Helper()
	bin := os.Getenv("CUTOVER_CHROMIUM_BIN")
	if bin == "" {
		bin = ChromiumBin
	}
	if _, err := exec.LookPath(bin); err != nil {
		Require(t, "headless Chromium (run `make tools`)", err)
	}
	dir, err := os.MkdirTemp("", "cutover-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(dir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1600, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// Start the browser now so a broken install fails here, with its own message.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		_ = os.RemoveAll(dir)
		Require(t, "headless Chromium", err)
	}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		// Chromium may still be flushing its profile for a moment after exit.
		for range 20 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return ctx
}
