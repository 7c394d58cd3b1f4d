package dbcopy

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
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
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		s := fmt.Sprintf("%04d-%02d-%02d%c%02d:%02d:%02d", rng.IntN(10000), rng.IntN(14), rng.IntN(33),
			" T"[rng.IntN(2)], rng.IntN(25), rng.IntN(61), rng.IntN(61))
		if rng.IntN(3) == 0 {
			s += "." + fmt.Sprintf("%09d", rng.IntN(1_000_000_000))[:1+rng.IntN(9)]
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
	for _, s := range []string{"2023-02-29 10:00:00", "2024-01-01 24:00:00", "2024-01-01 10:00:00Z", "2024-01-01 10:00:00.1234567891"} {
		if _, ok := parseISOTime(s); ok {
			t.Errorf("%q accepted by the fast path", s)
		}
	}
	if accepted < 5000 {
		t.Fatalf("fast path accepted only %d inputs", accepted)
	}
}
