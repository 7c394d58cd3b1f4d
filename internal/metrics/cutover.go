package metrics

import "github.com/prometheus/client_golang/prometheus"

// cutover's own metrics. Activities update these package-level collectors directly; every
// registry New builds exposes them (a process runs one worker, tests may build several).
var (
	MailMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cutover_mail_messages_total",
		Help: "Messages handled by sync passes, by result (transferred, skipped, quarantined, deleted, flags_updated).",
	}, []string{"result"})
	MailBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cutover_mail_bytes_total",
		Help: "Message bytes appended to destinations.",
	})
	DBRows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cutover_db_rows_total",
		Help: "Rows handled by database copy batches, by result (ok, failed).",
	}, []string{"result"})
	DBBatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cutover_db_batches_total",
		Help: "Database copy batches, by outcome (committed, replayed).",
	}, []string{"outcome"})
	Errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cutover_errors_total",
		Help: "Errors met by activities, by kind (mail, database) and class.",
	}, []string{"kind", "class"})
	PassDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cutover_pass_duration_seconds",
		Help:    "Duration of mailbox sync passes and entity loads, by kind and run type.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 14), // 50 ms … ~3 days
	}, []string{"kind", "run_type"})
	PhaseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cutover_phase_duration_seconds",
		Help:    "Time migrations spent in each phase, recorded when the phase ends.",
		Buckets: prometheus.ExponentialBuckets(0.1, 3, 14), // 100 ms … ~18 days
	}, []string{"kind", "phase"})
	CaptureChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cutover_db_capture_changes_total",
		Help: "Source changes applied by change-capture drains, by direction (forward: source to target; reverse: back).",
	}, []string{"direction"})
	CapturePending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cutover_db_capture_pending",
		Help: "Changes captured and not applied yet (SQLite change log rows; for PostgreSQL, WAL bytes), per migration and source.",
	}, []string{"migration_id", "source", "direction", "unit"})
	CaptureRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cutover_db_capture_rows_per_second",
		Help: "Changes applied per second by the last drain that applied any, per migration and source.",
	}, []string{"migration_id", "source", "direction"})
	CapturePredicted = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cutover_db_capture_predicted_final_pass_seconds",
		Help: "What the cutover's last drain would take now: pending changes over the drain rate, per migration.",
	}, []string{"migration_id"})
	CutoverWindow = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cutover_db_cutover_window_seconds",
		Help:    "Cutover windows of captured migrations: from the freeze's start to its completion.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 14), // 250 ms … ~68 min
	})
	BatchDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cutover_db_batch_duration_seconds",
		Help:    "Duration of one database copy batch transaction.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
)

func cutoverCollectors() []prometheus.Collector {
	return []prometheus.Collector{MailMessages, MailBytes, DBRows, DBBatches, Errors, PassDuration, PhaseDuration, BatchDuration,
		CaptureChanges, CapturePending, CaptureRate, CapturePredicted, CutoverWindow}
}
