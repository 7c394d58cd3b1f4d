package workerapp

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cutover/cutover/internal/taskqueue"
)

// TestConfigFromEnvPools: CUTOVER_TASK_QUEUES picks the pools (all by default) and each pool's
// concurrency limit falls back to CUTOVER_MAX_ACTIVITIES.
func TestConfigFromEnvPools(t *testing.T) {
	type got struct {
		Pools               []taskqueue.Pool
		Max, MaxMail, MaxDB int
		Err                 bool
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want got
	}{
		{name: "default", want: got{Pools: taskqueue.All}},
		{name: "mail pool", env: map[string]string{"CUTOVER_TASK_QUEUES": "mail", "CUTOVER_MAX_MAIL_ACTIVITIES": "16"},
			want: got{Pools: []taskqueue.Pool{taskqueue.Mail}, MaxMail: 16}},
		{name: "workflows and db", env: map[string]string{"CUTOVER_TASK_QUEUES": "workflows,db", "CUTOVER_MAX_ACTIVITIES": "50",
			"CUTOVER_MAX_DB_ACTIVITIES": "4"}, want: got{Pools: []taskqueue.Pool{taskqueue.Workflows, taskqueue.DB}, Max: 50, MaxDB: 4}},
		{name: "unknown pool", env: map[string]string{"CUTOVER_TASK_QUEUES": "imap"}, want: got{Err: true}},
		{name: "bad limit", env: map[string]string{"CUTOVER_MAX_DB_ACTIVITIES": "-1"}, want: got{Pools: taskqueue.All, Err: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"CUTOVER_TASK_QUEUES", "CUTOVER_MAX_ACTIVITIES", "CUTOVER_MAX_MAIL_ACTIVITIES", "CUTOVER_MAX_DB_ACTIVITIES"} {
				t.Setenv(k, tc.env[k])
			}
			cfg, err := ConfigFromEnv()
			g := got{Pools: cfg.Pools, Max: cfg.MaxActivities, MaxMail: cfg.MaxMailActivities, MaxDB: cfg.MaxDBActivities, Err: err != nil}
			if diff := cmp.Diff(tc.want, g); diff != "" {
				t.Errorf("(-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

// TestPoolOptions: the mail and db pools poll activities only, each with its own limit.
func TestPoolOptions(t *testing.T) {
	cfg := Config{MaxActivities: 50, MaxMailActivities: 16}
	type opts struct {
		NoWorkflows bool
		MaxActs     int
	}
	got := map[taskqueue.Pool]opts{}
	for _, p := range taskqueue.All {
		o := poolOptions(cfg, p)
		got[p] = opts{NoWorkflows: o.DisableWorkflowWorker, MaxActs: o.MaxConcurrentActivityExecutionSize}
	}
	want := map[taskqueue.Pool]opts{taskqueue.Workflows: {MaxActs: 50}, taskqueue.Mail: {NoWorkflows: true, MaxActs: 16},
		taskqueue.DB: {NoWorkflows: true, MaxActs: 50}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("options per pool (-want +got):\n%s", diff)
	}
}

// names records what a pool registers: workflow names and activity method names.
type names struct {
	worker.Registry // only the two methods below are called
	workflows, acts []string
}

func (n *names) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	n.workflows = append(n.workflows, o.Name)
}

func (n *names) RegisterActivityWithOptions(a any, _ activity.RegisterOptions) {
	typ := reflect.TypeOf(a)
	for i := range typ.NumMethod() {
		n.acts = append(n.acts, typ.Method(i).Name)
	}
}

// TestPoolRegistrations: a mail worker can run only the IMAP engine's activities, a db worker
// only the database engine's, neither a workflow; the workflows pool runs every workflow and
// every activity (the mail and db ones only for runs started before the pools split).
func TestPoolRegistrations(t *testing.T) {
	reg := map[taskqueue.Pool]*names{}
	for _, p := range taskqueue.All {
		reg[p] = &names{}
		registerPool(reg[p], p, Deps{})
	}
	if diff := cmp.Diff([]string{"PreflightMailbox", "SyncMailbox", "VerifyMailbox"}, reg[taskqueue.Mail].acts); diff != "" {
		t.Errorf("mail pool activities (-want +got):\n%s", diff)
	}
	for _, a := range reg[taskqueue.DB].acts {
		if !strings.HasPrefix(a, "DB") {
			t.Errorf("db pool registers %s", a)
		}
	}
	if len(reg[taskqueue.DB].acts) < 10 {
		t.Errorf("db pool registers %d activities: %v", len(reg[taskqueue.DB].acts), reg[taskqueue.DB].acts)
	}
	for _, p := range []taskqueue.Pool{taskqueue.Mail, taskqueue.DB} {
		if len(reg[p].workflows) > 0 {
			t.Errorf("%s pool registers workflows %v", p, reg[p].workflows)
		}
	}
	all := reg[taskqueue.Workflows].acts
	for _, p := range []taskqueue.Pool{taskqueue.Mail, taskqueue.DB} {
		for _, a := range reg[p].acts {
			if !slices.Contains(all, a) {
				t.Errorf("workflows pool lacks %s (a run started before the split schedules it there)", a)
			}
		}
	}
	if len(reg[taskqueue.Workflows].workflows) < 5 {
		t.Errorf("workflows pool registers workflows %v", reg[taskqueue.Workflows].workflows)
	}
}
