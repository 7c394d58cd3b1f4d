package dbcopy

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTimeForms reads the timestamp forms the clinic fixture mixes (dbcopytest's
// timeFormats and its dates) as the copy does (toTime, with its layout hint) and as the content
// check does (timeSays), one op per value.
func BenchmarkTimeForms(b *testing.B) {
	at := time.Date(2024, 10, 3, 8, 0, 0, 0, time.UTC)
	forms := []any{at.Format("2006-01-02 15:04:05"), at.Format("2006-01-02T15:04:05Z"),
		at.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000-07:00"), at.Unix(),
		at.Format("2006/01/02 15:04:05"), at.Format("2006-01-02")}
	b.Run("copy", func(b *testing.B) {
		var hint atomic.Int32
		for i := range b.N {
			if _, err := toTime(forms[i%len(forms)], &hint); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		bl := &builder{typ: "timestamptz"}
		for i := range b.N {
			v := forms[i%len(forms)]
			want, err := toTime(v, nil)
			if err != nil {
				b.Fatal(err)
			}
			if !timeSays(v, bl, want) {
				b.Fatalf("%v: not the same instant", v)
			}
		}
	})
}
