package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// RunResult sums up consecutive batches.
type RunResult struct {
	Entity    string `json:"entity"`
	Batches   int    `json:"batches"`
	Rows      int64  `json:"rows"`
	Loaded    int64  `json:"loaded"`
	Inserted  int64  `json:"inserted"`
	Failed    int64  `json:"failed"`
	Bytes     int64  `json:"bytes"`
	Done      bool   `json:"done"`
	MarkStart string `json:"mark_start,omitempty"`
	// MarkStartType is MarkStart's storage class (BatchRequest.MarkType).
	MarkStartType string `json:"mark_start_type,omitempty"`
	// Replayed counts the batches (and their rows) that were already committed — a retry after
	// a crash or a workflow reset re-asking for them — and so were not copied again.
	Replayed     int   `json:"replayed,omitempty"`
	ReplayedRows int64 `json:"replayed_rows,omitempty"`
	// Next is where the following call continues.
	Next dbmigrateapi.BatchRequest `json:"next"`
}

func (r *RunResult) add(b BatchResult) {
	r.Batches++
	r.Rows += int64(b.Rows)
	r.Loaded += int64(b.Loaded)
	r.Inserted += int64(b.Inserted)
	r.Failed += int64(b.Failed)
	r.Bytes += b.Bytes
	if b.MarkStart != "" {
		r.MarkStart, r.MarkStartType = b.MarkStart, b.MarkStartType
	}
	if b.Replayed {
		r.Replayed++
		r.ReplayedRows += int64(b.Rows)
	}
}

// merge appends the result of a run that continued from r.Next.
func (r *RunResult) merge(o RunResult) {
	r.Batches += o.Batches
	r.Rows += o.Rows
	r.Loaded += o.Loaded
	r.Inserted += o.Inserted
	r.Failed += o.Failed
	r.Bytes += o.Bytes
	if o.MarkStart != "" {
		r.MarkStart, r.MarkStartType = o.MarkStart, o.MarkStartType
	}
	r.Replayed += o.Replayed
	r.ReplayedRows += o.ReplayedRows
	r.Done, r.Next = o.Done, o.Next
}

// errStopped tells a writer an earlier batch failed or ended the run.
var errStopped = errors.New("an earlier batch of this run did not commit")

// job is one page on its way through a writer.
type job struct {
	req      dbmigrateapi.BatchRequest
	pg       page
	readLast string
	lastType string // readLast's storage class (BatchRequest.AfterType)
	done     chan struct{}
	res      BatchResult
	err      error
	stop     bool // later batches must not commit (failure, or a replay that ended elsewhere)
	// months are the partitions the page needs that did not exist when it was read.
	months []time.Time
}

// writers is how many batches of an entity are written at once (Options.Writers, default 2).
func (e *Engine) writers() int {
	if e.opt.Writers > 0 {
		return e.opt.Writers
	}
	return 2
}

// CopyBatches runs up to maxBatches batches from req (0 = until the entity is done): one
// goroutine reads and transforms ahead, Writers goroutines (default 2) write pages
// concurrently on their own connections and commit in batch order. onBatch (may be nil) sees
// each committed batch in order; an error from it stops the run after that batch. At most
// Writers+1 pages are in memory.
func (e *Engine) CopyBatches(ctx context.Context, req dbmigrateapi.BatchRequest, maxBatches int, onBatch func(BatchResult) error) (RunResult, error) {
	p, err := e.plan(ctx, req.Entity)
	if err != nil {
		return RunResult{}, err
	}
	if req.BatchNumber == 0 && !req.Sync && !e.upsertOnExisting() {
		// The entity's first load starts: an existing empty table's secondary indexes wait for
		// its end (deferidx.go).
		if _, err := e.deferIndexes(ctx, p); err != nil {
			return RunResult{}, err
		}
	}
	writers := e.writers()
	if p.sequential.Load() {
		writers = 1
	}
	out, err := e.copyRun(ctx, p, req, maxBatches, writers, onBatch)
	var pgErr *pgconn.PgError
	if err == nil || writers == 1 || !errors.As(err, &pgErr) || pgErr.Code != "55P03" || ctx.Err() != nil {
		return out, err
	}
	// Concurrent writers waited on each other: a value unique in the target sits in two
	// neighbouring batches and the later one inserted it first, then waited for the earlier
	// one's commit. The lock timeout broke the wait; nothing after out.Next committed, so the
	// run goes on from there one batch at a time (p.sequential keeps it so).
	e.log.Info("concurrent batches collided on a unique value; continuing one batch at a time",
		"entity", req.Entity, "batch", out.Next.BatchNumber)
	rest := 0
	if maxBatches > 0 {
		if rest = maxBatches - out.Batches; rest <= 0 {
			return out, nil
		}
	}
	more, err := e.copyRun(ctx, p, out.Next, rest, 1, onBatch)
	out.merge(more)
	return out, err
}

// partitionBarrier creates the months a page needs that still have no partition, after every
// job in flight is done, so no batch of this run holds the table while the creation waits for it.
func (e *Engine) partitionBarrier(ctx context.Context, p *entityPlan, months []time.Time, inflight []*job) error {
	if len(months) == 0 {
		return nil
	}
	e.mu.Lock()
	months = slices.DeleteFunc(slices.Clone(months), func(m time.Time) bool { return e.partitions[monthPartition(p.ent, m)] })
	e.mu.Unlock()
	if len(months) == 0 {
		return nil
	}
	for _, o := range inflight {
		select {
		case <-o.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return e.createPartitions(ctx, p.ent, months)
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// copyRun is CopyBatches with a given number of writers.
func (e *Engine) copyRun(ctx context.Context, p *entityPlan, req dbmigrateapi.BatchRequest, maxBatches, writers int, onBatch func(BatchResult) error) (RunResult, error) {
	out := RunResult{Entity: req.Entity, Next: req}
	rctx, cancel := context.WithCancel(ctx)
	// Every goroutine of this run ends before it returns: a writer still rolling back would
	// hold its row locks against the batch a caller retries next (the one-writer fallback).
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	// Unbuffered: the reader keeps its next page until a writer slot is free.
	pages := make(chan *job)
	wg.Add(2)   // the reader and the dispatcher; the dispatcher adds its writers
	go func() { // reader
		defer wg.Done()
		defer close(pages)
		r := req
		for i := 0; maxBatches <= 0 || i < maxBatches; i++ {
			pg, err := e.readPage(rctx, p, r)
			pg.err = err
			var months []time.Time
			if err == nil && pg.n > 0 {
				e.prepare(p, &pg)
				months, pg.err = e.missingPartitions(rctx, p, pg.prep.good)
				err = pg.err
			}
			j := &job{req: r, pg: pg, done: make(chan struct{}), months: months}
			if pg.n > 0 {
				j.readLast, _ = p.rowKey(pg.last)
				j.lastType = p.keyClass(pg.last)
			}
			select {
			case pages <- j:
			case <-rctx.Done():
				return
			}
			if err != nil || !pg.full || pg.n == 0 {
				return
			}
			r.After, r.AfterType = j.readLast, j.lastType
			if r.Sync && p.markIdx >= 0 {
				r.Mark, _ = keyText(pg.last[p.markIdx])
				r.MarkType = p.markClass(pg.last[p.markIdx])
			}
			r.BatchNumber++
		}
	}()

	jobs := make(chan *job, writers)
	go func() { // dispatcher: one writer goroutine per page, at most `writers` at once
		defer wg.Done()
		defer close(jobs)
		sem := make(chan struct{}, writers)
		var prev *job
		var inflight []*job // dispatched and not yet done
		for {
			// A writer slot first, then the page: a ready page waits in the reader, not here.
			select {
			case sem <- struct{}{}:
			case <-rctx.Done():
				return
			}
			var j *job
			select {
			case next, ok := <-pages:
				if !ok {
					return
				}
				j = next
			case <-rctx.Done():
				return
			}
			if j.pg.err == nil {
				// A new month: every writer of this run ends its transaction before the partition
				// is created (the lock order in partitions.go), then the pages go on.
				j.pg.err = e.partitionBarrier(rctx, p, j.months, inflight)
			}
			inflight = slices.DeleteFunc(inflight, func(o *job) bool { return closed(o.done) })
			inflight = append(inflight, j)
			before := prev
			turn := func() error {
				if before == nil {
					return nil
				}
				select {
				case <-before.done:
				case <-rctx.Done():
					return rctx.Err()
				}
				if before.err != nil || before.stop {
					return errStopped
				}
				return nil
			}
			wg.Add(1)
			go func(j *job) {
				defer wg.Done()
				defer func() { <-sem }()
				defer close(j.done)
				if j.pg.err != nil {
					j.err, j.stop = j.pg.err, true
					return
				}
				if before != nil {
					select {
					case <-before.done:
						if before.err != nil || before.stop {
							// An earlier batch failed before this one started: do not write at all.
							j.err, j.stop = errStopped, true
							return
						}
					default:
						// Still being written: write alongside it; turn orders the commits.
						// (This waited for it, which left one writer busy whatever Writers said.)
					}
				}
				j.res, j.err = e.writeBatch(rctx, p, j.req, j.pg, turn)
				if j.err != nil {
					e.recordBatchFailure(rctx, p, j.req, j.pg.n, j.err)
				}
				j.pg = page{} // written: its rows may go before the results are collected
				if j.err != nil {
					j.stop = true
					var pgErr *pgconn.PgError
					if errors.As(j.err, &pgErr) && pgErr.Code == "55P03" {
						p.sequential.Store(true) // writers collided on a unique value: one at a time from now on
					}
					return
				}
				if j.res.Replayed && (j.res.LastKey != j.readLast || j.res.LastKeyType != j.lastType) {
					j.stop = true // the read-ahead followed the wrong key; the caller continues from Next
				}
			}(j)
			select {
			case jobs <- j:
			case <-rctx.Done():
				return
			}
			prev = j
		}
	}()

	for j := range jobs { // results, in batch order
		<-j.done
		if j.err != nil {
			if errors.Is(j.err, errStopped) {
				break
			}
			cancel()
			return out, j.err
		}
		res := j.res
		if res.Empty {
			out.Done = true
			break
		}
		out.add(res)
		out.Next = dbmigrateapi.BatchRequest{Entity: req.Entity, Sync: req.Sync, After: res.LastKey, AfterType: res.LastKeyType,
			Mark: res.LastMark, MarkType: res.LastMarkType, BatchNumber: j.req.BatchNumber + 1}
		out.Done = res.Done
		if onBatch != nil {
			if err := onBatch(res); err != nil {
				cancel()
				return out, err
			}
		}
		if res.Done || j.stop {
			break
		}
	}
	cancel()
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("copy %s: %w", req.Entity, err)
	}
	return out, nil
}
