package dbcopy

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

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

// toTimeOf casts to timestamptz, timestamp or date. A value with more precision than the
// target keeps (beyond microseconds, beyond a timestamp(p)'s digits, a time of day for a date)
// is inexact unless the column may round.
func toTimeOf(v any, typ string, o castOpts) (any, change, *rowError) {
	t, ch, err := toTimeValue(v, typ, o)
	if err != nil {
		return nil, unchanged, err
	}
	return t, ch, nil
}

// toTimeValue is toTimeOf's time, unboxed.
func toTimeValue(v any, typ string, o castOpts) (time.Time, change, *rowError) {
	t, err := toTime(v, o.layout)
	if err != nil {
		return time.Time{}, unchanged, err
	}
	unit := time.Microsecond
	if o.tsUnit > unit {
		unit = o.tsUnit
	}
	var r time.Time
	if typ == "date" {
		r = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	} else {
		r = t.Round(unit)
	}
	ch := unchanged
	if !r.Equal(t) {
		if !o.round {
			if typ == "date" {
				return time.Time{}, unchanged, inexact("%s has a time of day, which a date drops", t.Format(time.RFC3339Nano))
			}
			return time.Time{}, unchanged, inexact("%s is more precise than the %s the target keeps", t.Format(time.RFC3339Nano), unit)
		}
		ch = rounded
	}
	return r, ch, nil
}

// toTime parses timestamps: the layouts above, or Unix epoch seconds (milliseconds when the
// number is too large to be seconds: beyond year 5138), converted with integer arithmetic on
// the number's decimal digits, so 1727784000123 is 12:00:00.123 exactly. The result is UTC, to
// the nanosecond the source gave.
func toTime(v any, hint *atomic.Int32) (time.Time, *rowError) {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case int64:
		t = fromEpochInt(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return time.Time{}, badValue("bad_timestamp", "%v is not a time", x)
		}
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			t = fromEpochInt(int64(x))
			break
		}
		et, err := fromEpochDecimal(strconv.FormatFloat(x, 'f', -1, 64))
		if err != nil {
			return time.Time{}, err
		}
		t = et
	case string:
		s := strings.TrimSpace(x)
		if p, ok := parseISOTime(s); ok {
			t = p
			break
		}
		if !strings.ContainsAny(s, "-/:") || (len(s) > 1 && s[0] == '-' && !strings.ContainsAny(s[1:], "-/:")) {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				t = fromEpochInt(n)
				break
			}
			if isDecimal(s) {
				et, err := fromEpochDecimal(s)
				if err != nil {
					return time.Time{}, err
				}
				t = et
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
	return t.UTC(), nil
}

// epochMillisAbove: an epoch number beyond it is milliseconds (as seconds it would be past
// the year 5138).
const epochMillisAbove = 1e11

// testHookEpoch, when set, replaces fromEpochInt (a test puts a lossy conversion in the
// copy's path to show the validation does not share it).
var testHookEpoch func(n int64) time.Time

// fromEpochInt is an integer epoch in seconds, or in milliseconds beyond epochMillisAbove.
func fromEpochInt(n int64) time.Time {
	if testHookEpoch != nil {
		return testHookEpoch(n)
	}
	if n > epochMillisAbove || n < -epochMillisAbove {
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}

// fromEpochDecimal is a decimal epoch (seconds, or milliseconds beyond epochMillisAbove) to
// the nanosecond; a number with more digits than nanoseconds is inexact.
func fromEpochDecimal(s string) (time.Time, *rowError) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, badValue("bad_timestamp", "%q is not a time", clip(s))
	}
	perSecond := int64(1e9)
	if new(big.Rat).Abs(r).Cmp(new(big.Rat).SetInt64(epochMillisAbove)) > 0 {
		perSecond = 1e6 // the number counts milliseconds
	}
	ns := new(big.Rat).Mul(r, new(big.Rat).SetInt64(perSecond))
	if !ns.IsInt() {
		return time.Time{}, inexact("epoch %s is more precise than a nanosecond", clip(s))
	}
	n := ns.Num()
	if !n.IsInt64() {
		return time.Time{}, badValue("bad_timestamp", "epoch %s is outside PostgreSQL's range", clip(s))
	}
	sec, nsec := n.Int64()/1e9, n.Int64()%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return time.Unix(sec, nsec).UTC(), nil
}

// parseISOTime reads the commonest forms without a zone, as time.Parse does with the zone-less
// layouts above but without their cost: "2006-01-02 15:04:05[.999999999]" (or with a T),
// "2006/01/02 15:04:05[.999999999]", and the dates "2006-01-02" and "2006/01/02". time.Parse
// cost a tenth of the engine's CPU on timestamp columns (profiled), most of it in the errors of
// the layouts a form misses before its own. Anything else, including values out of range, is
// left to time.Parse (ok false).
func parseISOTime(s string) (time.Time, bool) {
	if len(s) < 10 || (s[4] != '-' && s[4] != '/') || s[7] != s[4] {
		return time.Time{}, false
	}
	if len(s) > 10 && (len(s) < 19 || (s[10] != ' ' && (s[10] != 'T' || s[4] != '-')) || s[13] != ':' || s[16] != ':') {
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
	if year < 0 || month < 1 || month > 12 || day < 1 {
		return time.Time{}, false
	}
	if day > 28 && day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	if len(s) == 10 {
		return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
	}
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
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
