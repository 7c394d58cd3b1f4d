package dbcopy

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/metrics"
)

// observeBatch adds one committed (or replayed) batch to the worker's Prometheus metrics.
func observeBatch(b BatchResult) {
	if b.Empty {
		return
	}
	if b.Replayed {
		metrics.DBBatches.WithLabelValues("replayed").Inc()
		return
	}
	metrics.DBBatches.WithLabelValues("committed").Inc()
	metrics.DBRows.WithLabelValues("ok").Add(float64(b.Loaded))
	if b.Failed > 0 {
		metrics.DBRows.WithLabelValues("failed").Add(float64(b.Failed))
	}
	metrics.BatchDuration.Observe(float64(b.DurationMS) / 1000)
}

// observeError counts a failed copy activity by its error type (retryable ones have none).
func observeError(err error) {
	if err == nil {
		return
	}
	class := "retryable"
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() != "" {
		class = ae.Type()
	}
	metrics.Errors.WithLabelValues("database", class).Inc()
}
