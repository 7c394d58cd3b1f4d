package dbcopy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// comparison is what comparing source rows with the target rows of the same keys found. The
// key lists are complete (a delta validation re-checks every one of them); the full content
// check keeps counts and the first keys of each kind.
type comparison struct {
	validated int64
	matched   int64    // source rows whose target row was found
	differ    []string // every key found wrong, of any kind below
	missing   []string // source rows without their target row
	gone      []string // target rows whose source row is gone
	changed   []string // target rows that do not hold what their source row says
	broken    []string // source rows the transformation refuses, yet not quarantined
	columns   map[string]int64
	samples   []string
}

// add merges o into c, keeping at most keep keys of each kind (0: all).
func (c *comparison) add(o comparison, keep int) {
	c.validated += o.validated
	c.matched += o.matched
	app := func(dst *[]string, src []string) {
		for _, k := range src {
			if keep > 0 && len(*dst) >= keep {
				return
			}
			*dst = append(*dst, k)
		}
	}
	app(&c.differ, o.differ)
	app(&c.missing, o.missing)
	app(&c.gone, o.gone)
	app(&c.changed, o.changed)
	app(&c.broken, o.broken)
	for col, n := range o.columns {
		if c.columns == nil {
			c.columns = map[string]int64{}
		}
		c.columns[col] += n
	}
	for _, s := range o.samples {
		c.samples = appendSample(c.samples, s)
	}
}

// compareRows compares source rows (and keys gone from the source) with the target rows of
// the same keys (read by query: contentQuery), value by value against what each source value
// says (verify.go). Keys with open errors (quarantined) are not expected in the target.
//
// A target row is compared on its raw column bytes first (sameRow): no value is decoded but
// where a column needs it, and no source row goes through the whole transformation (its
// derived columns alone are computed). Only a row that fails there is compared again as it
// always was — the source row transformed, the target row decoded, every column named that
// differs — so the findings are those of the value-by-value comparison. A source row the
// transformation refuses is found so when it is missing from the target or its target row
// differs.
func (e *Engine) compareRows(ctx context.Context, p *entityPlan, query string, rows [][]any, gone []string, errored map[string]bool) (comparison, error) {
	c := comparison{columns: map[string]int64{}}
	type want struct {
		key    string
		src    []any
		values []any // the transformed row, when it was needed
		found  bool
	}
	wants := make([]want, 0, len(rows))
	byKey := newKeyIndex(len(rows)) // by the target key
	var args []pgtype.UUID          // the target keys (UUID keys)
	var texts []string              // the legacy keys (other keys)
	uuidKeys := p.ent.Key.Mode == spec.KeyModeUUID
	add := func(ck rowKey, k string) {
		if uuidKeys {
			args = append(args, pgtype.UUID{Bytes: ck.uuid, Valid: true})
		} else {
			texts = append(texts, k)
		}
	}
	broken := func(k string, rerr *rowError) {
		c.differ, c.broken = append(c.differ, k), append(c.broken, k)
		c.samples = appendSample(c.samples, fmt.Sprintf("key %s: fails to transform (%v) but is not quarantined", k, rerr))
	}
	for _, r := range rows {
		k, _ := p.rowKey(r)
		if errored[k] {
			continue
		}
		ck, ok := p.contentKey(r, k)
		var values []any
		if !ok {
			pr, rerr := e.transform(p, r)
			if rerr != nil {
				broken(k, rerr)
				continue
			}
			ck, values = keyOf(p.types[0], pr.values[0]), pr.values
		}
		if _, dup := byKey.get(ck); dup {
			continue
		}
		byKey.put(ck, int32(len(wants)))
		wants = append(wants, want{key: k, src: r, values: values})
		add(ck, k)
	}
	c.validated = int64(len(wants))
	goneSet := map[rowKey]string{}
	for _, k := range gone {
		if errored[k] {
			continue
		}
		c.validated++
		ck := keyOf(p.types[0], targetKeyValue(p, k))
		if _, dup := goneSet[ck]; dup {
			continue
		}
		if _, dup := byKey.get(ck); dup {
			continue
		}
		goneSet[ck] = k
		add(ck, k)
	}
	if len(args) == 0 && len(texts) == 0 {
		return c, nil
	}
	var keys any = args
	if !uuidKeys {
		keys = distinct(texts)
	}
	trs, err := e.pool.Query(ctx, query, keys)
	if err != nil {
		return c, err
	}
	defer trs.Close()
	fds, m := trs.FieldDescriptions(), trs.Conn().TypeMap()
	for trs.Next() {
		raw := trs.RawValues()
		ck, err := p.targetRowKey(m, fds, raw)
		if err != nil {
			return c, err
		}
		if k, ok := goneSet[ck]; ok {
			c.differ, c.gone = append(c.differ, k), append(c.gone, k)
			c.samples = appendSample(c.samples, "key "+k+": deleted in the source, still in the target")
			continue
		}
		i, ok := byKey.get(ck)
		if !ok {
			continue
		}
		w := &wants[i]
		w.found = true
		c.matched++
		if p.sameRow(m, fds, w.src, w.values, raw) {
			continue
		}
		if w.values == nil {
			pr, rerr := e.transform(p, w.src)
			if rerr != nil {
				// As a row refused up front: neither validated nor matched (so counted extra too).
				c.validated, c.matched = c.validated-1, c.matched-1
				broken(w.key, rerr)
				continue
			}
			w.values = pr.values
		}
		vals, err := decodeRow(m, fds, raw)
		if err != nil {
			return c, err
		}
		if cols := differingColumns(p, w.src, prepared{values: w.values}, vals); len(cols) > 0 {
			c.differ, c.changed = append(c.differ, w.key), append(c.changed, w.key)
			for _, col := range cols {
				c.columns[col]++
			}
			c.samples = appendSample(c.samples, fmt.Sprintf("key %s: %s not what the source says", w.key, strings.Join(cols, ", ")))
		}
	}
	trs.Close()
	if err := trs.Err(); err != nil {
		return c, err
	}
	var absent []string
	for i := range wants {
		w := &wants[i]
		if w.found {
			continue
		}
		if w.values == nil {
			if _, rerr := e.transform(p, w.src); rerr != nil {
				c.validated--
				broken(w.key, rerr)
				continue
			}
		}
		absent = append(absent, w.key)
	}
	sort.Strings(absent)
	for _, k := range absent {
		c.differ, c.missing = append(c.differ, k), append(c.missing, k)
		c.samples = appendSample(c.samples, "key "+k+": missing in target")
	}
	return c, nil
}

// rowKey is a row's target key as the content check matches source and target rows by: a
// UUID's bytes, else the key's canonical text (canon). Equal exactly when the canonical texts
// are (a UUID's canonical text is its lowercase hyphenated form, and a text that is one is
// keyed by its bytes too), without formatting every UUID key of both sides as text.
type rowKey struct {
	uuid [16]byte
	text string
}

func keyOf(typ string, v any) rowKey {
	if typ == "uuid" {
		if b, ok := uuidBytes(v); ok {
			return rowKey{uuid: b}
		}
		if s, ok := v.(string); ok && len(s) == 36 {
			if u, err := uuid.Parse(s); err == nil && u.String() == strings.ToLower(s) {
				return rowKey{uuid: u}
			}
		}
	}
	return rowKey{text: canon(typ, v)}
}

// contentQuery reads the target rows of some keys ($1: targetKeys, no key twice) as the
// content check compares them: one probe of the target's key index per key, in a LATERAL
// subquery PostgreSQL cannot flatten (OFFSET 0), so the plan is the same for every page. As a
// plain join of the keys to the table, a page of 10,000 keys was planned, once the table had
// statistics, as a hash join over a scan of the whole table, hashed again (and spilled to
// disk) for every page: quadratic in the table's rows (the clinic's 325,000 profiles: 0.2–0.5 s
// a page, 7 s in all, against about 0.05 s a page probing); "key = ANY($1)" was planned as the
// same scan. Without an index on the key the probes would each scan the table: there the join
// stays, one scan per page.
func (e *Engine) contentQuery(ctx context.Context, p *entityPlan) (string, error) {
	indexed, err := keyIndexed(ctx, e.pool, p.target, p.ent.Key.Target)
	if err != nil {
		return "", err
	}
	return contentQuerySQL(p, indexed), nil
}

// keyIndexed says whether a valid, non-partial B-tree or hash index of table leads with
// column: whether looking keys up one by one (an index probe each) beats one scan of the table.
func keyIndexed(ctx context.Context, q querier, table, column string) (bool, error) {
	rs, err := q.Query(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_am a ON a.oid = c.relam
		WHERE i.indrelid = $1::regclass AND i.indisvalid AND i.indpred IS NULL AND a.amname IN ('btree', 'hash')
		  AND i.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped))`,
		table, column)
	if err != nil {
		return false, fmt.Errorf("indexes of %s: %w", table, err)
	}
	indexed, err := pgx.CollectExactlyOneRow(rs, pgx.RowTo[bool])
	if err != nil {
		return false, fmt.Errorf("indexes of %s: %w", table, err)
	}
	return indexed, nil
}

// contentQuerySQL is contentQuery's statement: indexed says the target's key leads an index.
func contentQuerySQL(p *entityPlan, indexed bool) string {
	keys, match := "unnest($1::uuid[]) AS k(id)", "t."+spec.QuoteIdent(p.ent.Key.Target)+" = k.id"
	if p.ent.Key.Mode != spec.KeyModeUUID {
		keys, match = "unnest($1::text[]) AS k(id)", match+"::"+p.types[0]
	}
	if !indexed {
		return fmt.Sprintf(`SELECT %s FROM %s JOIN %s t ON %s`, contentSelect(p, "t."), keys, p.target, match)
	}
	return fmt.Sprintf(`SELECT t.* FROM %s CROSS JOIN LATERAL (SELECT %s FROM %s t WHERE %s OFFSET 0) t`,
		keys, contentSelect(p, "t."), p.target, match)
}

// distinct is keys without repeats, in their first order.
func distinct(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
