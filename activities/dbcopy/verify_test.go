package dbcopy

import (
	"math"
	"testing"
	"time"
)

// TestSameFastAgreesWithTheRules: wherever sameFast answers, it answers what the column's type
// rules (sameByRules) say, with and without round; a lossy value stays a difference.
func TestSameFastAgreesWithTheRules(t *testing.T) {
	tests := []struct {
		typ string
		raw any
		tv  any
	}{
		{"bigint", int64(42), int64(42)},
		{"bigint", int64(42), int64(43)},
		{"integer", int64(1 << 40), int32(0)},
		{"integer", int64(-7), int32(-7)},
		{"smallint", int64(70000), int16(4464)},
		{"smallint", int64(3), int16(3)},
		{"double precision", 0.1, 0.1},
		{"double precision", 0.1, 0.1 + 1e-17},
		{"double precision", 0.1, float64(float32(0.1))},
		{"double precision", 4.35, 4.3500000000000005},
		{"double precision", math.Copysign(0, -1), 0.0},
		{"double precision", 1e300, 1e300},
		{"double precision", 1.5, math.NaN()},
		{"double precision", 1.5, math.Inf(1)},
		{"double precision", math.MaxFloat64, math.MaxFloat64},
		{"jsonb", `{"a": 1}`, `{"a": 1}`},
		{"jsonb", `{"a":1}`, `{"a": 1}`},
		{"jsonb", `{"a": 1}`, `{"a": 2}`},
		{"json", `[1, 2]`, `[1, 2]`},
	}
	for _, tc := range tests {
		for _, round := range []bool{false, true} {
			b := &builder{typ: tc.typ, opts: castOpts{round: round}}
			fast, ok := sameFast(tc.raw, tc.typ, tc.tv)
			rules := sameByRules(tc.raw, b, tc.tv)
			if ok && fast != rules {
				t.Errorf("%s %v vs %v (round %v): fast says %v, the rules %v", tc.typ, tc.raw, tc.tv, round, fast, rules)
			}
			if got := sameAsSource(tc.raw, b, tc.tv); got != rules {
				t.Errorf("%s %v vs %v (round %v): sameAsSource %v, the rules %v", tc.typ, tc.raw, tc.tv, round, got, rules)
			}
		}
	}
}

// TestEpochIntAgreesWithEpochSays: the integer epoch reading gives epochSays' instant, and
// declines where the nanoseconds overflow (epochSays refuses those too).
func TestEpochIntAgreesWithEpochSays(t *testing.T) {
	for _, x := range []int64{0, 1, -1, 1_700_000_000, -1_700_000_000, 1e11, 1e11 + 1, -1e11 - 1,
		1_700_000_000_123, -1_700_000_000_123, math.MaxInt64 / 1_000_000_000, math.MaxInt64/1_000_000_000 + 1,
		math.MaxInt64 / 1_000_000, math.MaxInt64/1_000_000 + 1, math.MaxInt64, math.MinInt64} {
		r, _ := ratSays(x)
		want, wok := epochSays(r)
		got, ok := epochInt(x)
		if ok && (!wok || !got.Equal(want)) {
			t.Errorf("epoch %d: epochInt %v, epochSays %v (%v)", x, got, want, wok)
		}
		b := &builder{typ: "timestamptz"}
		if wok {
			if !timeSays(x, b, want) {
				t.Errorf("epoch %d: timeSays refuses %v", x, want)
			}
			if timeSays(x, b, want.Add(time.Millisecond)) {
				t.Errorf("epoch %d: timeSays accepts %v", x, want.Add(time.Millisecond))
			}
		}
	}
}
