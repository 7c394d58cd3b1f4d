package dbcopy

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// jsonbText writes a JSON document the way PostgreSQL prints it after storing it as jsonb:
// object keys ordered by length, then bytes, a repeated key keeping its last value, ", "
// between members and ": " after a key, no other white space. It is a faithful rewriting of
// the document (the same keys, values and number literals), so when it equals a jsonb
// column's text the column holds the document; when it does not, the caller compares the
// documents by their rules (sameByRules). It declines (ok false) what it does not rewrite
// exactly as PostgreSQL would: escapes in strings, control characters, invalid UTF-8,
// exponents, a leading "+" or a negative zero in a number, and anything not JSON.
func jsonbText(src string) (string, bool) {
	r := jsonbReader{s: src}
	var out bytes.Buffer
	out.Grow(len(src) + len(src)/4)
	r.space()
	if !r.value(&out, 0) {
		return "", false
	}
	r.space()
	if r.i != len(r.s) {
		return "", false
	}
	return out.String(), true
}

// jsonbMaxDepth bounds the nesting jsonbText follows (deeper documents are compared by rules).
const jsonbMaxDepth = 64

type jsonbReader struct {
	s string
	i int
}

func (r *jsonbReader) space() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// value rewrites one value at r.i into out.
func (r *jsonbReader) value(out *bytes.Buffer, depth int) bool {
	if r.i >= len(r.s) || depth > jsonbMaxDepth {
		return false
	}
	switch c := r.s[r.i]; {
	case c == '{':
		return r.object(out, depth)
	case c == '[':
		return r.array(out, depth)
	case c == '"':
		s, ok := r.str()
		if ok {
			out.WriteString(s)
		}
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		n, ok := r.number()
		if ok {
			out.WriteString(n)
		}
		return ok
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(r.s)-r.i >= len(lit) && r.s[r.i:r.i+len(lit)] == lit {
			r.i += len(lit)
			out.WriteString(lit)
			return true
		}
	}
	return false
}

// str reads a string without escapes or control characters, valid UTF-8, and returns it
// quoted (as it stood: PostgreSQL prints such a string unchanged).
func (r *jsonbReader) str() (string, bool) {
	start := r.i
	r.i++
	for r.i < len(r.s) {
		c := r.s[r.i]
		switch {
		case c == '"':
			r.i++
			q := r.s[start:r.i]
			return q, utf8.ValidString(q)
		case c == '\\' || c < 0x20:
			return "", false
		}
		r.i++
	}
	return "", false
}

// number reads a number written as -?(0|[1-9][0-9]*)(\.[0-9]+)?, not a negative zero:
// PostgreSQL prints those digits as they stand.
func (r *jsonbReader) number() (string, bool) {
	start := r.i
	if r.s[r.i] == '-' {
		r.i++
	}
	digits := func() int {
		n := 0
		for r.i < len(r.s) && r.s[r.i] >= '0' && r.s[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	intStart := r.i
	n := digits()
	if n == 0 || (n > 1 && r.s[intStart] == '0') {
		return "", false
	}
	if r.i < len(r.s) && r.s[r.i] == '.' {
		r.i++
		if digits() == 0 {
			return "", false
		}
	}
	if r.i < len(r.s) && (r.s[r.i] == 'e' || r.s[r.i] == 'E') {
		return "", false
	}
	lit := r.s[start:r.i]
	if lit[0] == '-' && allZeros(lit[1:]) {
		return "", false
	}
	return lit, true
}

// allZeros reports whether a number's digits are all zeros (its dot aside).
func allZeros(digits string) bool {
	for i := 0; i < len(digits); i++ {
		if digits[i] != '0' && digits[i] != '.' {
			return false
		}
	}
	return true
}

type jsonbMember struct{ key, val string }

func (r *jsonbReader) object(out *bytes.Buffer, depth int) bool {
	r.i++
	r.space()
	var members []jsonbMember
	if r.i < len(r.s) && r.s[r.i] == '}' {
		r.i++
		out.WriteString("{}")
		return true
	}
	var val bytes.Buffer
	for {
		if r.i >= len(r.s) || r.s[r.i] != '"' {
			return false
		}
		k, ok := r.str()
		if !ok {
			return false
		}
		r.space()
		if r.i >= len(r.s) || r.s[r.i] != ':' {
			return false
		}
		r.i++
		r.space()
		val.Reset()
		if !r.value(&val, depth+1) {
			return false
		}
		members = append(members, jsonbMember{key: k, val: val.String()})
		r.space()
		if r.i >= len(r.s) {
			return false
		}
		if r.s[r.i] == '}' {
			r.i++
			break
		}
		if r.s[r.i] != ',' {
			return false
		}
		r.i++
		r.space()
	}
	// Shorter keys first, then by bytes; of a repeated key the last one stays (a stable sort
	// keeps their order, so the last of a run is the last written).
	slices.SortStableFunc(members, func(a, b jsonbMember) int {
		if len(a.key) != len(b.key) {
			return len(a.key) - len(b.key)
		}
		return bytesCompare(a.key, b.key)
	})
	out.WriteByte('{')
	first := true
	for i, m := range members {
		if i+1 < len(members) && members[i+1].key == m.key {
			continue
		}
		if !first {
			out.WriteString(", ")
		}
		first = false
		out.WriteString(m.key)
		out.WriteString(": ")
		out.WriteString(m.val)
	}
	out.WriteByte('}')
	return true
}

func bytesCompare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *jsonbReader) array(out *bytes.Buffer, depth int) bool {
	r.i++
	r.space()
	out.WriteByte('[')
	if r.i < len(r.s) && r.s[r.i] == ']' {
		r.i++
		out.WriteByte(']')
		return true
	}
	for first := true; ; first = false {
		if !first {
			out.WriteString(", ")
		}
		if !r.value(out, depth+1) {
			return false
		}
		r.space()
		if r.i >= len(r.s) {
			return false
		}
		if r.s[r.i] == ']' {
			r.i++
			out.WriteByte(']')
			return true
		}
		if r.s[r.i] != ',' {
			return false
		}
		r.i++
		r.space()
	}
}
