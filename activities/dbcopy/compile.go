package dbcopy

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/packed"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// entityPlan is an entity compiled against the live schemas: which source columns to read and
// how to build each target value.
type entityPlan struct {
	ent      *spec.Entity
	src      source.Source
	statusID uuid.UUID
	readCols []string      // source columns read; [0:nkey] are the key (keys.go)
	nkey     int           // key columns: 1, or a composite key's count
	keyInts  []bool        // which key columns hold integers
	where    []source.Cond // the row filter (spec where), on every read and count
	keyInt   bool          // a one-column key compares as an integer
	markIdx  int           // index of the incremental column in readCols, -1 for none
	markInt  bool          // the incremental column compares as an integer
	target   string        // quoted schema.table
	cols     []string      // target columns; [0] is the key
	types    []string      // canonical target type per column
	oids     []uint32      // live type OID per column (binary COPY)
	copySQL  string        // COPY of cols into the target, binary
	build    []builder
	keyUUID  func(string) uuid.UUID // ent.KeyUUID(namespace, ·), precomputed
	partIdx  int                    // index in cols of the partition column, -1 for none
	notNull  map[string]bool
	// sequential is set after concurrent writers collided on a unique value.
	sequential atomic.Bool
	// rowBytes is the source bytes a row of the last page read held on average (0: none yet);
	// it bounds the next pages by bytes (pageLimit).
	rowBytes atomic.Int64
}

// builder computes one target column from a source row.
type builder struct {
	column string
	srcIdx int        // >= 0: read this source column
	expr   *spec.Expr // or evaluate this
	konst  *string    // or this constant
	def    *string    // value when the result is NULL
	typ    string
	opts   castOpts
	parent *spec.Entity // references: remap through the parent's key
	// parentUUID is parent.KeyUUID(namespace, ·), precomputed.
	parentUUID func(string) uuid.UUID
}

// planError lists every misfit between an entity and the live schemas.
type planError struct{ problems []string }

func (p *planError) Error() string { return strings.Join(p.problems, "; ") }

// targetColumn is a live column of the target table.
type targetColumn struct {
	typ     string // canonical base type, or the raw format_type when unsupported
	mod     string // the type with its modifiers, as format_type writes it (numeric(12,4))
	typmod  int32  // pg_attribute.atttypmod (-1: none)
	oid     uint32 // what binary COPY encodes for
	notNull bool
	hasDef  bool
}

// castLimits sets what a target column's modifiers bound on o: a numeric's precision and
// scale, a timestamp's fractional digits.
func (tc targetColumn) castLimits(o *castOpts) error {
	if tc.typmod < 0 {
		return nil
	}
	switch tc.typ {
	case "numeric":
		m := tc.typmod - 4
		o.prec = int(m>>16) & 0xffff
		scale := int(m & 0x7ff)
		if scale >= 0x400 {
			return fmt.Errorf("%s: a negative scale is not supported", tc.mod)
		}
		o.scale = scale
	case "timestamp", "timestamptz":
		if tc.typmod < 6 {
			o.tsUnit = time.Duration(math.Pow10(9 - int(tc.typmod)))
		}
	}
	return nil
}

// fits reports whether a spec type (canonical, maybe with modifiers) is the live column's.
func (tc targetColumn) fits(specType string) bool {
	if spec.BaseType(specType) != tc.typ {
		return false
	}
	return specType == tc.typ || spec.NormalizeType(tc.mod) == specType
}

func (e *Engine) targetColumns(ctx context.Context, table string) (map[string]targetColumn, error) {
	rows, err := e.pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod),
		a.atttypmod, a.atttypid, a.attnotnull, a.atthasdef
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, e.spec.Target.Schema, table)
	if err != nil {
		return nil, fmt.Errorf("introspect target %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]targetColumn{}
	for rows.Next() {
		var name, typ string
		var c targetColumn
		if err := rows.Scan(&name, &typ, &c.mod, &c.typmod, &c.oid, &c.notNull, &c.hasDef); err != nil {
			return nil, fmt.Errorf("introspect target %s: %w", table, err)
		}
		c.typ = spec.NormalizeType(typ)
		out[name] = c
	}
	return out, rows.Err()
}

// plan returns the compiled entity, compiling it on first use.
func (e *Engine) plan(ctx context.Context, entity string) (*entityPlan, error) {
	e.mu.Lock()
	p, ok := e.plans[entity]
	e.mu.Unlock()
	if ok {
		return p, nil
	}
	ent, ok := e.spec.Entity(entity)
	if !ok {
		return nil, fmt.Errorf("%w: no entity %q in spec %s", ErrSpec, entity, e.spec.Name)
	}
	p, err := e.compile(ctx, ent)
	if err != nil {
		var pe *planError
		if asPlanError(err, &pe) {
			return nil, fmt.Errorf("%w: entity %s: %w", ErrSpec, entity, err)
		}
		return nil, err
	}
	return p, nil
}

func asPlanError(err error, pe **planError) bool {
	p, ok := err.(*planError)
	if ok {
		*pe = p
	}
	return ok
}

func (e *Engine) compile(ctx context.Context, ent *spec.Entity) (*entityPlan, error) {
	src := e.sources[ent.Source]
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, fmt.Sprintf("entity %s: ", ent.Name)+fmt.Sprintf(format, a...))
	}
	scols, err := src.Columns(ctx, ent.SourceTable)
	if err != nil {
		return nil, &planError{[]string{fmt.Sprintf("entity %s: %v", ent.Name, err)}}
	}
	sdecl := map[string]string{}
	for _, c := range scols {
		sdecl[c.Name] = c.DeclType
	}
	tcols, err := e.targetColumns(ctx, ent.TargetTable)
	if err != nil {
		return nil, err
	}
	if len(tcols) == 0 {
		return nil, &planError{[]string{fmt.Sprintf("entity %s: target table %s.%s does not exist (set target.create_tables or create it)",
			ent.Name, e.spec.Target.Schema, ent.TargetTable)}}
	}
	p := &entityPlan{ent: ent, src: src, statusID: e.EntityStatusID(ent.Name), markIdx: -1, partIdx: -1, keyUUID: ent.KeyUUIDFunc(e.ns),
		target: spec.QuoteQualified(e.spec.Target.Schema, ent.TargetTable), notNull: map[string]bool{}}
	readIdx := map[string]int{}
	read := func(col, why string) int {
		if i, ok := readIdx[col]; ok {
			return i
		}
		if _, ok := sdecl[col]; !ok {
			bad("%s: source column %q does not exist in %s", why, col, ent.SourceTable)
			return -1
		}
		readIdx[col] = len(p.readCols)
		p.readCols = append(p.readCols, col)
		return readIdx[col]
	}
	p.where = whereConds(ent)
	for _, c := range p.where {
		if _, ok := sdecl[c.Column]; !ok {
			bad("where: source column %q does not exist in %s", c.Column, ent.SourceTable)
		}
	}
	for _, k := range ent.Key.SourceColumns() {
		read(k, "key")
		p.keyInts = append(p.keyInts, source.IsIntegerType(sdecl[k]))
	}
	p.nkey = len(ent.Key.SourceColumns())
	p.keyInt = source.IsIntegerType(sdecl[ent.Key.Source])
	keyType := "uuid"
	if ent.Key.Mode == spec.KeyModeKeep {
		keyType = ent.Key.Type
	}
	tc, ok := tcols[ent.Key.Target]
	if !ok {
		bad("key: target column %q does not exist in %s", ent.Key.Target, ent.TargetTable)
	} else if !tc.fits(keyType) {
		bad("key: target column %q is %s, the spec needs %s", ent.Key.Target, tc.mod, keyType)
	}
	p.cols = append(p.cols, ent.Key.Target)
	p.types = append(p.types, spec.BaseType(keyType))
	p.oids = append(p.oids, tc.oid)
	p.build = append(p.build, builder{})
	written := map[string]bool{ent.Key.Target: true}
	for _, c := range ent.Columns {
		if c.Drop {
			read(c.Source, "drop")
			continue
		}
		b := builder{column: c.Target, srcIdx: -1, konst: c.Constant, def: c.Default,
			opts: castOpts{emptyAsNull: c.EmptyAsNull, allowNaN: c.AllowNaN, round: c.Round, layout: new(atomic.Int32)}}
		switch {
		case c.Source != "":
			b.srcIdx = read(c.Source, "column "+c.Target)
		case c.Expr != "":
			b.expr, _ = spec.ParseExpr(c.Expr) // validated with the spec
			for _, col := range b.expr.Columns() {
				read(col, "expr of "+c.Target)
			}
		}
		if c.References != "" {
			b.parent, _ = e.spec.Entity(c.References)
			if b.parent != nil {
				b.parentUUID = b.parent.KeyUUIDFunc(e.ns)
			}
		}
		tc, ok := tcols[c.Target]
		switch {
		case !ok:
			bad("column %q does not exist in target table %s", c.Target, ent.TargetTable)
		case !spec.KnownType(tc.typ):
			bad("target column %q has type %s, which the engine cannot cast to", c.Target, tc.typ)
		case c.Type != "" && !tc.fits(c.Type):
			bad("column %q: the spec casts to %s but the target column is %s", c.Target, c.Type, tc.mod)
		}
		b.typ = spec.BaseType(c.Type)
		if b.typ == "" {
			b.typ = tc.typ
		}
		if err := tc.castLimits(&b.opts); err != nil {
			bad("column %q: %v", c.Target, err)
		}
		if c.Default != nil {
			if _, rerr := convert(*c.Default, b.typ, b.opts); rerr != nil {
				bad("column %q: default %q: %v", c.Target, *c.Default, rerr)
			}
		}
		if c.Constant != nil {
			if _, rerr := convert(*c.Constant, b.typ, b.opts); rerr != nil {
				bad("column %q: constant %q: %v", c.Target, *c.Constant, rerr)
			}
		}
		if tc.notNull {
			p.notNull[c.Target] = true
		}
		written[c.Target] = true
		p.cols = append(p.cols, c.Target)
		p.types = append(p.types, b.typ)
		p.oids = append(p.oids, tc.oid)
		p.build = append(p.build, b)
	}
	for name, tc := range tcols {
		if tc.notNull && !tc.hasDef && !written[name] {
			bad("target column %q is NOT NULL without a default and the spec does not write it", name)
		}
	}
	if ent.Incremental != nil {
		p.markIdx = read(ent.Incremental.Column, "incremental")
		p.markInt = source.IsIntegerType(sdecl[ent.Incremental.Column])
	}
	if ent.Partition != nil {
		for i, c := range p.cols {
			if c == ent.Partition.Column {
				p.partIdx = i
			}
		}
	}
	if len(problems) > 0 {
		return nil, &planError{problems}
	}
	p.copySQL = copyStatement(pgx.Identifier{e.spec.Target.Schema, ent.TargetTable}, p.cols)
	e.mu.Lock()
	e.plans[ent.Name] = p
	e.mu.Unlock()
	return p, nil
}

// prepared is one source row transformed for the target.
type prepared struct {
	src    []any    // source values (for errors); nil once a pipelined batch encoded the row
	srcKey any      // the source key as read, when src is nil
	key    string   // legacy key as text
	uuid   [16]byte // the UUID the legacy key maps to (migration_mappings.destination_id)
	values []any    // target values, aligned with plan.cols (nil once a batch encoded them)
	fks    []fkValue
	part   any // the partition column's value (partitioned targets)
	// changes are the values a transformation changed on the way (counted per column once
	// the row is loaded); nil for most rows.
	changes []colChange
	tuple   []byte // the values as a binary COPY tuple, when a batch encoded them
}

// colChange is one value a transformation changed: the column's index in plan.cols, and how.
type colChange struct {
	col  int32
	kind change
}

type fkValue struct {
	parent *spec.Entity
	value  any    // the parent's target key
	legacy string // the parent's legacy key (a self reference is looked up in the source)
}

// keyText renders a legacy key as the text recorded in mappings, checkpoints and errors. Text
// keys are kept byte for byte: 'A' and 'A ' are two keys.
func keyText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case string:
		return x, true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	default:
		return source.FormatKey(v), true
	}
}

// keyTextIn is keyText carving an integer's text from a (nil: allocated on its own).
func keyTextIn(v any, a *packed.Values) (string, bool) {
	if n, ok := v.(int64); ok && a != nil {
		return a.Decimal(n), true
	}
	return keyText(v)
}

// boxUUID is u as an interface, boxed in a (nil: allocated on its own).
func boxUUID(u [16]byte, a *packed.Values) any {
	if a == nil {
		return u
	}
	return a.UUID(u)
}

// badKey explains why a key's text cannot be recorded (PostgreSQL text holds neither invalid
// UTF-8 nor NUL bytes), or is nil.
func badKey(k string) *rowError {
	switch {
	case !utf8.ValidString(k):
		return &rowError{Type: model.ErrDataValidation, Code: "bad_key", Message: fmt.Sprintf("the key is not valid UTF-8 (%q)", clip(k))}
	case strings.IndexByte(k, 0) >= 0:
		return &rowError{Type: model.ErrDataValidation, Code: "bad_key", Message: fmt.Sprintf("the key holds a NUL byte (%q)", clip(k))}
	}
	return nil
}

// asText renders a value for expressions.
func asText(v any) *string {
	if v == nil {
		return nil
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		s = strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	case time.Time:
		s = x.UTC().Format(time.RFC3339Nano)
	default:
		s = fmt.Sprint(x)
	}
	return &s
}

// transform builds the target row, or the reason it cannot be built.
func (e *Engine) transform(p *entityPlan, row []any) (prepared, *rowError) {
	return e.transformInto(p, row, make([]any, len(p.cols)), nil)
}

// transformInto is transform writing the target values into values (len(p.cols)) and the
// references onto fks (empty; nil: a new slice): a batch carves them from one array.
func (e *Engine) transformInto(p *entityPlan, row []any, values []any, fks []fkValue) (prepared, *rowError) {
	return e.transformIn(p, row, values, fks, nil)
}

// transformIn is transformInto carving the keys' texts, the UUIDs and the times it makes from
// a's arrays (nil: each allocated on its own): a page's rows all live as long as the page.
func (e *Engine) transformIn(p *entityPlan, row []any, values []any, fks []fkValue, a *packed.Values) (prepared, *rowError) {
	out := prepared{src: row, values: values, fks: fks}
	var k string
	if p.nkey > 1 {
		var rerr *rowError
		if k, rerr = compositeKeyText(row[:p.nkey], p.keyInts); rerr != nil {
			rerr.Column = p.keyColumns()
			return out, rerr
		}
	} else {
		var ok bool
		if k, ok = keyTextIn(row[0], a); !ok || k == "" {
			return out, &rowError{Type: model.ErrDataValidation, Code: "null_key", Column: p.ent.Key.Source, Message: "the key is NULL or empty"}
		}
		if rerr := badKey(k); rerr != nil {
			rerr.Column = p.ent.Key.Source
			return out, rerr
		}
	}
	out.key = k
	out.uuid = [16]byte(p.keyUUID(k))
	if p.ent.Key.Mode == spec.KeyModeUUID {
		out.values[0] = boxUUID(out.uuid, a)
	} else {
		v, rerr := convert(row[0], p.types[0], castOpts{})
		if rerr != nil {
			rerr.Column = p.ent.Key.Source
			return out, rerr
		}
		out.values[0] = v
	}
	for i := 1; i < len(p.cols); i++ {
		b := &p.build[i]
		raw, filled := p.sourceRaw(b, row)
		if b.parent != nil {
			if raw == nil {
				continue
			}
			if filled {
				out.changes = append(out.changes, colChange{col: int32(i), kind: defaulted})
			}
			v, pk, rerr := b.parentKeyIn(raw, a)
			if rerr != nil {
				return out, rerr
			}
			out.values[i] = v
			out.fks = append(out.fks, fkValue{parent: b.parent, value: v, legacy: pk})
			continue
		}
		v, ch, rerr := convertChangeIn(raw, b.typ, b.opts, a)
		if rerr != nil {
			rerr.Column = b.column
			return out, rerr
		}
		if filled {
			ch = defaulted
		}
		if ch != unchanged {
			out.changes = append(out.changes, colChange{col: int32(i), kind: ch})
		}
		out.values[i] = v
	}
	if p.partIdx >= 0 {
		out.part = out.values[p.partIdx]
	}
	return out, nil
}

// parentKey is what a reference column of builder b holds for the source value raw (not
// NULL): the parent's target key — the UUID its legacy key maps to, or the key converted to
// the parent's key type — and the parent's legacy key.
func (b *builder) parentKey(raw any) (any, string, *rowError) {
	return b.parentKeyIn(raw, nil)
}

// parentKeyIn is parentKey carving the legacy key's text and the UUID from a (nil: each
// allocated on its own).
func (b *builder) parentKeyIn(raw any, a *packed.Values) (any, string, *rowError) {
	pk, _ := keyTextIn(raw, a)
	if b.parent.Key.Mode == spec.KeyModeUUID {
		return boxUUID([16]byte(b.parentUUID(pk)), a), pk, nil
	}
	v, rerr := convert(raw, b.parent.Key.Type, castOpts{})
	if rerr != nil {
		rerr.Column = b.column
		return nil, pk, rerr
	}
	return v, pk, nil
}

// sourceRaw is what builder b makes of source row row before converting it: its source
// column's value, its expression's or its constant; the default where that is NULL (filled).
func (p *entityPlan) sourceRaw(b *builder, row []any) (raw any, filled bool) {
	switch {
	case b.srcIdx >= 0:
		raw = row[b.srcIdx]
	case b.expr != nil:
		get := func(col string) *string {
			for j, c := range p.readCols {
				if c == col {
					return asText(row[j])
				}
			}
			return nil
		}
		if s := b.expr.Eval(get); s != nil {
			raw = *s
		}
	case b.konst != nil:
		raw = *b.konst
	}
	if raw == nil && b.def != nil {
		return *b.def, true
	}
	return raw, false
}
