package cutover_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cutover/cutover/internal/taskqueue"
)

// TestComposeFile keeps docker-compose.yml consistent with the code (no Docker engine runs here,
// so the file is checked by reading it): every dependency names a service, the setup step
// is `cutover temporal setup`, and every worker gets the configuration it needs.
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
	for _, want := range []string{"postgres", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "worker-1", "worker-2"} {
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
	// The schema job uses the server's own release; the setup step is `cutover temporal setup`
	// (it registers internal/searchattr's list); the deprecated auto-setup image is gone.
	if img := doc.Services["temporal"].Image; !strings.HasPrefix(img, "temporalio/server:") {
		t.Errorf("temporal runs %q, want temporalio/server", img)
	}
	if !strings.Contains(strings.Join(doc.Services["temporal-schema"].Command, " "), "update-schema") {
		t.Errorf("temporal-schema does not set up the schema: %v", doc.Services["temporal-schema"].Command)
	}
	if setup := strings.Join(doc.Services["temporal-setup"].Command, " "); !strings.Contains(setup, "cutover temporal setup") {
		t.Errorf("temporal-setup runs %q, want cutover temporal setup", setup)
	}
	if strings.Contains(string(raw), "auto-setup") {
		t.Error("docker-compose.yml still uses the deprecated auto-setup image")
	}
	workers := 0
	served := map[taskqueue.Pool]int{} // workers per pool
	split := false
	for name := range doc.Services {
		if !strings.HasPrefix(name, "worker") {
			continue
		}
		workers++
		pools, err := taskqueue.ParsePools(fmt.Sprint(doc.Services[name].Environment["CUTOVER_TASK_QUEUES"]))
		if doc.Services[name].Environment["CUTOVER_TASK_QUEUES"] == nil {
			pools, err = taskqueue.All, nil
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, p := range pools {
			served[p]++
		}
		split = split || len(pools) < len(taskqueue.All)
		for _, v := range []string{"TEMPORAL_ADDRESS", "DATABASE_URL", "CUTOVER_VAULT_KEYS", "CUTOVER_METRICS_ADDR"} {
			if _, ok := doc.Services[name].Environment[v]; !ok {
				t.Errorf("%s environment lacks %s", name, v)
			}
		}
	}
	if workers < 2 {
		t.Errorf("%d worker services, want two (the failover topology)", workers)
	}
	// Every pool has two workers (a killed one's work moves on), and one worker shows a pool
	// scaled on its own.
	for _, p := range taskqueue.All {
		if served[p] < 2 {
			t.Errorf("%d worker services serve the %s pool, want two", served[p], p)
		}
	}
	if !split {
		t.Error("no worker service serves a single pool (CUTOVER_TASK_QUEUES)")
	}
	if _, err := os.Stat("Dockerfile"); err != nil {
		t.Errorf("worker builds from a Dockerfile: %v", err)
	}
}
