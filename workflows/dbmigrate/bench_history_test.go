package dbmigrate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// benchHistory prints a run's timeline as Temporal recorded it (CUTOVER_BENCH_HISTORY): for
// the orchestration and each entity's workflow (every run of its continue-as-new chain), each
// activity as scheduled(+wait to its start)–end, and each child workflow as started–closed, in
// seconds from start. The waits (schedule to start, task to task) are what the product adds
// around its work.
func benchHistory(ctx context.Context, b *testing.B, c client.Client, migrationID, runID string, start time.Time) {
	at := func(ev *historypb.HistoryEvent) float64 { return ev.GetEventTime().AsTime().Sub(start).Seconds() }
	var children []string
	line := func(name, workflowID, runID string) {
		var parts []string
		sched := map[int64]*historypb.HistoryEvent{}
		started := map[int64]*historypb.HistoryEvent{}
		childAt := map[string]float64{}
		for runID != "" {
			it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			next := ""
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					b.Fatalf("history of %s: %v", workflowID, err)
				}
				switch ev.GetEventType() {
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
					sched[ev.GetEventId()] = ev
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
					started[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()] = ev
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
					enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
					var id int64
					switch {
					case ev.GetActivityTaskCompletedEventAttributes() != nil:
						id = ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
					case ev.GetActivityTaskFailedEventAttributes() != nil:
						id = ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
					case ev.GetActivityTaskTimedOutEventAttributes() != nil:
						id = ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
					default:
						id = ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()
					}
					s := sched[id]
					if s == nil {
						continue
					}
					wait := 0.0
					if st := started[id]; st != nil {
						wait = at(st) - at(s)
					}
					typ := strings.TrimPrefix(s.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), "DB")
					parts = append(parts, fmt.Sprintf("%s %.2f(+%.2f)–%.2f", typ, at(s), wait, at(ev)))
				case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
					childAt[ev.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowId()] = at(ev)
				case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
					a := ev.GetChildWorkflowExecutionStartedEventAttributes()
					children = append(children, a.GetWorkflowExecution().GetWorkflowId()+" "+a.GetWorkflowExecution().GetRunId())
				case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
					id := ""
					if a := ev.GetChildWorkflowExecutionCompletedEventAttributes(); a != nil {
						id = a.GetWorkflowExecution().GetWorkflowId()
					} else {
						id = ev.GetChildWorkflowExecutionFailedEventAttributes().GetWorkflowExecution().GetWorkflowId()
					}
					parts = append(parts, fmt.Sprintf("child %s %.2f–%.2f", id[strings.LastIndexByte(id, '/')+1:], childAt[id], at(ev)))
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
					next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
					parts = append(parts, fmt.Sprintf("continued-as-new %.2f", at(ev)))
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
					parts = append(parts, fmt.Sprintf("end %.2f", at(ev)))
				}
			}
			runID = next
		}
		benchLog("history %s: %s", name, strings.Join(parts, "; "))
	}
	line("migration", dbmigrateapi.WorkflowID(migrationID), runID)
	for _, ch := range children {
		wid, rid, _ := strings.Cut(ch, " ")
		line(wid[strings.LastIndexByte(wid, '/')+1:], wid, rid)
	}
}
