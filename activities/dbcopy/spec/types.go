package spec

import (
	"sort"
	"strings"
)

// typeAliases maps accepted spellings to the canonical PostgreSQL type the engine casts to.
// Only these types exist for a spec: a type name is never pasted into SQL unchecked.
var typeAliases = map[string]string{
	"text": "text", "varchar": "text", "character varying": "text", "string": "text",
	"smallint": "smallint", "int2": "smallint",
	"integer": "integer", "int": "integer", "int4": "integer",
	"bigint": "bigint", "int8": "bigint",
	"real": "real", "float4": "real",
	"double precision": "double precision", "double": "double precision", "float8": "double precision", "float": "double precision",
	"numeric": "numeric", "decimal": "numeric",
	"boolean": "boolean", "bool": "boolean",
	"jsonb": "jsonb", "json": "json",
	"timestamptz": "timestamptz", "timestamp with time zone": "timestamptz",
	"timestamp": "timestamp", "timestamp without time zone": "timestamp",
	"date":  "date",
	"uuid":  "uuid",
	"bytea": "bytea", "blob": "bytea",
}

// NormalizeType returns the canonical spelling of a supported type, or the input lower-cased
// (which KnownType then refuses).
func NormalizeType(t string) string {
	k := strings.Join(strings.Fields(strings.ToLower(t)), " ")
	if c, ok := typeAliases[k]; ok {
		return c
	}
	return k
}

// KnownType reports whether t (canonical) is a type the engine can cast to.
func KnownType(t string) bool {
	c, ok := typeAliases[t]
	return ok && c == t
}

// Types lists the canonical types.
func Types() []string {
	set := map[string]bool{}
	for _, c := range typeAliases {
		set[c] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
