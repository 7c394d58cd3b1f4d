package dbcopy

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgtype"
)

// slowTime is toTime's layout search alone (what parseISOTime shortcuts).
func slowTime(s string) (time.Time, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// TestParseISOTimeAgreesWithLayouts: whenever the fast path accepts a string, time.Parse with
// the layouts gives the same instant; inputs it must leave alone are left alone.
func TestParseISOTimeAgreesWithLayouts(t *testing.T) {
	inputs := []string{
		"2024-01-01 00:01:00", "2024-01-01T00:01:00", "2024-02-29 23:59:59", "2023-02-29 10:00:00",
		"2024-04-31 10:00:00", "2024-13-01 10:00:00", "2024-00-10 10:00:00", "2024-01-00 10:00:00",
		"2024-01-01 24:00:00", "2024-01-01 23:60:00", "2024-01-01 23:59:60", "0000-01-01 00:00:00",
		"2024-01-01 10:00:00.5", "2024-01-01 10:00:00.123456789", "2024-01-01 10:00:00.1234567891",
		"2024-01-01 10:00:00.", "2024-01-01 10:00:00,5", "2024-01-01 10:00:00Z", "2024-01-01 10:00:00+02",
		"2024-01-01 10:00:00+02:00", "2024-1-01 10:00:00", "2024-01-01 1:00:00", "2024-01-01x10:00:00",
		"+024-01-01 10:00:00", "2024-01-01 10:00:0a", "1900-02-29 00:00:00", "2000-02-29 00:00:00",
		"2024-01-01", "2024/01/01", "2024/02/30", "2024-1-01", "2024/01-01", "2024/01/01T10:00:00",
		"2024/01/01 10:00:00", "2024/01/01 10:00:00.25", "2024/01/01 10:00:00Z", "2024-01-01 ", "2024-01-01x",
		"2024/12/31 23:59:59.999999999", "2024-01-01T10",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		sep := "-/"[rng.IntN(2)]
		s := fmt.Sprintf("%04d%c%02d%c%02d", rng.IntN(10000), sep, rng.IntN(14), sep, rng.IntN(33))
		if rng.IntN(4) > 0 {
			s += fmt.Sprintf("%c%02d:%02d:%02d", " T"[rng.IntN(2)], rng.IntN(25), rng.IntN(61), rng.IntN(61))
			if rng.IntN(3) == 0 {
				s += "." + fmt.Sprintf("%09d", rng.IntN(1_000_000_000))[:1+rng.IntN(9)]
			}
		}
		inputs = append(inputs, s)
	}
	accepted := 0
	for _, s := range inputs {
		fast, ok := parseISOTime(s)
		if !ok {
			continue
		}
		accepted++
		slow, sok := slowTime(s)
		if !sok || !slow.Equal(fast) || slow.Location() != fast.Location() {
			t.Fatalf("%q: fast %v, layouts %v (ok %v)", s, fast, slow, sok)
		}
	}
	for _, s := range []string{"2023-02-29 10:00:00", "2024-01-01 24:00:00", "2024-01-01 10:00:00Z", "2024-01-01 10:00:00.1234567891",
		"2024/01/01T10:00:00", "2024/02/30"} {
		if _, ok := parseISOTime(s); ok {
			t.Errorf("%q accepted by the fast path", s)
		}
	}
	if accepted < 5000 {
		t.Fatalf("fast path accepted only %d inputs", accepted)
	}
}

// TestCastsAreExactOrRefused: every cast either carries the source value exactly, or (for a
// column that may round) rounds it and says so, or is an error row; epoch milliseconds keep
// their milliseconds.
func TestCastsAreExactOrRefused(t *testing.T) {
	type out struct {
		Value  string
		Change string
		Code   string
	}
	render := func(v any) string {
		switch x := v.(type) {
		case nil:
			return "NULL"
		case time.Time:
			return x.Format(time.RFC3339Nano)
		case pgtype.Numeric:
			dv, _ := x.Value()
			return fmt.Sprint(dv)
		default:
			return fmt.Sprint(x)
		}
	}
	numeric124 := castOpts{prec: 12, scale: 4}
	for _, tc := range []struct {
		in   any
		typ  string
		o    castOpts
		want out
	}{
		{int64(1727784000123), "timestamptz", castOpts{}, out{Value: "2024-10-01T12:00:00.123Z"}},
		{"1727784000123", "timestamptz", castOpts{}, out{Value: "2024-10-01T12:00:00.123Z"}},
		{float64(1727784000123), "timestamptz", castOpts{}, out{Value: "2024-10-01T12:00:00.123Z"}},
		{1727784000.123, "timestamptz", castOpts{}, out{Value: "2024-10-01T12:00:00.123Z"}},
		{"1727784000.123", "timestamp", castOpts{}, out{Value: "2024-10-01T12:00:00.123Z"}},
		{int64(1727784000), "timestamptz", castOpts{}, out{Value: "2024-10-01T12:00:00Z"}},
		{int64(-86400), "timestamptz", castOpts{}, out{Value: "1969-12-31T00:00:00Z"}},
		{"1727784000.1234567", "timestamptz", castOpts{}, out{Code: "inexact"}},
		{"2024-01-01 10:00:00.1234567", "timestamptz", castOpts{}, out{Code: "inexact"}},
		{"2024-01-01 10:00:00.1234567", "timestamptz", castOpts{round: true}, out{Value: "2024-01-01T10:00:00.123457Z", Change: "rounded"}},
		{"2024-01-01 10:00:00.123", "timestamptz", castOpts{tsUnit: 10 * time.Millisecond}, out{Code: "inexact"}},
		{"2024-01-01 13:00", "date", castOpts{}, out{Code: "inexact"}},
		{"2024-01-01", "date", castOpts{}, out{Value: "2024-01-01T00:00:00Z"}},
		{"1.23456", "numeric", numeric124, out{Code: "inexact"}},
		{"1.23455", "numeric", castOpts{prec: 12, scale: 4, round: true}, out{Value: "1.2346", Change: "rounded"}},
		{"-1.23455", "numeric", castOpts{prec: 12, scale: 4, round: true}, out{Value: "-1.2346", Change: "rounded"}},
		{"12345678.1234", "numeric", numeric124, out{Value: "12345678.1234"}},
		{"123456789.1", "numeric", numeric124, out{Code: "out_of_range"}},
		{0.99, "numeric", numeric124, out{Value: "0.99"}},
		{"1/3", "numeric", castOpts{}, out{Code: "bad_numeric"}},
		{" 2.5", "numeric", castOpts{}, out{Value: "2.5", Change: "trimmed"}},
		{0.1, "real", castOpts{}, out{Value: "0.10000000149011612"}},
		{0.123456789, "real", castOpts{}, out{Code: "inexact"}},
		{0.123456789, "real", castOpts{round: true}, out{Value: "0.12345679104328156", Change: "rounded"}},
		{int64(16777217), "real", castOpts{}, out{Code: "inexact"}},
		{int64(1<<53 + 1), "double precision", castOpts{}, out{Code: "inexact"}},
		{"0.10", "double precision", castOpts{}, out{Value: "0.1"}},
		{"", "text", castOpts{emptyAsNull: true}, out{Value: "NULL", Change: "empty_to_null"}},
		{"  ", "jsonb", castOpts{emptyAsNull: true}, out{Value: "NULL", Change: "empty_to_null"}},
		{"", "text", castOpts{}, out{Value: ""}},
		{" 42", "integer", castOpts{}, out{Value: "42", Change: "trimmed"}},
		{"Val2 ", "text", castOpts{}, out{Value: "Val2 "}},
	} {
		v, ch, rerr := convertChange(tc.in, tc.typ, tc.o)
		var got out
		if rerr != nil {
			got.Code = rerr.Code
		} else {
			got.Value, got.Change = render(v), ch.String()
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%T %v → %s: (-want +got)\n%s", tc.in, tc.in, tc.typ, diff)
		}
	}
}
