package mail

import (
	"github.com/cutover/cutover/internal/metrics"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// observePass adds what one attempt of a pass did to the worker's Prometheus counters. The
// counters of a resumed attempt include the earlier attempts' (heartbeat details), which were
// counted when those ended: only the difference is added.
func observePass(rt model.RunType, resume *emailapi.Progress, s emailapi.PassStats, err error) {
	if s.Mode == model.ModeDryRun {
		return // nothing happened
	}
	var before emailapi.Counters
	if resume != nil {
		before = resume.Counters
	}
	add := func(result string, now, was int64) {
		if d := now - was; d > 0 {
			metrics.MailMessages.WithLabelValues(result).Add(float64(d))
		}
	}
	add("transferred", s.Transferred, before.Transferred)
	add("skipped", s.Skipped, before.Skipped)
	add("quarantined", s.Quarantined, before.Quarantined)
	add("deleted", s.Deleted, before.Deleted)
	add("flags_updated", s.FlagsUpdated, before.FlagsUpdated)
	if d := s.BytesTransferred - before.BytesTransferred; d > 0 {
		metrics.MailBytes.Add(float64(d))
	}
	for class, n := range s.ErrorsByClass {
		if d := n - before.ErrorsByClass[class]; d > 0 {
			metrics.Errors.WithLabelValues("mail", class).Add(float64(d))
		}
	}
	if err != nil {
		metrics.Errors.WithLabelValues("mail", errorClass(err)).Inc()
		return
	}
	metrics.PassDuration.WithLabelValues("mail", string(rt)).Observe(s.Duration.Seconds())
}

// observeFailure counts an activity that failed before or outside a pass (preflight, verify).
func observeFailure(err error) {
	if err != nil {
		metrics.Errors.WithLabelValues("mail", errorClass(err)).Inc()
	}
}
