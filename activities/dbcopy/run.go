package dbcopy

import (
	"context"
	"fmt"
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
	// Next is where the following call continues.
	Next BatchRequest `json:"next"`
}

func (r *RunResult) add(b BatchResult) {
	r.Batches++
	r.Rows += int64(b.Rows)
	r.Loaded += int64(b.Loaded)
	r.Inserted += int64(b.Inserted)
	r.Failed += int64(b.Failed)
	r.Bytes += b.Bytes
	if b.MarkStart != "" {
		r.MarkStart = b.MarkStart
	}
}

// CopyBatches runs up to maxBatches batches from req (0 = until the entity is done), reading
// the next page while the current one is written. onBatch (may be nil) sees each committed
// batch; an error from it stops the run after that batch.
func (e *Engine) CopyBatches(ctx context.Context, req BatchRequest, maxBatches int, onBatch func(BatchResult) error) (RunResult, error) {
	p, err := e.plan(ctx, req.Entity)
	if err != nil {
		return RunResult{}, err
	}
	out := RunResult{Entity: req.Entity, Next: req}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		r := req
		for i := 0; maxBatches <= 0 || i < maxBatches; i++ {
			pg, err := e.readPage(rctx, p, r)
			pg.err = err
			select {
			case pages <- pg:
			case <-rctx.Done():
				return
			}
			if err != nil || !pg.full || len(pg.rows) == 0 {
				return
			}
			last := pg.rows[len(pg.rows)-1]
			r.After, _ = keyText(last[0])
			if r.Sync && p.markIdx >= 0 {
				r.Mark, _ = keyText(last[p.markIdx])
			}
			r.BatchNumber++
		}
	}()
	cur := req
	for pg := range pages {
		if pg.err != nil {
			return out, pg.err
		}
		var readLast string
		if len(pg.rows) > 0 {
			readLast, _ = keyText(pg.rows[len(pg.rows)-1][0])
		}
		res, err := e.writeBatch(ctx, p, cur, pg)
		if err != nil {
			return out, err
		}
		if res.Empty {
			out.Done = true
			break
		}
		out.add(res)
		cur.After, cur.Mark, cur.BatchNumber = res.LastKey, res.LastMark, cur.BatchNumber+1
		out.Next = cur
		out.Done = res.Done
		if onBatch != nil {
			if err := onBatch(res); err != nil {
				return out, err
			}
		}
		if res.Done {
			break
		}
		if res.Replayed && res.LastKey != readLast {
			return out, nil // the read-ahead followed the wrong key; the caller continues from Next
		}
	}
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("copy %s: %w", req.Entity, err)
	}
	return out, nil
}
