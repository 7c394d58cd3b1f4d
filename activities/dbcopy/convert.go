package dbcopy

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
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
	// layout remembers the timestamp layout that parsed this column last (one column mostly
	// uses one form): tried first, it saves the misses of the layouts before it.
	layout *atomic.Int32
}

// convert casts a source value (int64, float64, string, []byte, bool, time.Time or nil) to the
// Go value pgx's binary COPY encodes as typ, or explains why it cannot.
func convert(v any, typ string, o castOpts) (any, *rowError) {
	if v == nil {
		return nil, nil
	}
	if b, ok := v.([]byte); ok && typ != "bytea" {
		v = string(b)
	}
	if s, ok := v.(string); ok {
		if o.emptyAsNull && strings.TrimSpace(s) == "" {
			return nil, nil
		}
		if !utf8.ValidString(s) {
			return nil, badValue("invalid_utf8", "not valid UTF-8 (%d bytes)", len(s))
		}
		if strings.IndexByte(s, 0) >= 0 && typ != "bytea" {
			return nil, badValue("nul_byte", "contains a NUL byte, which PostgreSQL text cannot store")
		}
	}
	// Values that pass unchanged are returned as the interface they came in (no new boxing: an
	// allocation per value otherwise).
	switch typ {
	case "text":
		switch x := v.(type) {
		case string:
			return v, nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case bool:
			return strconv.FormatBool(x), nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		}
	case "smallint", "integer", "bigint":
		n, err := toInt(v)
		if err != nil {
			return nil, err
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		switch typ {
		case "smallint":
			lo, hi = math.MinInt16, math.MaxInt16
		case "integer":
			lo, hi = math.MinInt32, math.MaxInt32
		}
		if n < lo || n > hi {
			return nil, badValue("out_of_range", "%d is out of range for %s", n, typ)
		}
		if _, same := v.(int64); same {
			return v, nil
		}
		return n, nil
	case "real", "double precision":
		f, err := toFloat(v)
		if err != nil {
			return nil, err
		}
		if (math.IsNaN(f) || math.IsInf(f, 0)) && !o.allowNaN {
			return nil, badValue("nan", "%v is not a number (set allow_nan to load it)", f)
		}
		if _, same := v.(float64); same {
			return v, nil
		}
		return f, nil
	case "numeric":
		var s string
		switch x := v.(type) {
		case int64:
			s = strconv.FormatInt(x, 10)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, badValue("nan", "%v is not a number", x)
			}
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case string:
			s = strings.TrimSpace(x)
			if _, ok := new(big.Rat).SetString(s); !ok {
				return nil, badValue("bad_numeric", "%q is not a decimal number", clip(x))
			}
		default:
			return nil, badValue("bad_numeric", "%T is not a decimal number", v)
		}
		var n pgtype.Numeric
		if err := n.Scan(s); err != nil {
			return nil, badValue("bad_numeric", "%q is not a decimal number", clip(s))
		}
		return n, nil
	case "boolean":
		switch x := v.(type) {
		case bool:
			return v, nil
		case int64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
			return nil, badValue("bad_boolean", "%d is not 0 or 1", x)
		case float64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "1", "t", "true", "y", "yes", "on":
				return true, nil
			case "0", "f", "false", "n", "no", "off":
				return false, nil
			}
			return nil, badValue("bad_boolean", "%q is not a boolean", clip(x))
		}
	case "json", "jsonb":
		switch x := v.(type) {
		case string:
			if !json.Valid([]byte(x)) {
				return nil, badValue("bad_json", "%q is not valid JSON", clip(x))
			}
			if strings.Contains(x, `\u0000`) {
				return nil, badValue("bad_json", "JSON holds \\u0000, which jsonb cannot store")
			}
			return v, nil
		case int64, bool:
			return fmt.Sprint(x), nil
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, badValue("nan", "%v is not a JSON number", x)
			}
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		}
	case "timestamptz", "timestamp", "date":
		t, err := toTime(v, o.layout)
		if err != nil {
			return nil, err
		}
		if typ == "date" {
			return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), nil
		}
		return t, nil
	case "uuid":
		s, ok := v.(string)
		if !ok {
			return nil, badValue("bad_uuid", "%T is not a UUID", v)
		}
		u, err := uuid.Parse(strings.TrimSpace(s))
		if err != nil {
			return nil, badValue("bad_uuid", "%q is not a UUID", clip(s))
		}
		return [16]byte(u), nil
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return v, nil
		case string:
			return []byte(x), nil
		}
	default:
		return nil, badValue("unsupported_type", "no cast to %s", typ)
	}
	return nil, badValue("bad_"+strings.Fields(typ)[0], "%T value cannot become %s", v, typ)
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

// timeLayouts are the textual timestamp forms legacy SQLite data mixes. A form without a zone
// is UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
	"2006/01/02 15:04:05",
	"2006/01/02",
	time.RFC1123Z,
	time.RFC1123,
}

// toTime parses timestamps: the layouts above, or Unix epoch seconds (milliseconds when the
// number is too large to be seconds: beyond year 5138).
func toTime(v any, hint *atomic.Int32) (time.Time, *rowError) {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case int64:
		t = fromEpoch(float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return time.Time{}, badValue("bad_timestamp", "%v is not a time", x)
		}
		t = fromEpoch(x)
	case string:
		s := strings.TrimSpace(x)
		if p, ok := parseISOTime(s); ok {
			t = p
			break
		}
		if !strings.ContainsAny(s, "-/:") {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return time.Time{}, badValue("bad_timestamp", "%q is not a time", clip(x))
				}
				t = fromEpoch(f)
				break
			}
		}
		ok := false
		if hint != nil {
			if p, err := time.Parse(timeLayouts[hint.Load()], s); err == nil {
				t, ok = p, true
			}
		}
		for i := 0; !ok && i < len(timeLayouts); i++ {
			if p, err := time.Parse(timeLayouts[i], s); err == nil {
				t, ok = p, true
				if hint != nil {
					hint.Store(int32(i))
				}
			}
		}
		if !ok {
			return time.Time{}, badValue("bad_timestamp", "%q is not a recognised timestamp", clip(x))
		}
	default:
		return time.Time{}, badValue("bad_timestamp", "%T is not a time", v)
	}
	if t.Year() < -4713 || t.Year() > 294276 {
		return time.Time{}, badValue("bad_timestamp", "%s is outside PostgreSQL's range", t)
	}
	// PostgreSQL keeps microseconds: truncate here so the content hash compares equal.
	return t.UTC().Truncate(time.Microsecond), nil
}

// parseISOTime reads the commonest form, "2006-01-02 15:04:05[.999999999]" (or with a T) and
// no zone, as time.Parse does with the zone-less layouts above but without their cost (a tenth
// of the engine's CPU on timestamp columns, profiled). Anything else, including values out of
// range, is left to time.Parse (ok false).
func parseISOTime(s string) (time.Time, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	if day > 28 && day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	nsec := 0
	if len(s) > 19 {
		digits := len(s) - 20
		if s[19] != '.' || digits < 1 || digits > 9 {
			return time.Time{}, false
		}
		if nsec = num(20, digits); nsec < 0 {
			return time.Time{}, false
		}
		for range 9 - digits {
			nsec *= 10
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func fromEpoch(f float64) time.Time {
	if math.Abs(f) > 1e11 {
		f /= 1000
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// snapshotValue makes a source value JSON-safe for migration_errors.source_data: long values
// are clipped, invalid UTF-8 and NUL bytes (which jsonb rejects) are escaped, blobs are base64.
func snapshotValue(v any) any {
	const maxLen = 2048
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) || strings.IndexByte(x, 0) >= 0 {
			if len(x) > maxLen {
				x = x[:maxLen]
			}
			return map[string]string{"escaped": strconv.QuoteToASCII(x)}
		}
		if len(x) > maxLen {
			return x[:maxLen] + fmt.Sprintf("…(%d bytes)", len(x))
		}
		return x
	case []byte:
		if len(x) > maxLen {
			x = x[:maxLen]
		}
		return map[string]string{"base64": base64.StdEncoding.EncodeToString(x)}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	default:
		return x
	}
}

// canon renders a value of target type typ canonically for the content hash, the same way
// whether it came from the transformation (source side) or from pgx decoding the target.
func canon(typ string, v any) string {
	if v == nil {
		return "\x00"
	}
	switch typ {
	case "smallint", "integer", "bigint":
		switch x := v.(type) {
		case int64:
			return strconv.FormatInt(x, 10)
		case int32:
			return strconv.FormatInt(int64(x), 10)
		case int16:
			return strconv.FormatInt(int64(x), 10)
		}
	case "real":
		switch x := v.(type) {
		case float64:
			return strconv.FormatFloat(float64(float32(x)), 'g', -1, 32)
		case float32:
			return strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
	case "double precision":
		if x, ok := v.(float64); ok {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	case "numeric":
		var s string
		switch x := v.(type) {
		case pgtype.Numeric:
			dv, _ := x.Value()
			s, _ = dv.(string)
		case string:
			s = x
		}
		if r, ok := new(big.Rat).SetString(s); ok {
			return r.RatString()
		}
		return s
	case "boolean":
		if x, ok := v.(bool); ok {
			return strconv.FormatBool(x)
		}
	case "json", "jsonb":
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			s = string(x)
		}
		var d any
		if err := json.Unmarshal([]byte(s), &d); err == nil {
			b, _ := json.Marshal(d)
			return string(b)
		}
		return s
	case "timestamptz", "timestamp":
		if x, ok := v.(time.Time); ok {
			return x.UTC().Format(time.RFC3339Nano)
		}
	case "date":
		if x, ok := v.(time.Time); ok {
			return x.Format("2006-01-02")
		}
	case "uuid":
		switch x := v.(type) {
		case [16]byte:
			return uuid.UUID(x).String()
		case uuid.UUID:
			return x.String()
		case string:
			return strings.ToLower(x)
		}
	case "bytea":
		if x, ok := v.([]byte); ok {
			return hex.EncodeToString(x)
		}
	}
	if b, ok := v.([]byte); ok {
		return string(bytes.Clone(b))
	}
	return fmt.Sprint(v)
}
