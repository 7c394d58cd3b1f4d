package dbcopy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/dbcopy/dbcopytest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// BenchmarkValidateClinic loads dbcopytest's clinic chain once (in process) and then times the
// validation of every entity (all its checks, as the workflow runs them after the load), b.N
// times. Knob: CUTOVER_BENCH_CLINIC_SCALE (65 ≈ 200K rows). Figures are printed, never asserted,
// beyond the validation passing.
func BenchmarkValidateClinic(b *testing.B) {
	scale := 65
	if v, err := strconv.Atoi(os.Getenv("CUTOVER_BENCH_CLINIC_SCALE")); err == nil && v > 0 {
		scale = v
	}
	ctx := context.Background()
	clinic := dbcopytest.NewClinic(scale, false)
	src := filepath.Join(b.TempDir(), "legacy.db")
	if err := dbcopytest.WriteSQLite(ctx, src, clinic.Tables); err != nil {
		b.Fatal(err)
	}
	rows := clinic.Rows()
	sp, err := spec.Parse([]byte(dbcopytest.ClinicSpec("sqlite", src, 10000)))
	if err != nil {
		b.Fatal(err)
	}
	e, err := Open(ctx, sp, Options{MigrationID: newID(), TargetURL: testenv.NewDatabase(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := e.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	order, _ := sp.Order()
	for _, name := range order {
		if _, err := e.CopyBatches(ctx, dbmigrateapi.BatchRequest{Entity: name}, 0, nil); err != nil {
			b.Fatal(err)
		}
		if err := e.Finalize(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		for _, name := range order {
			vs, err := e.Validate(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			for _, v := range vs {
				if v.Status == model.ValidationFailed {
					b.Fatalf("%s: %s failed: %s", name, v.ValidationType, v.IssueDetails)
				}
			}
		}
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	}
}
