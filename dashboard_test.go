package cutover_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutover/cutover/internal/metrics"
)

// TestGrafanaDashboard keeps deploy/grafana/cutover.json honest: valid JSON, every query names
// only metrics the worker exposes, and every cutover_* metric is on some panel.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("deploy/grafana/cutover.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	// The metric families the worker registers for cutover (histograms add _bucket/_sum/_count).
	m, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	metrics.MailMessages.WithLabelValues("transferred") // a vector shows up once it has a child
	metrics.DBRows.WithLabelValues("ok")
	metrics.DBBatches.WithLabelValues("committed")
	metrics.Errors.WithLabelValues("mail", "connect")
	metrics.PassDuration.WithLabelValues("mail", "initial")
	metrics.PhaseDuration.WithLabelValues("email", "preflight")
	metrics.CaptureChanges.WithLabelValues("forward")
	metrics.CapturePending.WithLabelValues("m", "s", "forward", "rows")
	metrics.CaptureRate.WithLabelValues("m", "s", "forward")
	metrics.CapturePredicted.WithLabelValues("m")
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	gathered := map[string]bool{}
	for _, f := range families {
		gathered[f.GetName()] = true
	}
	// Every collector the registry describes must be gathered above: a vector without a child is
	// not, and would escape the panel check.
	descs := make(chan *prometheus.Desc)
	go func() { m.Registry.Describe(descs); close(descs) }()
	fqName := regexp.MustCompile(`fqName: "(cutover_[a-z_]+)"`)
	for d := range descs {
		if n := fqName.FindStringSubmatch(d.String()); n != nil && !gathered[n[1]] {
			t.Errorf("%s is registered but not gathered: give it a child in this test", n[1])
		}
	}
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "cutover_") {
			continue
		}
		known[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				known[name+s] = true
			}
		}
	}
	used := map[string]bool{}
	ref := regexp.MustCompile(`cutover_[a-z_]+`)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range ref.FindAllString(tg.Expr, -1) {
				if !known[name] {
					t.Errorf("panel %q queries %s, which the worker does not expose", p.Title, name)
				}
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
			}
		}
	}
	for _, f := range families {
		if n := f.GetName(); strings.HasPrefix(n, "cutover_") && !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}
