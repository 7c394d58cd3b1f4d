package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cutover/cutover/activities/dbcopy"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// TestFaultWorkflowResetResumesFromCheckpoint resets running migrations to earlier workflow
// tasks with client.ResetWorkflowExecution (what an operator does with `temporal workflow
// reset`), mid-entity:
//
//   - the EntityMigrationWorkflow of events, to the workflow task after a seeded random one of
//     its completed copy activities: the new run continues from that activity's cursor (its
//     checkpoint in the history), the batches committed since are replays, and the load
//     goes on from there;
//   - the DBMigrationWorkflow, to the workflow task that started the events child: the child
//     starts over from batch 0 and every batch committed before the reset is a replay.
//
// Either way no batch is copied twice — each batch record keeps the commit time it had before
// the reset, replays are recorded as such (and not as throughput) — and every row arrives once.
func TestFaultWorkflowResetResumesFromCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker and runs two migrations")
	}
	t.Parallel()
	srv := testenv.SharedTemporal(t)
	testenv.WorkerBinary(t) // compiled before anything is measured
	src := sqliteWorkload(t, t.TempDir(), 200, 10_000, 125)
	c := srv.Client(t)
	seed := testenv.Seeds(t, 1)[0]
	for i, target := range []string{"entity", "orchestration"} {
		t.Run("reset "+target, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			dbURL := testenv.NewDatabase(t)
			prepareTarget(t, dbURL)
			pool := newPool(t, dbURL)
			queue := fmt.Sprintf("dbfault-reset-%d", time.Now().UnixNano())
			startWorker(t, srv.Address(), dbURL, queue)
			cfg := fastConfig()
			cfg.ActivitiesPerRun = 1000 // the entity's whole load in one run, so there is an earlier task to go back to
			in := src.input(t, cfg)
			run := startMigration(t, c, queue, in)
			ctx := context.Background()
			childID := dbmigrateapi.WorkflowID(in.MigrationID) + "/events"

			// Mid-entity: several copy activities of events done, well before its end.
			threshold := int64(src.owners) + int64(float64(src.events)*(0.35+0.2*r.Float64()))
			testenv.WaitFor(t, fmt.Sprintf("%d rows committed", threshold), 3*time.Minute, func() bool {
				return processed(ctx, pool, in.MigrationID) >= threshold
			})
			var resetID, resetEvent string
			var eventID int64
			var from int64 // the first batch the new run asks for
			if target == "entity" {
				chunks := copyChunks(t, c, childID, "")
				if len(chunks) < 4 {
					t.Fatalf("only %d copy activities done at the reset point", len(chunks))
				}
				k := 1 + r.IntN(len(chunks)/2) // go back past at least half of them
				eventID = nextTaskCompleted(t, c, childID, chunks[k-1].completedID)
				resetID, from = childID, chunks[k-1].result.Run.Next.BatchNumber
				resetEvent = fmt.Sprintf("the workflow task after copy activity %d of %d (cursor at batch %d)", k, len(chunks), from)
			} else {
				eventID = childStartTask(t, c, dbmigrateapi.WorkflowID(in.MigrationID), childID)
				resetID, from = dbmigrateapi.WorkflowID(in.MigrationID), 0
				resetEvent = "the workflow task that started the events child"
			}
			before := batchTimes(t, pool, in.MigrationID, "events")
			resp, err := c.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
				Namespace: srv.Namespace(), WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: resetID},
				Reason: "fault test", WorkflowTaskFinishEventId: eventID, RequestId: uuid.NewString()})
			if err != nil {
				t.Fatalf("reset %s to event %d: %v", resetID, eventID, err)
			}
			t.Logf("seed %d: reset %s to %s (event %d) with %d events batches committed; new run %s",
				seed, target, resetEvent, eventID, len(before), resp.GetRunId())

			if target == "orchestration" {
				run = c.GetWorkflow(ctx, resetID, resp.GetRunId()) // the reset ended the run we started
			}
			awaitResult(t, run, 4*time.Minute)
			found := assertExactlyOnce(t, pool, src, in.MigrationID)

			// No batch committed before the reset was written again.
			after := batchTimes(t, pool, in.MigrationID, "events")
			for n, at := range before {
				if after[n] != at {
					t.Errorf("batch %d was committed at %s before the reset and at %s after", n, at, after[n])
				}
			}
			// The events child's run after the reset: it asked first for the batch after its
			// checkpoint, replayed what was already committed, and did not count replays as throughput.
			runID, since := "", int64(0) // the orchestration's reset started a new events child
			if target == "entity" {
				runID, since = resp.GetRunId(), eventID // the new run's history up to eventID is the old one's
			}
			var chunks []chunk
			for _, ch := range copyChunks(t, c, childID, runID) {
				if ch.completedID > since {
					chunks = append(chunks, ch)
				}
			}
			if len(chunks) == 0 {
				t.Fatal("no copy activity after the reset")
			}
			if got := chunks[0].request.Cursor.BatchNumber; got != from {
				t.Errorf("first copy after the reset asked for batch %d, want %d", got, from)
			}
			var replayed int
			for _, ch := range chunks {
				replayed += ch.result.Run.Replayed
				if ch.result.Run.Replayed == ch.result.Run.Batches && ch.result.Throughput != 0 {
					t.Errorf("a chunk of replays only reported %.0f rows/s", ch.result.Throughput)
				}
			}
			if want := len(before) - int(from); replayed < want {
				t.Errorf("%d batches replayed after the reset, want at least the %d committed past the cursor", replayed, want)
			}
			t.Logf("after the reset: %d copy activities, %d batches replayed (%d were committed past the cursor); rows missing %d, duplicated %d",
				len(chunks), replayed, len(before)-int(from), found.missing, found.duplicated)
		})
	}
}

// chunk is one completed DBCopyChunk of a history.
type chunk struct {
	completedID int64
	request     dbcopy.ChunkRequest
	result      dbcopy.ChunkResult
}

// dataConverter decodes payloads like the worker encodes them (CUTOVER_PAYLOAD_KEYS may be on).
func dataConverter(t *testing.T) converter.DataConverter {
	t.Helper()
	pc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return codec.DataConverter(pc)
}

func history(t *testing.T, c client.Client, workflowID, runID string) []*historypb.HistoryEvent {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		out = append(out, ev)
	}
	return out
}

// copyChunks decodes the completed DBCopyChunk activities of a run ("" = the latest), in order.
func copyChunks(t *testing.T, c client.Client, workflowID, runID string) []chunk {
	t.Helper()
	dc := dataConverter(t)
	inputs := map[int64]*commonpb.Payloads{}
	var out []chunk
	for _, ev := range history(t, c, workflowID, runID) {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "DBCopyChunk" {
			inputs[ev.GetEventId()] = a.GetInput()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
			in, ok := inputs[a.GetScheduledEventId()]
			if !ok {
				continue
			}
			ch := chunk{completedID: ev.GetEventId()}
			if err := dc.FromPayloads(in, &ch.request); err != nil {
				t.Fatal(err)
			}
			if err := dc.FromPayloads(a.GetResult(), &ch.result); err != nil {
				t.Fatal(err)
			}
			out = append(out, ch)
		}
	}
	return out
}

// nextTaskCompleted is the first WorkflowTaskCompleted event after event id.
func nextTaskCompleted(t *testing.T, c client.Client, workflowID string, after int64) int64 {
	t.Helper()
	for _, ev := range history(t, c, workflowID, "") {
		if ev.GetEventId() > after && ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			return ev.GetEventId()
		}
	}
	t.Fatalf("%s: no workflow task completed after event %d", workflowID, after)
	return 0
}

// childStartTask is the WorkflowTaskCompleted event whose commands started child childID.
func childStartTask(t *testing.T, c client.Client, workflowID, childID string) int64 {
	t.Helper()
	for _, ev := range history(t, c, workflowID, "") {
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil && a.GetWorkflowId() == childID {
			return a.GetWorkflowTaskCompletedEventId()
		}
	}
	t.Fatalf("%s never started %s", workflowID, childID)
	return 0
}

// batchTimes maps an entity's committed batch numbers to their commit times.
func batchTimes(t *testing.T, pool *pgxpool.Pool, migrationID, entity string) map[int64]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT b.batch_number, b.completed_at::text
		FROM cutover.batch_processing_status b JOIN cutover.entity_migration_status s ON s.id = b.entity_status_id
		WHERE s.migration_id = $1 AND s.entity_name = $2 AND b.status = 'completed'`, migrationID, entity)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var n int64
		var at string
		if err := rows.Scan(&n, &at); err != nil {
			t.Fatal(err)
		}
		out[n] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
