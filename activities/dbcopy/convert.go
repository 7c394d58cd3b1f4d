package dbcopy

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/packed"
)

// rowError is why one row cannot be loaded. Code is stable (dashboards and retry_failed key on
// it): a transformation code below, orphan_fk, or the SQLSTATE PostgreSQL raised.
type rowError struct {
	Type    model.ErrorType
	Code    string
	Column  string
	Message string
}

func (e *rowError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("column %s: %s", e.Column, e.Message)
	}
	return e.Message
}

func badValue(code, format string, a ...any) *rowError {
	return &rowError{Type: model.ErrDataValidation, Code: code, Message: fmt.Sprintf(format, a...)}
}

// castOpts are a column's conversion options.
type castOpts struct {
	emptyAsNull bool
	allowNaN    bool
	// round lets a cast round a value the target type cannot hold exactly (more fractional
	// digits than a numeric's scale, a float beyond real's precision, sub-microsecond or
	// time-of-day parts of a timestamp or date); each rounded value is counted. Without it such
	// a value is an inexact row error.
	round bool
	// scale and prec are a numeric(prec, scale) target's; prec 0: unconstrained.
	prec, scale int
	// tsUnit is what a timestamp(p) target keeps of a second (10^(9-p) ns); 0: a microsecond.
	tsUnit time.Duration
	// layout remembers the timestamp layout that parsed this column last (one column mostly
	// uses one form): tried first, it saves the misses of the layouts before it.
	layout *atomic.Int32
}

// change is how a transformation changed a value on its way to the target (counted per
// column: nothing changes silently).
type change uint8

const (
	unchanged   change = iota
	emptyToNull        // '' (or only spaces) loaded as NULL (empty_as_null)
	trimmed            // spaces around a value cast from text dropped
	rounded            // a value rounded to the target type (round)
	defaulted          // NULL replaced by the column's default
	numChanges
)

// changeNames name the changes in the ledger, the status and the report.
var changeNames = [numChanges]string{"", "empty_to_null", "trimmed", "rounded", "default_filled"}

func (c change) String() string { return changeNames[c] }

// inexact is the error of a value the target type cannot hold without rounding.
func inexact(format string, a ...any) *rowError {
	return badValue("inexact", format+" (set round: true on the column to accept rounding, counted)", a...)
}

// convert casts a source value (int64, float64, string, []byte, bool, time.Time or nil) to the
// Go value pgx's binary COPY encodes as typ, or explains why it cannot.
func convert(v any, typ string, o castOpts) (any, *rowError) {
	out, _, err := convertChange(v, typ, o)
	return out, err
}

// convertChange is convert that also says how the value changed.
func convertChange(v any, typ string, o castOpts) (any, change, *rowError) {
	return convertChangeIn(v, typ, o, nil)
}

// convertChangeIn is convertChange boxing the values it makes in a (nil: each on its own).
func convertChangeIn(v any, typ string, o castOpts, a *packed.Values) (any, change, *rowError) {
	if v == nil {
		return nil, unchanged, nil
	}
	if b, ok := v.([]byte); ok && typ != "bytea" {
		v = string(b)
	}
	ch := unchanged
	if s, ok := v.(string); ok {
		if o.emptyAsNull && strings.TrimSpace(s) == "" {
			return nil, emptyToNull, nil
		}
		if !utf8.ValidString(s) {
			return nil, unchanged, badValue("invalid_utf8", "not valid UTF-8 (%d bytes)", len(s))
		}
		if strings.IndexByte(s, 0) >= 0 && typ != "bytea" {
			return nil, unchanged, badValue("nul_byte", "contains a NUL byte, which PostgreSQL text cannot store")
		}
		switch typ {
		case "text", "bytea", "json", "jsonb":
		default:
			if len(s) > 0 && (isSpace(s[0]) || isSpace(s[len(s)-1])) {
				ch = trimmed // every cast below reads the value without its surrounding spaces
			}
		}
	}
	out, rch, err := castToIn(v, typ, o, a)
	if rch != unchanged {
		ch = rch
	}
	return out, ch, err
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f'
}

// castTo is convertChange's cast, once the value is known to be storable text.
func castTo(v any, typ string, o castOpts) (any, change, *rowError) {
	return castToIn(v, typ, o, nil)
}

// castToIn is castTo boxing the times it makes in a (nil: each on its own).
func castToIn(v any, typ string, o castOpts, a *packed.Values) (any, change, *rowError) {
	// Values that pass unchanged are returned as the interface they came in (no new boxing: an
	// allocation per value otherwise).
	switch typ {
	case "text":
		switch x := v.(type) {
		case string:
			return v, unchanged, nil
		case int64:
			return strconv.FormatInt(x, 10), unchanged, nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), unchanged, nil
		case bool:
			return strconv.FormatBool(x), unchanged, nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), unchanged, nil
		}
	case "smallint", "integer", "bigint":
		n, err := toInt(v)
		if err != nil {
			return nil, unchanged, err
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		switch typ {
		case "smallint":
			lo, hi = math.MinInt16, math.MaxInt16
		case "integer":
			lo, hi = math.MinInt32, math.MaxInt32
		}
		if n < lo || n > hi {
			return nil, unchanged, badValue("out_of_range", "%d is out of range for %s", n, typ)
		}
		if _, same := v.(int64); same {
			return v, unchanged, nil
		}
		return n, unchanged, nil
	case "real", "double precision":
		return toFloatOf(v, typ, o)
	case "numeric":
		return toNumeric(v, o)
	case "boolean":
		switch x := v.(type) {
		case bool:
			return v, unchanged, nil
		case int64:
			if x == 0 || x == 1 {
				return x == 1, unchanged, nil
			}
			return nil, unchanged, badValue("bad_boolean", "%d is not 0 or 1", x)
		case float64:
			if x == 0 || x == 1 {
				return x == 1, unchanged, nil
			}
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "1", "t", "true", "y", "yes", "on":
				return true, unchanged, nil
			case "0", "f", "false", "n", "no", "off":
				return false, unchanged, nil
			}
			return nil, unchanged, badValue("bad_boolean", "%q is not a boolean", clip(x))
		}
	case "json", "jsonb":
		switch x := v.(type) {
		case string:
			if !json.Valid([]byte(x)) {
				return nil, unchanged, badValue("bad_json", "%q is not valid JSON", clip(x))
			}
			if strings.Contains(x, `\u0000`) {
				return nil, unchanged, badValue("bad_json", "JSON holds \\u0000, which jsonb cannot store")
			}
			return v, unchanged, nil
		case int64, bool:
			return fmt.Sprint(x), unchanged, nil
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, unchanged, badValue("nan", "%v is not a JSON number", x)
			}
			return strconv.FormatFloat(x, 'g', -1, 64), unchanged, nil
		}
	case "timestamptz", "timestamp", "date":
		if a != nil {
			t, ch, err := toTimeValue(v, typ, o)
			if err != nil {
				return nil, unchanged, err
			}
			return a.Time(t), ch, nil
		}
		return toTimeOf(v, typ, o)
	case "uuid":
		s, ok := v.(string)
		if !ok {
			return nil, unchanged, badValue("bad_uuid", "%T is not a UUID", v)
		}
		u, err := uuid.Parse(strings.TrimSpace(s))
		if err != nil {
			return nil, unchanged, badValue("bad_uuid", "%q is not a UUID", clip(s))
		}
		return [16]byte(u), unchanged, nil
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return v, unchanged, nil
		case string:
			return []byte(x), unchanged, nil
		}
	default:
		return nil, unchanged, badValue("unsupported_type", "no cast to %s", typ)
	}
	return nil, unchanged, badValue("bad_"+strings.Fields(typ)[0], "%T value cannot become %s", v, typ)
}

// toFloatOf casts to real or double precision. A value the type cannot carry as the same
// decimal number (the shortest decimal that reads back as it: 0.1 stays 0.1 in a real,
// 0.123456789 does not, nor 2^53+1 in a double) is inexact.
func toFloatOf(v any, typ string, o castOpts) (any, change, *rowError) {
	f, err := toFloat(v)
	if err != nil {
		return nil, unchanged, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if !o.allowNaN {
			return nil, unchanged, badValue("nan", "%v is not a number (set allow_nan to load it)", f)
		}
		return f, unchanged, nil
	}
	bits := 64
	if typ == "real" {
		if math.Abs(f) > math.MaxFloat32 {
			return nil, unchanged, badValue("out_of_range", "%v is out of range for real", v)
		}
		bits, f = 32, float64(float32(f))
	}
	if !sameFloat(v, f, bits) {
		if !o.round {
			return nil, unchanged, inexact("%v cannot be held exactly by %s", v, typ)
		}
		return f, rounded, nil
	}
	if _, same := v.(float64); same && bits == 64 {
		return v, unchanged, nil
	}
	return f, unchanged, nil
}

// sameFloat reports whether f, a float of bits bits, is the number the source value v says:
// the same shortest decimal for a float, the same integer, the same decimal value for text.
func sameFloat(v any, f float64, bits int) bool {
	switch x := v.(type) {
	case float64:
		return x == f || strconv.FormatFloat(x, 'g', -1, 64) == strconv.FormatFloat(f, 'g', -1, bits)
	case int64:
		return f == math.Trunc(f) && math.Abs(f) < 1<<63 && int64(f) == x
	case string:
		a, ok := new(big.Rat).SetString(strings.TrimSpace(x))
		if !ok {
			return false
		}
		b, _ := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, bits))
		return b != nil && a.Cmp(b) == 0
	}
	return true
}

// toNumeric casts to numeric, checking a numeric(prec, scale) target's limits: more integer
// digits than it holds is out of range, more fractional digits than its scale is inexact.
func toNumeric(v any, o castOpts) (any, change, *rowError) {
	var s string
	switch x := v.(type) {
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, unchanged, badValue("nan", "%v is not a number", x)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		s = strings.TrimSpace(x)
		if !isDecimal(s) {
			return nil, unchanged, badValue("bad_numeric", "%q is not a decimal number", clip(x))
		}
	default:
		return nil, unchanged, badValue("bad_numeric", "%T is not a decimal number", v)
	}
	ch := unchanged
	if o.prec > 0 {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, unchanged, badValue("bad_numeric", "%q is not a decimal number", clip(s))
		}
		scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(pow10(o.scale)))
		if !scaled.IsInt() {
			if !o.round {
				return nil, unchanged, inexact("%s has more than the %d decimal places of numeric(%d,%d)", clip(s), o.scale, o.prec, o.scale)
			}
			s, ch = roundHalfAway(r, o.scale), rounded
			r.SetString(s)
		}
		limit := new(big.Rat).SetInt(pow10(o.prec - o.scale))
		if new(big.Rat).Abs(r).Cmp(limit) >= 0 {
			return nil, unchanged, badValue("out_of_range", "%s does not fit numeric(%d,%d)", clip(s), o.prec, o.scale)
		}
	}
	var n pgtype.Numeric
	if err := n.Scan(s); err != nil {
		return nil, unchanged, badValue("bad_numeric", "%q is not a decimal number", clip(s))
	}
	return n, ch, nil
}

// isDecimal reports whether s is a plain decimal number: sign, digits, point, digits,
// exponent (what PostgreSQL's numeric input reads; no fractions, no hexadecimal).
func isDecimal(s string) bool {
	i, digits := 0, 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// roundHalfAway renders r with scale decimals, halves away from zero (as PostgreSQL rounds
// numeric).
func roundHalfAway(r *big.Rat, scale int) string {
	m := new(big.Rat).Mul(r, new(big.Rat).SetInt(pow10(scale)))
	q, rem := new(big.Int).QuoRem(m.Num(), m.Denom(), new(big.Int))
	twice := new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2))
	if twice.Cmp(m.Denom()) >= 0 {
		if m.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return new(big.Rat).SetFrac(q, pow10(scale)).FloatString(scale)
}

func toInt(v any) (int64, *rowError) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), nil
		}
		return 0, badValue("bad_integer", "%v is not an integer", x)
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		s := strings.TrimSpace(x)
		n, err := strconv.ParseInt(s, 10, 64)
		if err == nil {
			return n, nil
		}
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, badValue("out_of_range", "%q is out of range", clip(x))
		}
		return 0, badValue("bad_integer", "%q is not an integer", clip(x))
	}
	return 0, badValue("bad_integer", "%T is not an integer", v)
}

func toFloat(v any) (float64, *rowError) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, badValue("bad_float", "%q is not a number", clip(x))
		}
		return f, nil
	}
	return 0, badValue("bad_float", "%T is not a number", v)
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
