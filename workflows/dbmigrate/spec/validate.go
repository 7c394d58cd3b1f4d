package spec

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/cutover/cutover/internal/model"
)

// Error collects every problem of a spec, so an operator fixes them in one go.
type Error struct{ Problems []string }

// Validate checks everything that needs no connection and returns an *Error listing every
// problem, or nil.
func (s *Spec) Validate() error {
	var p problems
	s.validateTop(&p)
	s.validateSources(&p)
	s.validateTarget(&p)
	names := map[string]bool{}
	targets := map[string]string{}
	read := map[[2]string]string{}
	for i := range s.Entities {
		s.validateEntity(i, names, targets, &p)
		// One mapping per source row and migration (migration_mappings: table + source id).
		e := &s.Entities[i]
		k := [2]string{e.Source, e.SourceTable}
		if prev, dup := read[k]; dup && e.SourceTable != "" {
			p.add("entity %q: source_table %q is already read by entity %q (a source row maps to one target row "+
				"per migration)", e.Name, e.SourceTable, prev)
		} else {
			read[k] = e.Name
		}
	}
	s.validateLinks(&p)
	if _, err := s.Order(); err != nil && len(p.list) == 0 {
		p.add("%v", err)
	}
	s.validateSchemaOps(&p)
	s.validateCompleteness(&p)
	// PostgreSQL text (and jsonb) cannot hold a NUL byte: a name, rule value or constant with
	// one would pass here and fail at the first ledger write, retried as if transient.
	nulStrings(reflect.ValueOf(s).Elem(), "", func(where string) { p.add("%s: contains a NUL byte", where) })
	if len(p.list) > 0 {
		return &Error{Problems: p.list}
	}
	return nil
}

// problems collects what Validate finds, in the order found.
type problems struct{ list []string }

func (p *problems) add(format string, a ...any) { p.list = append(p.list, fmt.Sprintf(format, a...)) }

// ident adds a problem when name is not an acceptable identifier.
func (p *problems) ident(where, name string) {
	if err := CheckIdent(name); err != nil {
		p.add("%s: %v", where, err)
	}
}

// validateTop checks the spec's name and namespace, and that there are sources.
func (s *Spec) validateTop(p *problems) {
	if s.Name == "" {
		p.add("name is required")
	}
	if _, err := uuid.Parse(s.Namespace); s.Namespace != "" && err != nil {
		p.add("namespace %q is not a UUID", s.Namespace)
	}
	if len(s.Sources) == 0 {
		p.add("sources: at least one source is required")
	}
}

// validateSources checks each source's driver and that no DSN carries a password.
func (s *Spec) validateSources(p *problems) {
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
				p.add("source %q: sqlite needs path", name)
			}
		case "postgres":
			if src.DSN == "" {
				p.add("source %q: postgres needs dsn", name)
			} else if strings.Contains(src.DSN, "password") || dsnHasPassword(src.DSN) {
				p.add("source %q: dsn must not carry a password; use credentials_ref", name)
			}
			if src.CredentialsRef != "" && !model.IsCredentialsRef(src.CredentialsRef) {
				p.add("source %q: credentials_ref %s", name, model.NotACredentialsRef)
			}
		default:
			p.add("source %q: driver %q: want sqlite or postgres", name, src.Driver)
		}
		if s.Target.ReverseFlow && src.Driver != "sqlite" {
			p.add("source %q: target.reverse_flow writes back into SQLite sources only", name)
		}
		switch c := src.Capture; {
		case c == "" || c == CaptureKeyCursor:
		case c == CaptureTriggers && src.Driver == "sqlite", c == CaptureLogical && src.Driver == "postgres":
		default:
			p.add("source %q: capture %q: want %s or %s for a %s source", name, c, Source{Driver: src.Driver}.CaptureMode(),
				CaptureKeyCursor, src.Driver)
		}
	}
}

// validateTarget checks the target (no password, distinct schemas), then the default batch size
// and that there are entities.
func (s *Spec) validateTarget(p *problems) {
	if dsnHasPassword(s.Target.DSN) || strings.Contains(s.Target.DSN, "password=") {
		p.add("target: dsn must not carry a password; use credentials_ref")
	}
	if ref := s.Target.CredentialsRef; ref != "" && !model.IsCredentialsRef(ref) {
		p.add("target: credentials_ref %s", model.NotACredentialsRef)
	}
	p.ident("target.schema", s.Target.Schema)
	p.ident("target.ledger_schema", s.Target.LedgerSchema)
	if s.Target.Schema == s.Target.LedgerSchema {
		p.add("target: schema and ledger_schema must differ (the ledger's tables would mix with yours)")
	}
	if s.BatchSize < 1 || s.BatchSize > MaxBatchSize {
		p.add("batch_size %d: want 1..%d", s.BatchSize, MaxBatchSize)
	}
	if len(s.Entities) == 0 {
		p.add("entities: at least one entity is required")
	}
}

// validateEntity checks entity i on its own; names and targets carry the entity names and
// target tables seen so far (a second use is a problem).
func (s *Spec) validateEntity(i int, names map[string]bool, targets map[string]string, p *problems) {
	e := &s.Entities[i]
	where := fmt.Sprintf("entity %q", e.Name)
	if e.Name == "" {
		where = fmt.Sprintf("entity #%d", i+1)
		p.add("%s: name is required", where)
	} else if names[e.Name] {
		p.add("%s: defined twice", where)
	}
	names[e.Name] = true
	if _, ok := s.Sources[e.Source]; !ok {
		p.add("%s: source %q is not one of sources", where, e.Source)
	}
	p.ident(where+" source_table", e.SourceTable)
	p.ident(where+" target_table", e.TargetTable)
	if prev, dup := targets[e.TargetTable]; dup && e.TargetTable != "" {
		p.add("%s: target_table %q already written by entity %q", where, e.TargetTable, prev)
	}
	targets[e.TargetTable] = e.Name
	if e.BatchSize < 1 || e.BatchSize > MaxBatchSize {
		p.add("%s: batch_size %d: want 1..%d", where, e.BatchSize, MaxBatchSize)
	}
	validateKey(e, where, p)
	s.validateColumns(e, where, p)
	if e.Incremental != nil {
		p.ident(where+" incremental.column", e.Incremental.Column)
	}
	tcols := e.targetColumnTypes()
	validatePartition(e, where, tcols, p)
	validateRulesAndIndexes(e, where, tcols, p)
	validateShape(e, where, tcols, p)
	if s.Target.CreateTables {
		for _, c := range e.Columns {
			if !c.Drop && c.Type == "" {
				p.add("%s: column %q needs a type to create the target table", where, c.Target)
			}
		}
	}
}

// validateKey checks the entity's key: its columns, UUID kind and mode.
func validateKey(e *Entity, where string, p *problems) {
	switch {
	case e.Key.Composite() && e.Key.Source != "":
		p.add("%s: key: give source (one column) or columns (a composite key), not both", where)
	case e.Key.Composite():
		if len(e.Key.Columns) < 2 {
			p.add("%s: key.columns lists %d column; a one-column key is key.source", where, len(e.Key.Columns))
		}
		seen := map[string]bool{}
		for i, c := range e.Key.Columns {
			p.ident(fmt.Sprintf("%s key.columns[%d]", where, i), c)
			if seen[c] {
				p.add("%s: key.columns names %q twice", where, c)
			}
			seen[c] = true
		}
		if e.Key.Mode == KeyModeKeep {
			p.add("%s: a composite key is stored as the UUID of its values (mode uuid); keep its columns "+
				"with column rules and a unique index over them", where)
		}
	default:
		p.ident(where+" key.source", e.Key.Source)
	}
	p.ident(where+" key.target", e.Key.Target)
	// "" is v5 too: specs recorded in running workflows' inputs predate the field.
	if e.Key.UUID != "" && e.Key.UUID != UUIDv5 && e.Key.UUID != UUIDOrdered {
		p.add("%s: key.uuid %q: want v5 or ordered", where, e.Key.UUID)
	}
	switch e.Key.Mode {
	case KeyModeUUID:
		if e.Key.Type != "" && e.Key.Type != "uuid" {
			p.add("%s: key.type %q: a uuid-mode key is uuid", where, e.Key.Type)
		}
	case KeyModeKeep:
		if !KnownType(e.Key.Type) {
			p.add("%s: key.type %q is not a supported type (%s)", where, e.Key.Type, strings.Join(Types(), ", "))
		}
	default:
		p.add("%s: key.mode %q: want uuid or keep", where, e.Key.Mode)
	}
}

// validatePartition checks the partition column and interval, and the columns kept unique
// across partitions; tcols are the entity's target column types.
func validatePartition(e *Entity, where string, tcols map[string]string, p *problems) {
	if e.Partition != nil {
		t, ok := tcols[e.Partition.Column]
		if !ok {
			p.add("%s: partition column %q is not a target column", where, e.Partition.Column)
		} else if b := BaseType(t); b != "timestamptz" && b != "timestamp" && b != "date" {
			p.add("%s: partition column %q is %s; want a timestamp or date", where, e.Partition.Column, t)
		}
		if e.Partition.Interval != "month" {
			p.add("%s: partition interval %q: only month is supported", where, e.Partition.Interval)
		}
	}
	for _, c := range e.UniqueAcrossPartitions {
		if _, ok := tcols[c]; !ok {
			p.add("%s: unique_across_partitions column %q is not a target column", where, c)
		}
		if e.Partition == nil {
			p.add("%s: unique_across_partitions needs a partitioned table (use unique: true otherwise)", where)
		}
	}
}

// validateRulesAndIndexes checks the entity's validation rules and indexes against its target
// columns.
func validateRulesAndIndexes(e *Entity, where string, tcols map[string]string, p *problems) {
	for j, r := range e.Validation {
		if err := r.check(tcols); err != nil {
			p.add("%s: validation rule #%d: %v", where, j+1, err)
		}
	}
	for j, ix := range e.Indexes {
		if err := ix.check(tcols); err != nil {
			p.add("%s: index #%d: %v", where, j+1, err)
		}
		if ix.Name != "" {
			p.ident(fmt.Sprintf("%s index #%d name", where, j+1), ix.Name)
		}
	}
}

// validateLinks checks what entities say about each other: references and depends_on.
func (s *Spec) validateLinks(p *problems) {
	for i := range s.Entities {
		e := &s.Entities[i]
		for _, c := range e.Columns {
			if c.References == "" {
				continue
			}
			parent, ok := s.Entity(c.References)
			if !ok {
				p.add("entity %q: column %q references unknown entity %q", e.Name, c.Target, c.References)
				continue
			}
			if parent.Key.Composite() {
				p.add("entity %q: column %q references %q, whose key is composite (one column cannot hold it)",
					e.Name, c.Target, parent.Name)
			}
			if parent.Key.Mode == KeyModeUUID && c.Type != "uuid" {
				p.add("entity %q: column %q references %q, whose keys are uuid; type %q",
					e.Name, c.Target, parent.Name, c.Type)
			}
		}
		for _, d := range e.DependsOn {
			if _, ok := s.Entity(d); !ok {
				p.add("entity %q: depends_on unknown entity %q", e.Name, d)
			} else if d == e.Name {
				p.add("entity %q: depends on itself", e.Name)
			}
		}
	}
}

// validateSchemaOps checks the schema change operations.
func (s *Spec) validateSchemaOps(p *problems) {
	opNames := map[string]bool{}
	for i, op := range s.SchemaOps {
		where := fmt.Sprintf("schema_ops[%d] %q", i, op.Name)
		if op.Name == "" {
			p.add("schema_ops[%d]: name is required", i)
		} else if opNames[op.Name] {
			p.add("%s: name used twice", where)
		}
		opNames[op.Name] = true
		p.ident(where+" table", op.Table)
		switch op.Type {
		case "add_column", "modify_column":
			p.ident(where+" column", op.Column)
			if !KnownType(op.ColType) {
				p.add("%s: column_type %q is not a supported type (%s)", where, op.ColType, strings.Join(Types(), ", "))
			}
		case "drop_column":
			p.ident(where+" column", op.Column)
		case "create_backup":
			if op.Column != "" {
				p.add("%s: create_backup takes no column", where)
			}
		default:
			p.add("%s: type %q: want add_column, drop_column, modify_column or create_backup", where, op.Type)
		}
		if op.Risk != "" && !slices.Contains([]string{"low", "medium", "high", "critical"}, op.Risk) {
			p.add("%s: risk %q: want low, medium, high or critical", where, op.Risk)
		}
		if op.After != "" {
			if _, ok := s.Entity(op.After); !ok {
				p.add("%s: after unknown entity %q", where, op.After)
			}
		}
	}
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

func (s *Spec) validateColumns(e *Entity, where string, p *problems) {
	seen := map[string]bool{e.Key.Target: true}
	if e.Key.Mode == KeyModeKeep && e.Key.Source == "" {
		p.add("%s: key.source is required", where)
	}
	for j, c := range e.Columns {
		cw := fmt.Sprintf("%s column #%d (%s)", where, j+1, orStr(c.Target, c.Source))
		n := 0
		if c.Source != "" {
			n++
			p.ident(cw+" source", c.Source)
		}
		if c.Constant != nil {
			n++
		}
		if c.Expr != "" {
			n++
			ex, err := ParseExpr(c.Expr)
			if err != nil {
				p.add("%s: expr: %v", cw, err)
			} else {
				for _, col := range ex.Columns() {
					p.ident(cw+" expr column", col)
				}
			}
		}
		if c.Drop {
			if c.Source == "" || n != 1 {
				p.add("%s: drop names exactly one source column and nothing else", cw)
			}
			if c.Target != "" {
				p.add("%s: a dropped column has no target", cw)
			}
			continue
		}
		if n != 1 {
			p.add("%s: give exactly one of source, constant, expr", cw)
		}
		p.ident(cw+" target", c.Target)
		if seen[c.Target] {
			p.add("%s: target column %q written twice", cw, c.Target)
		}
		seen[c.Target] = true
		if c.Type != "" && !KnownType(c.Type) {
			p.add("%s: type %q is not a supported type (%s)", cw, c.Type, strings.Join(Types(), ", "))
		}
		if c.Default != nil && c.Constant != nil {
			p.add("%s: default and constant exclude each other", cw)
		}
		if c.References != "" && c.Source == "" {
			p.add("%s: references needs a source column holding the legacy id", cw)
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
