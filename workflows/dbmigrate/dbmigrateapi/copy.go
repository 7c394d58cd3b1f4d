package dbmigrateapi

import (
	"time"

	"github.com/cutover/cutover/internal/model"
)

// The copy engine's payloads (activities/dbcopy) that a migration's state and configuration
// carry.

// BatchRequest asks for one batch of an entity: the rows after key After ("" = from the start).
type BatchRequest struct {
	Entity      string `json:"entity"`
	BatchNumber int64  `json:"batch_number"`
	After       string `json:"after,omitempty"`
	// AfterType is the SQLite storage class of After's value (integer, real, text or blob)
	// when it is not the one its text reads back as by the key column's declared type (integer
	// for an INT column, text otherwise); "" then, and always for PostgreSQL sources and
	// composite keys. A SQLite column holds values of any class and sorts them NULL <
	// INTEGER/REAL < TEXT < BLOB: 5 and '5' sit at different places in key order.
	AfterType string `json:"after_type,omitempty"`
	// Mark/Sync select a catch-up batch (incremental sync): rows whose watermark is after
	// (Mark, After), written as upserts. Without a watermark column, rows after After.
	Sync bool   `json:"sync,omitempty"`
	Mark string `json:"mark,omitempty"`
	// MarkType is Mark's SQLite storage class, as AfterType is After's (by the watermark
	// column's declared type): an integer epoch and ISO text sit at different places in
	// watermark order, and text compares after every integer.
	MarkType string `json:"mark_type,omitempty"`
}

// ColumnChange is how many values of a column one kind of transformation changed on their way
// to the target: empty_to_null, trimmed, rounded or default_filled (nothing changes silently).
type ColumnChange struct {
	Column string `json:"column"`
	Change string `json:"change"`
	Count  int64  `json:"count"`
}

// ValidationSummary is an entity's validation outcome.
type ValidationSummary struct {
	Entity   string                 `json:"entity"`
	Passed   bool                   `json:"passed"`
	Warnings int                    `json:"warnings"`
	Failures int                    `json:"failures"`
	Checks   []ValidationCheck      `json:"checks"`
	Status   model.ValidationStatus `json:"status"`
}

// ValidationCheck is one recorded check.
type ValidationCheck struct {
	Type   model.ValidationType   `json:"type"`
	Status model.ValidationStatus `json:"status"`
	Issues int64                  `json:"issues"`
	Rows   int64                  `json:"rows"`
}

// EventSink says where migration events go: a PostgreSQL NOTIFY channel on the target (ledger)
// database and/or a webhook URL receiving a JSON POST.
type EventSink struct {
	Channel string `json:"channel,omitempty"`
	Webhook string `json:"webhook,omitempty"`
}

// CaptureStatus is one source's change capture as the ledger and the source know it.
type CaptureStatus struct {
	Source    string `json:"source"`
	Direction string `json:"direction"`
	Method    string `json:"method"`
	Position  string `json:"position"`
	// Slot is the replication slot while it exists (a forgotten slot keeps WAL: the disk fills).
	Slot           string  `json:"slot,omitempty"`
	Pending        int64   `json:"pending"`         // changes not applied yet
	ChangesApplied int64   `json:"changes_applied"` // change-log rows or stream changes applied
	RowsApplied    int64   `json:"rows_applied"`    // target rows written or deleted by them
	Drains         int64   `json:"drains"`
	RowsPerSecond  float64 `json:"rows_per_second"` // of the last drain that applied anything
	// PendingWALBytes (PostgreSQL) is the WAL written since the last applied position, and
	// RetainedWALBytes what the slot keeps the server from recycling.
	PendingWALBytes  int64 `json:"pending_wal_bytes,omitempty"`
	RetainedWALBytes int64 `json:"retained_wal_bytes,omitempty"`
	Removed          bool  `json:"removed,omitempty"`
	// WhatIsLeft names what of the capture remains in the source (nothing once removed).
	WhatIsLeft []string `json:"what_is_left,omitempty"`
}

// ChunkProgress is a copy activity's heartbeat: where a retry continues (Cursor, the batches
// Done so far) and when the last batch committed, so `cutover db status` can show a batch
// that has been writing, or waiting, for long.
type ChunkProgress struct {
	Cursor     BatchRequest `json:"cursor"`
	Done       int          `json:"done"`
	LastCommit time.Time    `json:"last_commit"`
}
