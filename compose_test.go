package cutover_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cutover/cutover/internal/searchattr"
)

// TestComposeFile keeps docker-compose.yml consistent with the code (no Docker engine runs here,
// so the file is checked by reading it): every dependency names a service, the setup step
// registers exactly our search attributes, and the worker gets the configuration it needs.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Build       any            `yaml:"build"`
			DependsOn   yaml.Node      `yaml:"depends_on"`
			Environment map[string]any `yaml:"environment"`
			Command     []string       `yaml:"command"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, want := range []string{"postgres", "temporal", "temporal-setup", "temporal-ui", "worker"} {
		if _, ok := doc.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	for name, s := range doc.Services {
		if (s.Image == "") == (s.Build == nil) {
			t.Errorf("service %s: want exactly one of image or build", name)
		}
		var deps []string
		switch s.DependsOn.Kind {
		case yaml.SequenceNode:
			_ = s.DependsOn.Decode(&deps)
		case yaml.MappingNode:
			var m map[string]any
			_ = s.DependsOn.Decode(&m)
			for k := range m {
				deps = append(deps, k)
			}
		}
		for _, d := range deps {
			if _, ok := doc.Services[d]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, d)
			}
		}
	}
	setup := strings.Join(doc.Services["temporal-setup"].Command, " ")
	var got, want []string
	for _, m := range regexp.MustCompile(`\b(\w+)=(Keyword|Double|Int|Bool|Datetime|Text|KeywordList)\b`).FindAllString(setup, -1) {
		got = append(got, m)
	}
	for _, d := range searchattr.All {
		want = append(want, d.Name+"="+d.CLIType())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("temporal-setup registers %v, code declares %v", got, want)
	}
	for _, v := range []string{"TEMPORAL_ADDRESS", "DATABASE_URL", "CUTOVER_VAULT_KEYS", "CUTOVER_METRICS_ADDR"} {
		if _, ok := doc.Services["worker"].Environment[v]; !ok {
			t.Errorf("worker environment lacks %s", v)
		}
	}
	if _, err := os.Stat("Dockerfile"); err != nil {
		t.Errorf("worker builds from a Dockerfile: %v", err)
	}
}
