package spec

import (
	"fmt"
	"sort"
	"strconv"
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
// (which KnownType then refuses). Types with modifiers keep them: numeric(12, 4) and
// decimal(12,4) are numeric(12,4), timestamp(3) stays timestamp(3).
func NormalizeType(t string) string {
	k := strings.Join(strings.Fields(strings.ToLower(t)), " ")
	if open := strings.IndexByte(k, '('); open > 0 && strings.HasSuffix(k, ")") {
		base := strings.TrimSpace(k[:open])
		args := strings.ReplaceAll(k[open:], " ", "")
		if c, ok := typeAliases[base]; ok {
			return c + args
		}
		return base + args
	}
	if c, ok := typeAliases[k]; ok {
		return c
	}
	return k
}

// KnownType reports whether t (canonical) is a type the engine can cast to: a base type, or
// numeric(p,s) (1 <= p <= 1000, 0 <= s <= p), numeric(p), or timestamp(p)/timestamptz(p)
// (0 <= p <= 6).
func KnownType(t string) bool {
	base := BaseType(t)
	if c, ok := typeAliases[base]; !ok || c != base {
		return false
	}
	if base == t {
		return true
	}
	_, _, err := TypeParams(t)
	return err == nil
}

// BaseType is t without its modifiers: numeric(12,4) → numeric.
func BaseType(t string) string {
	if open := strings.IndexByte(t, '('); open > 0 {
		return t[:open]
	}
	return t
}

// TypeParams returns a canonical type's modifiers: a numeric's precision and scale (0, 0 when
// unconstrained), a timestamp's fractional digits as p (-1 when unconstrained).
func TypeParams(t string) (p, s int, err error) {
	base := BaseType(t)
	if base == t {
		if base == "timestamp" || base == "timestamptz" {
			return -1, 0, nil
		}
		return 0, 0, nil
	}
	args := strings.Split(strings.TrimSuffix(t[len(base)+1:], ")"), ",")
	nums := make([]int, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil {
			return 0, 0, fmt.Errorf("type %s: modifier %q is not a number", t, a)
		}
		nums[i] = n
	}
	switch base {
	case "numeric":
		if len(nums) > 2 || nums[0] < 1 || nums[0] > 1000 || (len(nums) == 2 && (nums[1] < 0 || nums[1] > nums[0])) {
			return 0, 0, fmt.Errorf("type %s: want numeric(precision 1..1000, scale 0..precision)", t)
		}
		if len(nums) == 2 {
			return nums[0], nums[1], nil
		}
		return nums[0], 0, nil
	case "timestamp", "timestamptz":
		if len(nums) != 1 || nums[0] < 0 || nums[0] > 6 {
			return 0, 0, fmt.Errorf("type %s: want %s(0..6)", t, base)
		}
		return nums[0], 0, nil
	}
	return 0, 0, fmt.Errorf("type %s takes no modifiers", base)
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
