package cli

import (
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/cutover/cutover/internal/notify"
)

// printNotifications prints a migration's webhook delivery log (nothing without webhooks).
func printNotifications(w io.Writer, n *notify.Summary) {
	if n == nil || n.Webhooks == 0 {
		return
	}
	fmt.Fprintf(w, "\nnotifications: %d webhook(s), %d delivered, %d queued, %d given up\n", n.Webhooks, n.Delivered,
		n.Queued, n.GaveUp)
	if len(n.Log) == 0 {
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "SEQ\tEVENT\tWEBHOOK\tRESULT\tAT")
	for _, e := range n.Log {
		res := fmt.Sprintf("%d after %d attempt(s)", e.Status, e.Attempts)
		if !e.OK {
			res = "given up: " + e.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Seq, e.Event, webhookName(e.URL), res, e.At.UTC().Format(time.RFC3339))
	}
	tw.Flush()
}

// webhookName is a webhook URL without its query (which may carry a token).
func webhookName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.RawQuery, p.Fragment, p.User = "", "", nil
	return p.String()
}
