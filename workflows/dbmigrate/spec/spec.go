// Package spec is the database migration spec: the legacy entity mappings (per entity the source
// and destination tables, key, column transformation rules, references, dependencies, validation
// rules, batch size, version) plus the sources, the target and the schema change operations. It
// parses YAML or JSON and validates everything that can be checked without a connection; the copy
// engine checks the rest (columns that exist, types that match) at Prepare.
//
// The package is pure (no I/O besides Load) so workflow code may use it for planning.
package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"
)

// Spec is one database migration.
type Spec struct {
	Name    string `json:"name" yaml:"name"`
	Version string `json:"version,omitempty" yaml:"version"`
	// Namespace seeds the UUIDv5 of every migrated row (name = table + "/" + legacy id). The
	// same spec therefore maps the same row to the same UUID in every run. Default: derived
	// from Name.
	Namespace string            `json:"namespace,omitempty" yaml:"namespace"`
	Sources   map[string]Source `json:"sources" yaml:"sources"`
	Target    Target            `json:"target" yaml:"target"`
	// BatchSize is the default rows per batch (5000).
	BatchSize int        `json:"batch_size,omitempty" yaml:"batch_size"`
	Entities  []Entity   `json:"entities" yaml:"entities"`
	SchemaOps []SchemaOp `json:"schema_ops,omitempty" yaml:"schema_ops"`
	// ErrorBudget is how many quarantined rows a migration may still complete with. Without
	// one, a migration with any unresolved quarantined row ends failed until an operator
	// accepts them (cutover db accept-errors) or fixes and retries them.
	ErrorBudget *ErrorBudget `json:"error_budget,omitempty" yaml:"error_budget"`
	// Ignore names the source tables and columns left behind on purpose. Planning refuses a
	// source table or column no entity reads unless it is listed here.
	Ignore []IgnoreRule `json:"ignore,omitempty" yaml:"ignore"`
}

// ErrorBudget bounds the quarantined rows a migration may complete with: at most MaxRows
// rows and at most MaxRatio of the source rows (each when set).
type ErrorBudget struct {
	MaxRows  int64   `json:"max_rows,omitempty" yaml:"max_rows"`
	MaxRatio float64 `json:"max_ratio,omitempty" yaml:"max_ratio"`
}

// IgnoreRule leaves a source table (no Columns) or some of its columns out of the migration.
// Source "" matches the table in every source.
type IgnoreRule struct {
	Source  string   `json:"source,omitempty" yaml:"source"`
	Table   string   `json:"table" yaml:"table"`
	Columns []string `json:"columns,omitempty" yaml:"columns"`
}

// What a migration does with target tables that already hold rows (Target.OnExisting).
const (
	OnExistingRefuse   = ""         // refuse to start, naming the tables (the default)
	OnExistingFail     = "fail"     // the same, said explicitly
	OnExistingResume   = "resume"   // load as upserts: rows already there with a migrated key are overwritten
	OnExistingTruncate = "truncate" // empty the tables first (destructive: their rows are not ours)
)

// Source is a database rows are read from. Passwords never appear here: CredentialsRef names
// a vault secret whose Password completes the DSN inside the activity.
type Source struct {
	Driver         string `json:"driver" yaml:"driver"` // sqlite | postgres
	Path           string `json:"path,omitempty" yaml:"path"`
	DSN            string `json:"dsn,omitempty" yaml:"dsn"`
	CredentialsRef string `json:"credentials_ref,omitempty" yaml:"credentials_ref"`
	// Capture is how an incremental migration follows the source's changes during catch-up:
	// "triggers" (SQLite; the default there), "logical" (PostgreSQL logical replication; the
	// default there), or "key_cursor", chosen explicitly: rows beyond the last copied key (or
	// whose incremental watermark moved), which misses UPDATEs without a watermark and DELETEs.
	Capture string `json:"capture,omitempty" yaml:"capture"`
}

// Capture modes of a source.
const (
	CaptureTriggers  = "triggers"
	CaptureLogical   = "logical"
	CaptureKeyCursor = "key_cursor"
)

// CaptureMode is the source's effective capture mode.
func (s Source) CaptureMode() string {
	switch {
	case s.Capture != "":
		return s.Capture
	case s.Driver == "postgres":
		return CaptureLogical
	default:
		return CaptureTriggers
	}
}

// Target is the PostgreSQL database rows are written to. The migration's ledger (mappings,
// checkpoints, batches, errors) lives in LedgerSchema of the same database, so a batch's rows
// and its ledger entries commit in one transaction.
type Target struct {
	DSN            string `json:"dsn,omitempty" yaml:"dsn"` // "" = the worker's DATABASE_URL
	CredentialsRef string `json:"credentials_ref,omitempty" yaml:"credentials_ref"`
	Schema         string `json:"schema,omitempty" yaml:"schema"`               // default public
	LedgerSchema   string `json:"ledger_schema,omitempty" yaml:"ledger_schema"` // default cutover
	CreateTables   bool   `json:"create_tables,omitempty" yaml:"create_tables"`
	// ReverseFlow keeps the SQLite sources current after cutover: until the migration is
	// closed, the application's writes on the target flow back into them (logical replication
	// of the target, which needs wal_level=logical), so a rollback after cutover returns the
	// application to SQLite with every write it made on PostgreSQL.
	ReverseFlow bool `json:"reverse_flow,omitempty" yaml:"reverse_flow"`
	// OnExisting says what to do when a target table already holds rows: "" or fail refuses
	// to start (naming them), resume loads as upserts, truncate empties them first.
	OnExisting string `json:"on_existing,omitempty" yaml:"on_existing"`
	// LockTimeout and StatementTimeout bound every statement on the target (Go durations:
	// "30s"; defaults 1m and 30m). A wait that hits them is a retryable timeout, shown in
	// the status, never a wait without end.
	LockTimeout      string `json:"lock_timeout,omitempty" yaml:"lock_timeout"`
	StatementTimeout string `json:"statement_timeout,omitempty" yaml:"statement_timeout"`
}

// Entity is one table's migration (a legacy entity mapping; the ledger's legacy_entity_mappings
// row).
type Entity struct {
	Name        string   `json:"name" yaml:"name"`
	Source      string   `json:"source,omitempty" yaml:"source"` // key of Spec.Sources; default the only one
	SourceTable string   `json:"source_table" yaml:"source_table"`
	TargetTable string   `json:"target_table" yaml:"target_table"`
	EntityType  string   `json:"entity_type,omitempty" yaml:"entity_type"` // migration_mappings.entity_type; default Name
	Key         Key      `json:"key" yaml:"key"`
	Columns     []Column `json:"columns" yaml:"columns"`
	DependsOn   []string `json:"depends_on,omitempty" yaml:"depends_on"`
	Validation  []Rule   `json:"validation,omitempty" yaml:"validation"`
	BatchSize   int      `json:"batch_size,omitempty" yaml:"batch_size"`
	Version     string   `json:"version,omitempty" yaml:"version"`
	// Incremental names the watermark column catch-up passes read by (updated_at, created_at);
	// empty means rows beyond the last copied key.
	Incremental *Incremental `json:"incremental,omitempty" yaml:"incremental"`
	Partition   *Partition   `json:"partition,omitempty" yaml:"partition"`
	Indexes     []Index      `json:"indexes,omitempty" yaml:"indexes"`
	// UniqueAcrossPartitions lists columns unique over the whole partitioned table. PostgreSQL
	// only enforces unique constraints that include the partition key, so the engine keeps a
	// companion table <target>_<column>_unique filled by a trigger on every insert.
	UniqueAcrossPartitions []string `json:"unique_across_partitions,omitempty" yaml:"unique_across_partitions"`
	// Where filters the source: only rows matching every condition belong to the migration
	// (read, counted and validated as the table). Each is a rule on a source column (ops:
	// not_null eq ne gt ge lt le in max_length); the values are compared by the source
	// database under the column's own type.
	Where []Rule `json:"where,omitempty" yaml:"where"`
	// Checks are CHECK constraints of the target table, each a rule on a target column (as
	// validation rules are; NULL passes, as in SQL): created with the table, or added to an
	// existing one before the load, so a row breaking one is quarantined (23514).
	Checks []Rule `json:"checks,omitempty" yaml:"checks"`
}

// Key is the entity's primary key: the legacy source column (or columns) and the target column.
type Key struct {
	Source string `json:"source" yaml:"source"`
	// Columns is a composite key's source columns, in key order (Chinook's PlaylistTrack:
	// [PlaylistId, TrackId]), instead of Source. Its legacy id, in mappings, checkpoints and
	// errors, is the JSON array of the values ([1,3402], ["ALFKI","x"]); the target key is the
	// UUID of that id (mode uuid: a composite key cannot be kept as one column). Copy the
	// columns themselves with column rules and keep them unique together with a unique index.
	Columns []string `json:"columns,omitempty" yaml:"columns"`
	Target  string   `json:"target,omitempty" yaml:"target"` // default "id"
	// Mode uuid (default) stores UUIDv5(namespace, table/id) in Target; keep copies the value.
	Mode string `json:"mode,omitempty" yaml:"mode"`
	// Type is the target column type in keep mode (default bigint).
	Type string `json:"type,omitempty" yaml:"type"`
	// UUID chooses how a legacy id becomes a UUID: "v5" (default) is UUIDv5(namespace,
	// table/id), uniformly spread; "ordered" is a version 8 UUID of a per-table prefix and the
	// integer legacy id, so rows arrive in index order (far cheaper B-tree inserts on large
	// tables) at the price of revealing the legacy id. Non-integer ids fall back to v5. Both are
	// deterministic: no lookup, and re-runs map the same row to the same UUID.
	UUID string `json:"uuid,omitempty" yaml:"uuid"`
}

// Column is one transformation rule. Exactly one of Source, Constant, Expr gives the value.
type Column struct {
	Source   string  `json:"source,omitempty" yaml:"source"`
	Target   string  `json:"target,omitempty" yaml:"target"` // default Source
	Type     string  `json:"type,omitempty" yaml:"type"`     // cast to this PostgreSQL type
	Default  *string `json:"default,omitempty" yaml:"default"`
	Constant *string `json:"constant,omitempty" yaml:"constant"`
	Expr     string  `json:"expr,omitempty" yaml:"expr"`
	Drop     bool    `json:"drop,omitempty" yaml:"drop"`
	// References names the entity this column points at: its legacy id is remapped to the
	// parent's UUID, and a value with no migrated parent is an orphan.
	References string `json:"references,omitempty" yaml:"references"`
	NotNull    bool   `json:"not_null,omitempty" yaml:"not_null"` // target DDL
	Unique     bool   `json:"unique,omitempty" yaml:"unique"`     // target DDL
	// EmptyAsNull loads '' as NULL (common in SQLite exports) instead of rejecting it.
	EmptyAsNull bool `json:"empty_as_null,omitempty" yaml:"empty_as_null"`
	// AllowNaN accepts NaN/Infinity floats, which are rejected by default.
	AllowNaN bool `json:"allow_nan,omitempty" yaml:"allow_nan"`
	// TargetDefault is the target column's DEFAULT, for the rows the application inserts after
	// cutover (a value cast to the column's type, or a function); set with the table or on the
	// existing one. It never fills migrated rows: Default does that, counted.
	TargetDefault *TargetDefault `json:"target_default,omitempty" yaml:"target_default"`
	// Round lets the cast round a value the target type cannot hold exactly (more decimals than
	// a numeric's scale, a float beyond real's precision, a time more precise than the column
	// keeps, a time of day into a date). Every rounded value is counted; without Round such a
	// value is an error row (inexact), never a silently rounded one.
	Round bool `json:"round,omitempty" yaml:"round"`
}

// TargetDefault is a column DEFAULT in the target: exactly one of Value and Function.
type TargetDefault struct {
	Value *string `json:"value,omitempty" yaml:"value"`
	// Function is one of DefaultFunctions (now, current_date, gen_random_uuid, ...).
	Function string `json:"function,omitempty" yaml:"function"`
}

// DefaultFunctions are the functions a TargetDefault may name, with their SQL.
var DefaultFunctions = map[string]string{
	"now":               "now()",
	"current_timestamp": "CURRENT_TIMESTAMP",
	"current_date":      "CURRENT_DATE",
	"clock_timestamp":   "clock_timestamp()",
	"gen_random_uuid":   "gen_random_uuid()",
}

// Incremental configures catch-up passes.
type Incremental struct {
	Column string `json:"column" yaml:"column"`
}

// Partition makes the target table PARTITION BY RANGE on a timestamp column, one partition per
// interval, created for the data as it arrives.
type Partition struct {
	Column   string `json:"column" yaml:"column"`
	Interval string `json:"interval,omitempty" yaml:"interval"` // month (default)
	// Ahead is how many months past the current one get their partition once the table is
	// loaded (default 3), beside a DEFAULT partition; the migration keeps it so daily while it
	// stays open after cutover, and the target's cutover_partitions_ahead function afterwards.
	Ahead int `json:"ahead,omitempty" yaml:"ahead"`
}

// Index is created after the load. FullText builds a GIN index on
// to_tsvector(Config, coalesce(col1,”) || ' ' || ...).
type Index struct {
	Name     string    `json:"name,omitempty" yaml:"name"`
	Columns  []string  `json:"columns,omitempty" yaml:"columns"`
	Unique   bool      `json:"unique,omitempty" yaml:"unique"`
	Where    *Rule     `json:"where,omitempty" yaml:"where"` // partial index predicate
	FullText *FullText `json:"full_text,omitempty" yaml:"full_text"`
}

// FullText is a text-search index definition.
type FullText struct {
	Config  string   `json:"config,omitempty" yaml:"config"` // english (default)
	Columns []string `json:"columns" yaml:"columns"`
}

// Rule is a row predicate on a target column: validation (business_rules) and partial indexes.
type Rule struct {
	Name   string   `json:"name,omitempty" yaml:"name"`
	Column string   `json:"column" yaml:"column"`
	Op     string   `json:"op" yaml:"op"` // not_null eq ne gt ge lt le in matches max_length
	Value  *string  `json:"value,omitempty" yaml:"value"`
	Values []string `json:"values,omitempty" yaml:"values"`
	// Severity warning reports violations as a validation warning instead of a failure.
	Severity string `json:"severity,omitempty" yaml:"severity"`
}

// SchemaOp is a schema change operation on the target (the ledger's schema_change_operations row).
type SchemaOp struct {
	Name    string  `json:"name" yaml:"name"`
	Type    string  `json:"type" yaml:"type"` // add_column drop_column modify_column create_backup
	Table   string  `json:"table" yaml:"table"`
	Column  string  `json:"column,omitempty" yaml:"column"`
	ColType string  `json:"column_type,omitempty" yaml:"column_type"` // add/modify
	Default *string `json:"default,omitempty" yaml:"default"`         // add_column
	Risk    string  `json:"risk,omitempty" yaml:"risk"`               // raises the assessed level
	// After names the entity the operation runs after (its place in the plan); empty = after
	// all entities are loaded.
	After string `json:"after,omitempty" yaml:"after"`
}

// SourceColumns are the key's source columns: Columns, or Source alone.
func (k Key) SourceColumns() []string {
	if len(k.Columns) > 0 {
		return k.Columns
	}
	return []string{k.Source}
}

// Composite reports whether the key has several columns.
func (k Key) Composite() bool { return len(k.Columns) > 0 }

// Defaults.
const (
	DefaultBatchSize    = 5000
	MaxBatchSize        = 1_000_000
	DefaultTargetSchema = "public"
	DefaultLedgerSchema = "cutover"
	KeyModeUUID         = "uuid"
	KeyModeKeep         = "keep"
	UUIDv5              = "v5"
	UUIDOrdered         = "ordered"
)

// Load reads a spec file (YAML or JSON) and validates it; relative SQLite paths are resolved
// against the file's directory.
func Load(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", path, err)
	}
	// A relative SQLite path is relative to the spec file, wherever the command runs.
	for name, src := range s.Sources {
		if src.Driver == "sqlite" && src.Path != "" && !filepath.IsAbs(src.Path) {
			src.Path = filepath.Join(filepath.Dir(path), src.Path)
			if abs, err := filepath.Abs(src.Path); err == nil {
				src.Path = abs
			}
			s.Sources[name] = src
		}
	}
	return s, nil
}

// Parse decodes YAML or JSON (JSON is YAML), refusing unknown fields, applies defaults and
// validates.
func Parse(b []byte) (*Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	s.ApplyDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// JSON returns the canonical JSON form (what a workflow input carries).
func (s *Spec) JSON() ([]byte, error) { return json.Marshal(s) }

// ApplyDefaults fills the optional fields. Idempotent.
func (s *Spec) ApplyDefaults() {
	if s.BatchSize == 0 {
		s.BatchSize = DefaultBatchSize
	}
	if s.Target.Schema == "" {
		s.Target.Schema = DefaultTargetSchema
	}
	if s.Target.LedgerSchema == "" {
		s.Target.LedgerSchema = DefaultLedgerSchema
	}
	if s.Namespace == "" && s.Name != "" {
		s.Namespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("cutover:spec:"+s.Name)).String()
	}
	for i := range s.Entities {
		e := &s.Entities[i]
		if e.Source == "" && len(s.Sources) == 1 {
			for name := range s.Sources {
				e.Source = name
			}
		}
		if e.EntityType == "" {
			e.EntityType = e.Name
		}
		if e.BatchSize == 0 {
			e.BatchSize = s.BatchSize
		}
		if e.Version == "" {
			e.Version = s.Version
		}
		if e.Key.Target == "" {
			e.Key.Target = "id"
		}
		if e.Key.Mode == "" {
			e.Key.Mode = KeyModeUUID
		}
		if e.Key.UUID == "" {
			e.Key.UUID = UUIDv5
		}
		if e.Key.Mode == KeyModeKeep && e.Key.Type == "" {
			e.Key.Type = "bigint"
		}
		if e.Key.Type != "" {
			e.Key.Type = NormalizeType(e.Key.Type)
		}
		if e.Partition != nil && e.Partition.Interval == "" {
			e.Partition.Interval = "month"
		}
		for j := range e.Columns {
			c := &e.Columns[j]
			if c.Target == "" && !c.Drop {
				c.Target = c.Source
			}
			if c.Type != "" {
				c.Type = NormalizeType(c.Type)
			}
			if c.References != "" && c.Type == "" {
				c.Type = "uuid"
			}
		}
		for j := range e.Indexes {
			if ft := e.Indexes[j].FullText; ft != nil && ft.Config == "" {
				ft.Config = "english"
			}
		}
	}
	for i := range s.SchemaOps {
		if s.SchemaOps[i].ColType != "" {
			s.SchemaOps[i].ColType = NormalizeType(s.SchemaOps[i].ColType)
		}
	}
}

// Entity returns the named entity.
func (s *Spec) Entity(name string) (*Entity, bool) {
	for i := range s.Entities {
		if s.Entities[i].Name == name {
			return &s.Entities[i], true
		}
	}
	return nil, false
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid migration spec (%d problem(s)):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}
