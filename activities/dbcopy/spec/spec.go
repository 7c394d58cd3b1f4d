// Package spec is the database migration spec: seed 001's LegacyEntityMappings (per entity the
// source and destination tables, key, column transformation rules, references, dependencies,
// validation rules, batch size, version) plus the sources, the target and the schema change
// operations. It parses YAML or JSON and validates everything that can be checked without a
// connection; the copy engine checks the rest (columns that exist, types that match) at Prepare.
//
// The package is pure (no I/O besides Load) so workflow code may use it for planning.
package spec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
}

// Source is a database rows are read from. Passwords never appear here: CredentialsRef names
// a vault secret whose Password completes the DSN inside the activity.
type Source struct {
	Driver         string `json:"driver" yaml:"driver"` // sqlite | postgres
	Path           string `json:"path,omitempty" yaml:"path"`
	DSN            string `json:"dsn,omitempty" yaml:"dsn"`
	CredentialsRef string `json:"credentials_ref,omitempty" yaml:"credentials_ref"`
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
}

// Entity is one table's migration (seed 001 LegacyEntityMapping).
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
}

// Key is the entity's primary key: the legacy source column and the target column.
type Key struct {
	Source string `json:"source" yaml:"source"`
	Target string `json:"target,omitempty" yaml:"target"` // default "id"
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

// SchemaOp is a schema change operation on the target (seed 001 SchemaChangeOperation).
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

// NamespaceUUID is the UUIDv5 namespace of the spec's row ids.
func (s *Spec) NamespaceUUID() uuid.UUID {
	ns, err := uuid.Parse(s.Namespace)
	if err != nil {
		return uuid.NewSHA1(uuid.NameSpaceURL, []byte("cutover:spec:"+s.Name))
	}
	return ns
}

// RowUUID is the UUIDv5 a legacy row becomes: UUIDv5(namespace, table + "/" + id).
func RowUUID(ns uuid.UUID, sourceTable, id string) uuid.UUID {
	return uuid.NewSHA1(ns, []byte(sourceTable+"/"+id))
}

// KeyUUID is the UUID a legacy id of this entity becomes (see Key.UUID).
func (e *Entity) KeyUUID(ns uuid.UUID, id string) uuid.UUID {
	if e.Key.UUID == UUIDOrdered {
		if n, err := strconv.ParseUint(id, 10, 64); err == nil && n < 1<<62 {
			return OrderedUUID(ns, e.SourceTable, n)
		}
	}
	return RowUUID(ns, e.SourceTable, id)
}

// OrderedUUID is a version 8 UUID: 6 bytes of UUIDv5(namespace, table) then the id in the
// last 62 bits, so one table's UUIDs sort like its ids.
func OrderedUUID(ns uuid.UUID, sourceTable string, id uint64) uuid.UUID {
	prefix := uuid.NewSHA1(ns, []byte(sourceTable))
	var u uuid.UUID
	copy(u[:6], prefix[:6])
	u[6] = 0x80 // version 8
	binary.BigEndian.PutUint64(u[8:], id)
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant; ids are below 2^62
	return u
}

// Error collects every problem of a spec, so an operator fixes them in one go.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return fmt.Sprintf("invalid migration spec (%d problem(s)):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// ErrCycle is wrapped by the error for cyclic dependencies.
var ErrCycle = errors.New("dependency cycle")

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// CheckIdent reports whether name is acceptable as a table or column name. Names are always
// quoted in generated SQL as well; this keeps specs readable and errors early.
func CheckIdent(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > 63:
		return fmt.Errorf("name %q is longer than PostgreSQL's 63 bytes", name)
	case !identRE.MatchString(name):
		return fmt.Errorf("name %q: want letters, digits, _ or $, not starting with a digit", name)
	}
	return nil
}

// QuoteIdent quotes an identifier for PostgreSQL and SQLite.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// QuoteQualified quotes schema.name.
func QuoteQualified(schema, name string) string {
	return QuoteIdent(schema) + "." + QuoteIdent(name)
}

// Validate checks everything that needs no connection and returns an *Error listing every
// problem, or nil.
func (s *Spec) Validate() error {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	ident := func(where, name string) {
		if err := CheckIdent(name); err != nil {
			add("%s: %v", where, err)
		}
	}
	if s.Name == "" {
		add("name is required")
	}
	if _, err := uuid.Parse(s.Namespace); s.Namespace != "" && err != nil {
		add("namespace %q is not a UUID", s.Namespace)
	}
	if len(s.Sources) == 0 {
		add("sources: at least one source is required")
	}
	srcNames := make([]string, 0, len(s.Sources))
	for name := range s.Sources {
		srcNames = append(srcNames, name)
	}
	sort.Strings(srcNames)
	for _, name := range srcNames {
		src := s.Sources[name]
		switch src.Driver {
		case "sqlite":
			if src.Path == "" {
				add("source %q: sqlite needs path", name)
			}
		case "postgres":
			if src.DSN == "" {
				add("source %q: postgres needs dsn", name)
			} else if strings.Contains(src.DSN, "password") || dsnHasPassword(src.DSN) {
				add("source %q: dsn must not carry a password; use credentials_ref", name)
			}
		default:
			add("source %q: driver %q: want sqlite or postgres", name, src.Driver)
		}
	}
	if dsnHasPassword(s.Target.DSN) || strings.Contains(s.Target.DSN, "password=") {
		add("target: dsn must not carry a password; use credentials_ref")
	}
	ident("target.schema", s.Target.Schema)
	ident("target.ledger_schema", s.Target.LedgerSchema)
	if s.Target.Schema == s.Target.LedgerSchema {
		add("target: schema and ledger_schema must differ (the ledger's tables would mix with yours)")
	}
	if s.BatchSize < 1 || s.BatchSize > MaxBatchSize {
		add("batch_size %d: want 1..%d", s.BatchSize, MaxBatchSize)
	}
	if len(s.Entities) == 0 {
		add("entities: at least one entity is required")
	}

	names := map[string]bool{}
	targets := map[string]string{}
	for i := range s.Entities {
		e := &s.Entities[i]
		where := fmt.Sprintf("entity %q", e.Name)
		if e.Name == "" {
			where = fmt.Sprintf("entity #%d", i+1)
			add("%s: name is required", where)
		} else if names[e.Name] {
			add("%s: defined twice", where)
		}
		names[e.Name] = true
		if _, ok := s.Sources[e.Source]; !ok {
			add("%s: source %q is not one of sources", where, e.Source)
		}
		ident(where+" source_table", e.SourceTable)
		ident(where+" target_table", e.TargetTable)
		if prev, dup := targets[e.TargetTable]; dup && e.TargetTable != "" {
			add("%s: target_table %q already written by entity %q", where, e.TargetTable, prev)
		}
		targets[e.TargetTable] = e.Name
		if e.BatchSize < 1 || e.BatchSize > MaxBatchSize {
			add("%s: batch_size %d: want 1..%d", where, e.BatchSize, MaxBatchSize)
		}
		ident(where+" key.source", e.Key.Source)
		ident(where+" key.target", e.Key.Target)
		// "" is v5 too: specs recorded in running workflows' inputs predate the field.
		if e.Key.UUID != "" && e.Key.UUID != UUIDv5 && e.Key.UUID != UUIDOrdered {
			add("%s: key.uuid %q: want v5 or ordered", where, e.Key.UUID)
		}
		switch e.Key.Mode {
		case KeyModeUUID:
			if e.Key.Type != "" && e.Key.Type != "uuid" {
				add("%s: key.type %q: a uuid-mode key is uuid", where, e.Key.Type)
			}
		case KeyModeKeep:
			if !KnownType(e.Key.Type) {
				add("%s: key.type %q is not a supported type (%s)", where, e.Key.Type, strings.Join(Types(), ", "))
			}
		default:
			add("%s: key.mode %q: want uuid or keep", where, e.Key.Mode)
		}
		s.validateColumns(e, where, add, ident)
		if e.Incremental != nil {
			ident(where+" incremental.column", e.Incremental.Column)
		}
		tcols := e.targetColumnTypes()
		if e.Partition != nil {
			t, ok := tcols[e.Partition.Column]
			if !ok {
				add("%s: partition column %q is not a target column", where, e.Partition.Column)
			} else if t != "timestamptz" && t != "timestamp" && t != "date" {
				add("%s: partition column %q is %s; want a timestamp or date", where, e.Partition.Column, t)
			}
			if e.Partition.Interval != "month" {
				add("%s: partition interval %q: only month is supported", where, e.Partition.Interval)
			}
		}
		for _, c := range e.UniqueAcrossPartitions {
			if _, ok := tcols[c]; !ok {
				add("%s: unique_across_partitions column %q is not a target column", where, c)
			}
			if e.Partition == nil {
				add("%s: unique_across_partitions needs a partitioned table (use unique: true otherwise)", where)
			}
		}
		for j, r := range e.Validation {
			if err := r.check(tcols); err != nil {
				add("%s: validation rule #%d: %v", where, j+1, err)
			}
		}
		for j, ix := range e.Indexes {
			if err := ix.check(tcols); err != nil {
				add("%s: index #%d: %v", where, j+1, err)
			}
			if ix.Name != "" {
				ident(fmt.Sprintf("%s index #%d name", where, j+1), ix.Name)
			}
		}
		if s.Target.CreateTables {
			for _, c := range e.Columns {
				if !c.Drop && c.Type == "" {
					add("%s: column %q needs a type to create the target table", where, c.Target)
				}
			}
		}
	}
	for i := range s.Entities {
		e := &s.Entities[i]
		for _, c := range e.Columns {
			if c.References == "" {
				continue
			}
			parent, ok := s.Entity(c.References)
			if !ok {
				add("entity %q: column %q references unknown entity %q", e.Name, c.Target, c.References)
				continue
			}
			if parent.Key.Mode == KeyModeUUID && c.Type != "uuid" {
				add("entity %q: column %q references %q, whose keys are uuid; type %q", e.Name, c.Target, parent.Name, c.Type)
			}
		}
		for _, d := range e.DependsOn {
			if _, ok := s.Entity(d); !ok {
				add("entity %q: depends_on unknown entity %q", e.Name, d)
			} else if d == e.Name {
				add("entity %q: depends on itself", e.Name)
			}
		}
	}
	if _, err := s.Order(); err != nil && len(p) == 0 {
		add("%v", err)
	}
	opNames := map[string]bool{}
	for i, op := range s.SchemaOps {
		where := fmt.Sprintf("schema_ops[%d] %q", i, op.Name)
		if op.Name == "" {
			add("schema_ops[%d]: name is required", i)
		} else if opNames[op.Name] {
			add("%s: name used twice", where)
		}
		opNames[op.Name] = true
		ident(where+" table", op.Table)
		switch op.Type {
		case "add_column", "modify_column":
			ident(where+" column", op.Column)
			if !KnownType(op.ColType) {
				add("%s: column_type %q is not a supported type (%s)", where, op.ColType, strings.Join(Types(), ", "))
			}
		case "drop_column":
			ident(where+" column", op.Column)
		case "create_backup":
			if op.Column != "" {
				add("%s: create_backup takes no column", where)
			}
		default:
			add("%s: type %q: want add_column, drop_column, modify_column or create_backup", where, op.Type)
		}
		if op.Risk != "" && !slices.Contains([]string{"low", "medium", "high", "critical"}, op.Risk) {
			add("%s: risk %q: want low, medium, high or critical", where, op.Risk)
		}
		if op.After != "" {
			if _, ok := s.Entity(op.After); !ok {
				add("%s: after unknown entity %q", where, op.After)
			}
		}
	}
	// PostgreSQL text (and jsonb) cannot hold a NUL byte: a name, rule value or constant with
	// one would pass here and fail at the first ledger write, retried as if transient.
	nulStrings(reflect.ValueOf(s).Elem(), "", func(where string) { add("%s: contains a NUL byte", where) })
	if len(p) > 0 {
		return &Error{Problems: p}
	}
	return nil
}

// nulStrings calls bad with the YAML path of every string under v holding a NUL byte.
func nulStrings(v reflect.Value, where string, bad func(string)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			nulStrings(v.Elem(), where, bad)
		}
	case reflect.String:
		if strings.IndexByte(v.String(), 0) >= 0 {
			bad(where)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if where != "" {
				name = where + "." + name
			}
			nulStrings(v.Field(i), name, bad)
		}
	case reflect.Slice:
		for i := range v.Len() {
			nulStrings(v.Index(i), fmt.Sprintf("%s[%d]", where, i), bad)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			nulStrings(k, where+" key "+strconv.Quote(k.String()), bad)
			nulStrings(v.MapIndex(k), where+"."+strconv.Quote(k.String()), bad)
		}
	}
}

func dsnHasPassword(dsn string) bool {
	// postgres://user:pass@host — a colon in the userinfo part.
	rest, ok := strings.CutPrefix(dsn, "postgres://")
	if !ok {
		rest, ok = strings.CutPrefix(dsn, "postgresql://")
	}
	if !ok {
		return false
	}
	at := strings.IndexByte(rest, '@')
	return at > 0 && strings.Contains(rest[:at], ":")
}

func (s *Spec) validateColumns(e *Entity, where string, add func(string, ...any), ident func(string, string)) {
	seen := map[string]bool{e.Key.Target: true}
	if e.Key.Mode == KeyModeKeep && e.Key.Source == "" {
		add("%s: key.source is required", where)
	}
	for j, c := range e.Columns {
		cw := fmt.Sprintf("%s column #%d (%s)", where, j+1, orStr(c.Target, c.Source))
		n := 0
		if c.Source != "" {
			n++
			ident(cw+" source", c.Source)
		}
		if c.Constant != nil {
			n++
		}
		if c.Expr != "" {
			n++
			ex, err := ParseExpr(c.Expr)
			if err != nil {
				add("%s: expr: %v", cw, err)
			} else {
				for _, col := range ex.Columns() {
					ident(cw+" expr column", col)
				}
			}
		}
		if c.Drop {
			if c.Source == "" || n != 1 {
				add("%s: drop names exactly one source column and nothing else", cw)
			}
			if c.Target != "" {
				add("%s: a dropped column has no target", cw)
			}
			continue
		}
		if n != 1 {
			add("%s: give exactly one of source, constant, expr", cw)
		}
		ident(cw+" target", c.Target)
		if seen[c.Target] {
			add("%s: target column %q written twice", cw, c.Target)
		}
		seen[c.Target] = true
		if c.Type != "" && !KnownType(c.Type) {
			add("%s: type %q is not a supported type (%s)", cw, c.Type, strings.Join(Types(), ", "))
		}
		if c.Default != nil && c.Constant != nil {
			add("%s: default and constant exclude each other", cw)
		}
		if c.References != "" && c.Source == "" {
			add("%s: references needs a source column holding the legacy id", cw)
		}
		if c.References != "" && c.References == e.Name {
			add("%s: self-references are not supported (load order inside one table is not guaranteed)", cw)
		}
	}
}

func orStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// targetColumnTypes maps every target column (key included) to its declared type ("" unknown).
func (e *Entity) targetColumnTypes() map[string]string {
	m := map[string]string{}
	if e.Key.Mode == KeyModeUUID {
		m[e.Key.Target] = "uuid"
	} else {
		m[e.Key.Target] = e.Key.Type
	}
	for _, c := range e.Columns {
		if !c.Drop {
			m[c.Target] = c.Type
		}
	}
	return m
}

// Dependencies returns each entity's prerequisites: the entities its columns reference plus
// its explicit depends_on, sorted and without duplicates.
func (s *Spec) Dependencies() map[string][]string {
	out := map[string][]string{}
	for _, e := range s.Entities {
		set := map[string]bool{}
		for _, c := range e.Columns {
			if c.References != "" && c.References != e.Name {
				set[c.References] = true
			}
		}
		for _, d := range e.DependsOn {
			if d != e.Name {
				set[d] = true
			}
		}
		deps := make([]string, 0, len(set))
		for d := range set {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		out[e.Name] = deps
	}
	return out
}

// Order returns the entities in a dependency order (parents first; ties in spec order), or an
// error wrapping ErrCycle that names the cycle.
func (s *Spec) Order() ([]string, error) {
	names := make([]string, len(s.Entities))
	for i, e := range s.Entities {
		names[i] = e.Name
	}
	return TopoOrder(names, s.Dependencies())
}

// TopoOrder orders names so each comes after its deps (ties keep the given order). Unknown
// dependencies are ignored here (Validate reports them).
func TopoOrder(names []string, deps map[string][]string) ([]string, error) {
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	done := map[string]bool{}
	var out []string
	for len(out) < len(names) {
		progressed := false
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			for _, d := range deps[n] {
				if known[d] && !done[d] {
					ready = false
					break
				}
			}
			if ready {
				done[n] = true
				out = append(out, n)
				progressed = true
			}
		}
		if !progressed {
			return nil, fmt.Errorf("%w: %s", ErrCycle, strings.Join(findCycle(names, deps, done), " → "))
		}
	}
	return out, nil
}

// findCycle walks unfinished nodes until one repeats and returns that loop.
func findCycle(names []string, deps map[string][]string, done map[string]bool) []string {
	var start string
	for _, n := range names {
		if !done[n] {
			start = n
			break
		}
	}
	pos := map[string]int{}
	var path []string
	cur := start
	for {
		if i, ok := pos[cur]; ok {
			return append(path[i:], cur)
		}
		pos[cur] = len(path)
		path = append(path, cur)
		next := ""
		for _, d := range deps[cur] {
			if !done[d] && slices.Contains(names, d) {
				next = d
				break
			}
		}
		if next == "" {
			return path
		}
		cur = next
	}
}

var ruleOps = []string{"not_null", "eq", "ne", "gt", "ge", "lt", "le", "in", "matches", "max_length"}

func (r Rule) check(cols map[string]string) error {
	if r.Severity != "" && r.Severity != "error" && r.Severity != "warning" {
		return fmt.Errorf("severity %q: want error or warning", r.Severity)
	}
	if _, ok := cols[r.Column]; !ok {
		return fmt.Errorf("column %q is not a target column", r.Column)
	}
	switch r.Op {
	case "not_null":
		if r.Value != nil || len(r.Values) > 0 {
			return errors.New("not_null takes no value")
		}
	case "in":
		if len(r.Values) == 0 {
			return errors.New("in needs values")
		}
	case "eq", "ne", "gt", "ge", "lt", "le", "matches", "max_length":
		if r.Value == nil {
			return fmt.Errorf("%s needs a value", r.Op)
		}
		if r.Op == "matches" {
			if _, err := regexp.Compile(*r.Value); err != nil {
				return fmt.Errorf("matches: %v", err)
			}
		}
	default:
		return fmt.Errorf("op %q: want one of %s", r.Op, strings.Join(ruleOps, ", "))
	}
	return nil
}

// Label names a rule in reports.
func (r Rule) Label() string {
	if r.Name != "" {
		return r.Name
	}
	v := ""
	if r.Value != nil {
		v = " " + *r.Value
	} else if len(r.Values) > 0 {
		v = " [" + strings.Join(r.Values, ",") + "]"
	}
	return r.Column + " " + r.Op + v
}

func (ix Index) check(cols map[string]string) error {
	if ix.FullText != nil {
		if len(ix.Columns) > 0 {
			return errors.New("full_text indexes list their columns under full_text")
		}
		if len(ix.FullText.Columns) == 0 {
			return errors.New("full_text needs columns")
		}
		if err := CheckIdent(ix.FullText.Config); err != nil {
			return fmt.Errorf("full_text config: %v", err)
		}
		for _, c := range ix.FullText.Columns {
			if _, ok := cols[c]; !ok {
				return fmt.Errorf("column %q is not a target column", c)
			}
		}
		return nil
	}
	if len(ix.Columns) == 0 {
		return errors.New("columns required")
	}
	for _, c := range ix.Columns {
		if _, ok := cols[c]; !ok {
			return fmt.Errorf("column %q is not a target column", c)
		}
	}
	if ix.Where != nil {
		return ix.Where.check(cols)
	}
	return nil
}
