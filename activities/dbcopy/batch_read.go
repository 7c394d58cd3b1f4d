package dbcopy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/activities/dbcopy/source"
	"github.com/cutover/cutover/internal/packed"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

// page is a batch read from the source.
type page struct {
	rows      [][]any // nil once prep holds them (n and last remain)
	n         int     // rows read
	last      []any   // the last row read
	full      bool    // the page hit the limit: more may follow
	bytes     int64
	markStart string
	// markStartType is markStart's storage class (BatchRequest.MarkType).
	markStartType string
	err           error
	// prep is the page transformed and encoded ahead of its writer (CopyBatches' reader does
	// it, so writers spend their time on PostgreSQL); nil: the writer transforms.
	prep *transformed
}

// transformed is a page's rows transformed: the good ones encoded, the bad ones with why.
type transformed struct {
	good []prepared
	bad  []failure
	took time.Duration
	err  error
}

func (e *Engine) transformed(p *entityPlan, pg page) *transformed {
	start := time.Now()
	good, bad, err := e.transformPage(p, pg)
	return &transformed{good: good, bad: bad, took: time.Since(start), err: err}
}

// prepare transforms and encodes the page ahead of its writer and lets go of its source rows:
// an encoded row keeps only its source key, so a page in flight holds about half the memory
// (rows that fail later get their source row back by key: refetchSources).
func (e *Engine) prepare(p *entityPlan, pg *page) {
	pg.prep = e.transformed(p, *pg)
	for i := range pg.prep.good {
		r := &pg.prep.good[i]
		r.srcKey, r.src = p.rowKeyValue(r.src), nil
	}
	pg.rows = nil
}

// maxPageBytes bounds a page by the bytes of its source values, whatever the batch size says:
// a page's rows are held twice (source values and COPY tuples) by the reader and by each writer
// (Writers+1 pages per entity, two entities at once), so a batch size fit for narrow rows holds
// hundreds of MB of multi-KB rows (mail bodies, raw messages). The content check's pages
// (readAhead) are bounded the same way: a page held with its transformed rows, one read ahead.
const maxPageBytes = 8 << 20

// pageLimit is the number of rows to read for a page: the batch size, fewer when the rows read
// so far were wide enough that a page of that many would exceed maxPageBytes. Pages need not
// be the same on a retry: a batch committed once replays its recorded outcome.
func (p *entityPlan) pageLimit() int {
	limit := p.ent.BatchSize
	if avg := p.rowBytes.Load(); avg > 0 && int64(limit)*avg > maxPageBytes {
		limit = int(max(1, maxPageBytes/avg))
	}
	return limit
}

func (e *Engine) readPage(ctx context.Context, p *entityPlan, req dbmigrateapi.BatchRequest) (page, error) {
	limit := p.pageLimit()
	q := p.query()
	q.Limit = limit
	// The page is let go of whole once written (prepare keeps only the rows' keys, which are
	// texts of their own or values of the page's few arrays of numbers and short texts).
	q.Packed = true
	var pg page
	if req.After != "" {
		cursor := p.cursorArg
		if req.Sync {
			cursor = p.syncCursorArg
		}
		v, err := cursor(req.After, req.AfterType)
		if err != nil {
			return pg, fmt.Errorf("%w: %w", ErrSpec, err)
		}
		q.After = v
	}
	if req.Sync && p.markIdx >= 0 {
		q.Mark = p.ent.Incremental.Column
		if req.Mark != "" {
			v, err := p.markArg(req.Mark, req.MarkType)
			if err != nil {
				return pg, fmt.Errorf("%w: %w", ErrSpec, err)
			}
			q.AfterMark = v
		}
	}
	if !req.Sync && req.After == "" && p.markIdx >= 0 {
		// The first batch records the watermark's high-water: catch-up passes start there.
		m, err := p.src.Max(ctx, p.ent.SourceTable, p.ent.Incremental.Column, p.where...)
		if err != nil {
			return pg, err
		}
		pg.markStart, _ = keyText(m)
		pg.markStartType = p.markClass(m)
	}
	rows, err := p.src.Read(ctx, q)
	if err != nil {
		return pg, err
	}
	pg.full = len(rows) >= limit
	if pg.full && q.Mark == "" {
		// Keep every row of the last key in this batch: the next one starts after that key,
		// so a duplicated legacy key must not straddle two batches.
		last := p.rowKeyValue(rows[len(rows)-1])
		lastText, _ := p.rowKey(rows[len(rows)-1])
		cut := len(rows)
		for cut > 0 {
			if k, _ := p.rowKey(rows[cut-1]); k != lastText {
				break
			}
			cut--
		}
		eq := p.query()
		eq.Equal, eq.Packed = last, true
		same, err := p.src.Read(ctx, eq)
		if err != nil {
			return pg, err
		}
		rows = append(rows[:cut], same...)
	}
	pg.rows, pg.n = rows, len(rows)
	if len(rows) > 0 {
		// A copy: a row is a window on an array shared by thousands, which it would keep.
		pg.last = slices.Clone(rows[len(rows)-1])
	}
	pg.bytes = p.measure(rows)
	return pg, nil
}

// measure returns the source bytes of rows and records their average for pageLimit.
func (p *entityPlan) measure(rows [][]any) int64 {
	var n int64
	for _, r := range rows {
		n += rowBytes(r)
	}
	if len(rows) > 0 {
		p.rowBytes.Store(max(1, n/int64(len(rows))))
	}
	return n
}

// markArg is the value a catch-up read continues after: the watermark's text read back as a
// value of class (markClass), or by the column's declared type when class is "" (text that
// is no integer stays text, as checkpoints were read before they carried a class). A SQLite
// mark of another declared type whose text spells a number and that has no class was
// checkpointed before marks carried one (markClass names text that spells a number): it
// reads back as the number, which SQLite sorts before any text, so a pass re-reads (upserts)
// rows after the number rather than skip the integers and reals after it.
func (p *entityPlan) markArg(mark, class string) (any, error) {
	if class != "" {
		return classValue(mark, class)
	}
	if p.markInt {
		if v, err := source.KeyValue(mark, true); err == nil {
			return v, nil
		}
		return mark, nil
	}
	if v, num := numberOf(mark); num && p.src.Driver() == "sqlite" {
		return v, nil
	}
	return mark, nil
}

func rowBytes(r []any) int64 {
	var n int64
	for _, v := range r {
		switch x := v.(type) {
		case string:
			n += int64(len(x))
		case []byte:
			n += int64(len(x))
		case nil:
		default:
			n += 8
		}
	}
	return n
}

// transformPage transforms a page's rows and encodes the good ones as binary COPY tuples in
// one buffer, in read order: encoding walks the source values in the order they were
// allocated (sending rows sorted by key from their values was measured at twice the encoding
// cost), and a bisected batch re-sends tuples without encoding them again.
func (e *Engine) transformPage(p *entityPlan, pg page) ([]prepared, []failure, error) {
	good := make([]prepared, 0, len(pg.rows))
	var bad []failure
	m := typeMaps.Get().(*pgtype.Map)
	defer typeMaps.Put(m)
	buf := make([]byte, 0, pg.bytes+int64(len(pg.rows)*(2+4*len(p.cols)+16)))
	ends := make([]int, 0, len(pg.rows))
	values := make([]any, len(p.cols))
	// The rows' references, carved from one array (a row's own slice was one or two
	// allocations a row).
	nfk := 0
	for i := range p.build {
		if p.build[i].parent != nil {
			nfk++
		}
	}
	fks := make([]fkValue, 0, len(pg.rows)*nfk)
	// The keys' texts, the UUIDs and the times the rows get live as long as the page.
	var arena packed.Values
	for _, r := range pg.rows {
		clear(values)
		pr, rerr := e.transformIn(p, r, values, fks[len(fks):len(fks):len(fks)+nfk], &arena)
		fks = fks[:len(fks)+len(pr.fks)]
		pr.values = nil // reused for the next row
		if rerr != nil {
			bad = append(bad, failure{pr, rerr})
			continue
		}
		var err error
		if buf, err = appendTuple(buf, m, p.oids, values); err != nil {
			return nil, nil, fmt.Errorf("row %s: %w", pr.key, err)
		}
		ends = append(ends, len(buf))
		good = append(good, pr)
	}
	start := 0
	for i, end := range ends {
		good[i].tuple = buf[start:end:end]
		start = end
	}
	good, bad = splitDuplicates(p, good, bad)
	return good, bad, nil
}
