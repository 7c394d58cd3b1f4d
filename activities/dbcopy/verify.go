package dbcopy

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// The content validation compares each target value with what the SOURCE value says under the
// column's declared rule (its type, empty_as_null, default, round), with its own reading of
// the source value: decimal numbers as exact fractions, epochs in integer arithmetic, text as
// bytes. It does not run the copy's conversion, so a conversion that loses something (an
// epoch's milliseconds, a numeric's decimals, a float's digits) shows as a difference instead
// of agreeing with itself. Values the spec derives (expressions, constants, references mapped
// to their parent's key) are compared with what the transformation makes of them: they are
// not the source's values to begin with.

// sameAsSource reports whether tv, a value read from the target column of builder b, is what
// the source value raw says.
func sameAsSource(raw any, b *builder, tv any) bool {
	if x, ok := raw.([]byte); ok && b.typ != "bytea" {
		raw = string(x)
	}
	if s, ok := raw.(string); ok && b.opts.emptyAsNull && strings.TrimSpace(s) == "" {
		raw = nil
	}
	if raw == nil && b.def != nil {
		raw = *b.def
	}
	if raw == nil || tv == nil {
		return raw == nil && tv == nil
	}
	if same, ok := sameFast(raw, b.typ, tv); ok {
		return same
	}
	return sameByRules(raw, b, tv)
}

// sameByRules is sameAsSource's general case (raw and tv not NULL): the column's type rules.
func sameByRules(raw any, b *builder, tv any) bool {
	switch b.typ {
	case "text":
		s, ok := tv.(string)
		return ok && s == textSays(raw)
	case "smallint", "integer", "bigint":
		want, ok := ratSays(raw)
		got, gok := intRat(tv)
		return ok && gok && want.IsInt() && want.Cmp(got) == 0
	case "numeric":
		want, ok := ratSays(raw)
		got, gok := numericRat(tv)
		if !ok || !gok {
			return false
		}
		if b.opts.round && b.opts.prec > 0 {
			want, _ = new(big.Rat).SetString(roundHalfAway(want, b.opts.scale))
		}
		return want.Cmp(got) == 0
	case "real", "double precision":
		return floatSays(raw, b, tv)
	case "timestamptz", "timestamp", "date":
		return timeSays(raw, b, tv)
	case "boolean":
		want, ok := boolSays(raw)
		got, gok := tv.(bool)
		return ok && gok && want == got
	case "uuid":
		s, ok := raw.(string)
		if !ok {
			return false
		}
		u, err := uuid.Parse(strings.TrimSpace(s))
		return err == nil && canon("uuid", tv) == u.String()
	case "json", "jsonb":
		if same, ok := sameJSONB(raw, b.typ, tv); ok {
			return same
		}
		var a, b any
		return json.Unmarshal([]byte(textSays(raw)), &a) == nil && json.Unmarshal([]byte(canon("text", tv)), &b) == nil &&
			reflect.DeepEqual(a, b)
	case "bytea":
		got, ok := tv.([]byte)
		switch x := raw.(type) {
		case []byte:
			return ok && bytes.Equal(x, got)
		case string:
			return ok && x == string(got)
		}
	}
	return false
}

// sameFast answers sameAsSource without big numbers or decoding for the common pairs whose
// answer is plain equality (ok false: ask the general rules):
//   - an integer column and an integer source value: the same number;
//   - a double precision column and a finite float source value: the same float. The rules
//     compare the two floats' shortest decimals as exact fractions, with round the source's
//     decimal rounded to a float; a float's shortest decimal names it alone, so both come to
//     float equality (-0 and 0 included);
//   - a json column holding exactly the source's text: the same document (the target's text
//     is valid JSON, so the source's is too).
func sameFast(raw any, typ string, tv any) (same, ok bool) {
	switch typ {
	case "smallint", "integer", "bigint":
		x, xok := raw.(int64)
		if !xok {
			return false, false
		}
		switch y := tv.(type) {
		case int64:
			return x == y, true
		case int32:
			return x == int64(y), true
		case int16:
			return x == int64(y), true
		}
	case "double precision":
		x, xok := raw.(float64)
		y, yok := tv.(float64)
		if xok && yok && !math.IsNaN(x) && !math.IsInf(x, 0) {
			return x == y, true
		}
	case "json", "jsonb":
		if y, yok := tv.(string); yok && y == textSays(raw) {
			return true, true
		}
	}
	return false, false
}

// sameJSONB answers for a jsonb column holding the source's document as PostgreSQL prints it
// (jsonbText): the column's text is a rewriting of the source's, the same document. Otherwise
// (ok false) the rules decode both and compare them: this spares those two decodings where the
// target holds what the source says, the common case.
func sameJSONB(raw any, typ string, tv any) (same, ok bool) {
	got, gok := tv.(string)
	if typ != "jsonb" || !gok {
		return false, false
	}
	if want, wok := jsonbText(textSays(raw)); wok && want == got {
		return true, true
	}
	return false, false
}

// textSays is a source value as text: text as it is, a number in its shortest decimal.
func textSays(raw any) string {
	switch x := raw.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(x)
	}
	return ""
}

// ratSays is the number a source value says, exactly: an integer, a float's shortest decimal
// (what SQLite shows for it), or text that is a plain decimal (spaces around it allowed).
func ratSays(raw any) (*big.Rat, bool) {
	switch x := raw.(type) {
	case int64:
		return new(big.Rat).SetInt64(x), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
		return new(big.Rat).SetString(strconv.FormatFloat(x, 'g', -1, 64))
	case bool:
		if x {
			return big.NewRat(1, 1), true
		}
		return new(big.Rat), true
	case string:
		s := strings.TrimSpace(x)
		if !isDecimal(s) {
			return nil, false
		}
		return new(big.Rat).SetString(s)
	}
	return nil, false
}

func intRat(tv any) (*big.Rat, bool) {
	switch x := tv.(type) {
	case int64:
		return new(big.Rat).SetInt64(x), true
	case int32:
		return new(big.Rat).SetInt64(int64(x)), true
	case int16:
		return new(big.Rat).SetInt64(int64(x)), true
	}
	return nil, false
}

// numericRat reads a numeric the target returned (as text, or as pgtype.Numeric).
func numericRat(tv any) (*big.Rat, bool) {
	var s string
	switch x := tv.(type) {
	case string:
		s = x
	case pgtype.Numeric:
		v, err := x.Value()
		if err != nil {
			return nil, false
		}
		s, _ = v.(string)
	default:
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

// floatSays: the target float is the decimal number the source says (for a real, the source
// number's shortest decimal is the real's); with round, it is that number rounded to the type.
func floatSays(raw any, b *builder, tv any) bool {
	var got float64
	bits := 64
	switch x := tv.(type) {
	case float64:
		got = x
	case float32:
		got, bits = float64(x), 32
	default:
		return false
	}
	if b.typ == "real" {
		bits = 32
	}
	if f, ok := raw.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return b.opts.allowNaN && (f == got || (math.IsNaN(f) && math.IsNaN(got)))
	}
	want, ok := ratSays(raw)
	if !ok {
		return false
	}
	if b.opts.round {
		f, _ := want.Float64()
		if bits == 32 {
			f = float64(float32(f))
		}
		return f == got
	}
	g, ok := new(big.Rat).SetString(strconv.FormatFloat(got, 'g', -1, bits))
	return ok && want.Cmp(g) == 0
}

// timeSays: the target time is the instant the source says — text in one of the timestamp
// forms, or an epoch in seconds (milliseconds beyond 1e11) read from its decimal digits — to
// the nanosecond; with round, to what the column keeps. A date holds the source's day, which
// must have no time of day unless the column may round.
func timeSays(raw any, b *builder, tv any) bool {
	got, ok := tv.(time.Time)
	if !ok {
		return false
	}
	var want time.Time
	switch x := raw.(type) {
	case time.Time:
		want = x
	case string:
		s := strings.TrimSpace(x)
		if r, ok := ratSays(s); ok && !strings.ContainsAny(s[1:], "-/:") {
			want, ok = epochSays(r)
			if !ok {
				return false
			}
			break
		}
		t, ok := parseISOTime(s)
		for i := 0; !ok && i < len(timeLayouts); i++ {
			if p, err := time.Parse(timeLayouts[i], s); err == nil {
				t, ok = p, true
			}
		}
		if !ok {
			return false
		}
		want = t
	case int64:
		if w, ok := epochInt(x); ok {
			want = w
			break
		}
		if want, ok = epochSays(new(big.Rat).SetInt64(x)); !ok {
			return false
		}
	default:
		r, ok := ratSays(raw)
		if !ok {
			return false
		}
		if want, ok = epochSays(r); !ok {
			return false
		}
	}
	want = want.UTC()
	if b.typ == "date" {
		day := time.Date(want.Year(), want.Month(), want.Day(), 0, 0, 0, 0, time.UTC)
		if !day.Equal(want) && !b.opts.round {
			return false
		}
		g := got.UTC()
		return day.Equal(time.Date(g.Year(), g.Month(), g.Day(), 0, 0, 0, 0, time.UTC))
	}
	if b.opts.round {
		unit := max(time.Microsecond, b.opts.tsUnit)
		want = want.Round(unit)
	}
	return want.Equal(got)
}

// epochSays is the instant of an epoch number: seconds, or milliseconds beyond 1e11.
func epochSays(r *big.Rat) (time.Time, bool) {
	ns := new(big.Rat).Mul(r, big.NewRat(1e9, 1))
	if new(big.Rat).Abs(r).Cmp(big.NewRat(1e11, 1)) > 0 {
		ns.Mul(r, big.NewRat(1e6, 1))
	}
	if !ns.IsInt() || !ns.Num().IsInt64() {
		return time.Time{}, false
	}
	n := ns.Num().Int64()
	sec, nsec := n/1e9, n%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return time.Unix(sec, nsec), true
}

// epochInt is epochSays for an integer epoch in integer arithmetic: seconds, or milliseconds
// beyond 1e11, while its nanoseconds fit in 64 bits (ok false beyond: ask epochSays).
func epochInt(x int64) (time.Time, bool) {
	const maxSec, maxMS = math.MaxInt64 / 1_000_000_000, math.MaxInt64 / 1_000_000
	switch a := max(x, -x); {
	case x == math.MinInt64:
		return time.Time{}, false
	case a <= 1e11 && a <= maxSec:
		return time.Unix(x, 0), true
	case a > 1e11 && a <= maxMS:
		return time.Unix(x/1000, x%1000*1e6), true
	}
	return time.Time{}, false
}

// boolSays reads a source boolean: 0/1, true/false and the usual words.
func boolSays(raw any) (bool, bool) {
	switch x := raw.(type) {
	case bool:
		return x, true
	case int64:
		return x == 1, x == 0 || x == 1
	case float64:
		return x == 1, x == 0 || x == 1
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "1", "t", "true", "y", "yes", "on":
			return true, true
		case "0", "f", "false", "n", "no", "off":
			return false, true
		}
	}
	return false, false
}

// differingColumns lists the columns of a target row tv (aligned with p.cols) that do not hold
// what the source row src says (pr: the row as the transformation builds it, for derived
// values). The key column is how the rows were matched.
func differingColumns(p *entityPlan, src []any, pr prepared, tv []any) []string {
	var out []string
	for i := 1; i < len(p.cols); i++ {
		b := &p.build[i]
		var same bool
		if b.srcIdx >= 0 && b.expr == nil && b.konst == nil && b.parent == nil {
			same = sameAsSource(src[b.srcIdx], b, tv[i])
		} else {
			same = sameDerived(p.types[i], pr.values[i], tv[i])
		}
		if !same {
			out = append(out, p.cols[i])
		}
	}
	return out
}

// sameDerived compares a derived value (as the transformation makes it) with the target's:
// canonically, UUIDs (references mapped to their parent's key) by their bytes.
func sameDerived(typ string, want, got any) bool {
	if typ == "uuid" {
		a, aok := uuidBytes(want)
		b, bok := uuidBytes(got)
		if aok && bok {
			return a == b
		}
	}
	return canon(typ, want) == canon(typ, got)
}

func uuidBytes(v any) ([16]byte, bool) {
	switch x := v.(type) {
	case [16]byte:
		return x, true
	case uuid.UUID:
		return x, true
	case pgtype.UUID:
		return x.Bytes, x.Valid
	}
	return [16]byte{}, false
}
