package mail

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Throttling hints servers give: Exchange Online / Office 365 answers "Request is throttled.
// Suggested Backoff Time: 92221 milliseconds"; HTTP sources (a Zimbra export) send Retry-After.
var (
	suggestedBackoff = regexp.MustCompile(`(?i)suggested\s+backoff\s+time:?\s*(\d+)\s*(milliseconds|millisecond|ms|seconds|second|secs|sec|s)?`)
	retryAfter       = regexp.MustCompile(`(?i)retry-after:?\s*(\d+)`)
)

// Bounds of a server's hint: never busy-loop, never park a mailbox for more than an hour.
const (
	minThrottleHint = time.Second
	maxThrottleHint = time.Hour
	// maxInPassThrottle is the longest hint the engine waits out inside a pass (reconnecting);
	// a longer one ends the activity so Temporal waits on a durable timer instead.
	maxInPassThrottle = 5 * time.Second
)

// throttleHint extracts the wait a throttling answer asks for.
func throttleHint(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	text := err.Error()
	var d time.Duration
	if m := suggestedBackoff.FindStringSubmatch(text); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		unit := strings.ToLower(m[2])
		if unit == "" || strings.HasPrefix(unit, "m") {
			d = time.Duration(n) * time.Millisecond
		} else {
			d = time.Duration(n) * time.Second
		}
	} else if m := retryAfter.FindStringSubmatch(text); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		d = time.Duration(n) * time.Second
	} else {
		return 0, false
	}
	return min(max(d, minThrottleHint), maxThrottleHint), true
}

// retryDelay is the NextRetryDelay of a throttled activity: the server's hint, else the default.
func retryDelay(err error) time.Duration {
	if d, ok := throttleHint(err); ok {
		return d
	}
	return throttleDelay
}

// retryInPass reports whether a throttled folder is retried inside the pass: only when the
// server asked for at most a few seconds (or said nothing).
func retryInPass(err error) bool {
	d, ok := throttleHint(err)
	return !ok || d <= maxInPassThrottle
}
