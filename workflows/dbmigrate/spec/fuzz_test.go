package spec

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// hostile are names an attacker (or a careless operator) could put in a spec where the engine
// builds SQL: quotes, statement separators, comments, NUL bytes, whitespace, over-long names.
var hostile = []string{
	`x"; DROP TABLE y; --`,
	`x'; DROP TABLE y; --`,
	"x\x00y",
	`"`,
	`a;b`,
	`a b`,
	`a--b`,
	`a/*b*/`,
	"a\nb",
	`$1`,
	`x")`,
	`public.y`,
	`ÿ`,
	strings.Repeat("a", 64),
}

// FuzzParse feeds arbitrary bytes to both ways a spec enters cutover — Parse (the CLI's YAML or
// JSON file) and encoding/json (a workflow input from an SDK client, validated by the
// workflow's planner and the engine without Parse) — and checks that neither panics and that a
// spec either side accepts is safe to build SQL from: every name that reaches SQL is a plain
// identifier, every type is on the allowlist, no string holds a NUL byte (PostgreSQL text
// cannot), and the accepted spec's JSON form (a workflow input) parses back to the same JSON.
// The seed corpus (testdata/fuzz/FuzzParse, plus the f.Add seeds below) runs with every
// `go test`.
func FuzzParse(f *testing.F) {
	f.Add([]byte(chain))
	if b, err := os.ReadFile("../../../examples/mailsystem/spec.yaml"); err == nil {
		f.Add(b)
	}
	for _, h := range hostile {
		q, _ := json.Marshal(h)
		for _, field := range []string{"source_table: office", "target_table: offices", "key: {source: id}",
			"{source: name, type: text}", "name: offices"} {
			var edited string
			switch field {
			case "key: {source: id}":
				edited = "key: {source: " + string(q) + "}"
			case "{source: name, type: text}":
				edited = "{source: name, target: " + string(q) + ", type: text}"
			default:
				k, _, _ := strings.Cut(field, ":")
				edited = k + ": " + string(q)
			}
			f.Add([]byte(strings.Replace(chain, field, edited, 1)))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := Parse(b); err == nil {
			checkAccepted(t, s)
			j, err := s.JSON()
			if err != nil {
				t.Fatalf("accepted spec does not marshal: %v", err)
			}
			s2, err := Parse(j)
			if err != nil {
				t.Fatalf("accepted spec's JSON form is refused: %v\n%s", err, j)
			}
			// Compared as JSON: an empty list and an absent one are the same spec.
			if j2, err := s2.JSON(); err != nil {
				t.Fatalf("err = %v, want nil; JSON round trip changed the spec:\n%s\n%s", err, j, j2)
			} else if string(j2) != string(j) {
				t.Fatalf("string(j2) = %v, want %v (string(j)); JSON round trip changed the spec:\n%s\n%s",
					string(j2), string(j), j, j2)
			}
		} else if err.Error() == "" {
			t.Fatal("refusal without a message")
		}

		// A workflow input: decoded by encoding/json, checked by Validate (the planner), then
		// given defaults and checked again (the engine's Open).
		var s Spec
		if json.Unmarshal(b, &s) != nil {
			return
		}
		if s.Validate() == nil {
			checkAccepted(t, &s)
		}
		s.ApplyDefaults()
		if s.Validate() == nil {
			checkAccepted(t, &s)
			if _, err := s.Order(); err != nil {
				t.Fatalf("valid spec has no order: %v", err)
			}
		}
	})
}

// checkAccepted asserts what the engine relies on when it turns an accepted spec into SQL.
func checkAccepted(t *testing.T, s *Spec) {
	t.Helper()
	for _, n := range sqlNames(s) {
		if err := CheckIdent(n.name); err != nil {
			t.Fatalf("accepted spec has an unsafe SQL name at %s: %v", n.where, err)
		}
	}
	for _, ty := range sqlTypes(s) {
		if !KnownType(ty.name) {
			t.Fatalf("accepted spec has a type off the allowlist at %s: %q", ty.where, ty.name)
		}
	}
	walkStrings(reflect.ValueOf(s), "spec", func(where, v string) {
		if strings.IndexByte(v, 0) >= 0 {
			t.Fatalf("accepted spec has a NUL byte at %s", where)
		}
	})
	for i := range s.Entities {
		for _, c := range s.Entities[i].Columns {
			if c.Expr == "" {
				continue
			}
			if _, err := ParseExpr(c.Expr); err != nil {
				t.Fatalf("accepted spec has an expression that does not parse: %q: %v", c.Expr, err)
			}
		}
	}
}

type named struct{ where, name string }

// sqlNames lists every name of a spec the engine pastes (quoted) into SQL.
func sqlNames(s *Spec) []named {
	var out []named
	add := func(where, name string) { out = append(out, named{where, name}) }
	add("target.schema", s.Target.Schema)
	add("target.ledger_schema", s.Target.LedgerSchema)
	for _, e := range s.Entities {
		w := "entity " + e.Name
		add(w+" source_table", e.SourceTable)
		add(w+" target_table", e.TargetTable)
		add(w+" key.target", e.Key.Target)
		if e.Key.Source != "" {
			add(w+" key.source", e.Key.Source)
		}
		for _, c := range e.Columns {
			if c.Source != "" {
				add(w+" column source", c.Source)
			}
			if !c.Drop {
				add(w+" column target", c.Target)
			}
			if c.Expr != "" {
				if ex, err := ParseExpr(c.Expr); err == nil {
					for _, col := range ex.Columns() {
						add(w+" expr column", col)
					}
				}
			}
		}
		if e.Incremental != nil {
			add(w+" incremental.column", e.Incremental.Column)
		}
		if e.Partition != nil {
			add(w+" partition.column", e.Partition.Column)
		}
		for _, c := range e.UniqueAcrossPartitions {
			add(w+" unique_across_partitions", c)
		}
		for _, r := range e.Validation {
			add(w+" validation column", r.Column)
		}
		for _, ix := range e.Indexes {
			if ix.Name != "" {
				add(w+" index name", ix.Name)
			}
			for _, c := range ix.Columns {
				add(w+" index column", c)
			}
			if ix.Where != nil {
				add(w+" index where column", ix.Where.Column)
			}
			if ix.FullText != nil {
				add(w+" full_text config", ix.FullText.Config)
				for _, c := range ix.FullText.Columns {
					add(w+" full_text column", c)
				}
			}
		}
	}
	for _, op := range s.SchemaOps {
		add("schema_op "+op.Name+" table", op.Table)
		if op.Column != "" {
			add("schema_op "+op.Name+" column", op.Column)
		}
	}
	return out
}

// sqlTypes lists every type name of a spec the engine pastes into SQL.
func sqlTypes(s *Spec) []named {
	var out []named
	for _, e := range s.Entities {
		if e.Key.Mode == KeyModeKeep {
			out = append(out, named{"entity " + e.Name + " key.type", e.Key.Type})
		}
		for _, c := range e.Columns {
			if c.Type != "" && !c.Drop {
				out = append(out, named{"entity " + e.Name + " column " + c.Target + " type", c.Type})
			}
		}
	}
	for _, op := range s.SchemaOps {
		if op.Type == "add_column" || op.Type == "modify_column" {
			out = append(out, named{"schema_op " + op.Name + " column_type", op.ColType})
		}
	}
	return out
}

// walkStrings calls fn for every string reachable from v (fields, slices, maps, pointers).
func walkStrings(v reflect.Value, where string, fn func(where, s string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), where, fn)
		}
	case reflect.String:
		fn(where, v.String())
	case reflect.Struct:
		for i := range v.NumField() {
			walkStrings(v.Field(i), where+"."+v.Type().Field(i).Name, fn)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkStrings(v.Index(i), where+"[]", fn)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walkStrings(it.Key(), where+"{key}", fn)
			walkStrings(it.Value(), where+"{}", fn)
		}
	}
}
