package dbcopy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Partition upkeep lives in the target as SQL functions, in the ledger schema, so the same code
// creates a month's partition during the load (createMonth), makes the table ready at cutover
// (PartitionsAhead: the DEFAULT partition and the months ahead), runs on the migration
// workflow's timer while the migration stays open, and runs from the operator's own scheduler
// once it is closed:
//
//	SELECT * FROM cutover.cutover_partitions_ahead('public.emails', 3);  -- monthly, e.g. from cron
//
// cutover_partitions_ahead(parent, months_ahead, from_time) gives a RANGE-partitioned table a
// DEFAULT partition and a partition for every month from from_time's (UTC) to months_ahead
// after it, named <table>_<yyyy>_<mm> (over 63 bytes: 54 bytes, '_', the FNV-1a hash, as
// ident63), moving rows that waited in the DEFAULT partition into their new month. It returns
// the partitions it created. Idempotent; serialised with the engine's own creations by the
// advisory lock on the table's quoted name.

// partitionFunctions is the SQL installing the functions into the ledger schema (quoted).
func partitionFunctions(ledger string) []string {
	r := strings.NewReplacer("LEDGER", ledger)
	return []string{r.Replace(`CREATE OR REPLACE FUNCTION LEDGER.cutover_ident63(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $fn$
DECLARE
  b bytea := convert_to(s, 'UTF8');
  h bigint := 2166136261;
BEGIN
  IF octet_length(b) <= 63 THEN
    RETURN s;
  END IF;
  FOR i IN 0 .. octet_length(b) - 1 LOOP
    h := ((h # get_byte(b, i)) * 16777619) & 4294967295;
  END LOOP;
  RETURN convert_from(substring(b FROM 1 FOR 54), 'UTF8') || '_' || lpad(to_hex(h), 8, '0');
END
$fn$`), r.Replace(`CREATE OR REPLACE FUNCTION LEDGER.cutover_create_month(parent regclass, month date) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  nsp text;
  tbl text;
  col text;
  def regclass;
  name text;
  lo text;
  hi text;
  moved bigint := 0;
BEGIN
  SELECT n.nspname, c.relname INTO nsp, tbl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent;
  SELECT a.attname, nullif(pt.partdefid, 0)::regclass INTO col, def FROM pg_partitioned_table pt
    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0] WHERE pt.partrelid = parent;
  IF col IS NULL THEN
    RAISE EXCEPTION '% is not a partitioned table', parent USING ERRCODE = 'wrong_object_type';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext(format('"%s"."%s"', replace(nsp, '"', '""'), replace(tbl, '"', '""'))));
  month := date_trunc('month', month)::date;
  name := LEDGER.cutover_ident63(tbl || '_' || to_char(month, 'YYYY_MM'));
  IF to_regclass(format('%I.%I', nsp, name)) IS NOT NULL THEN
    RETURN NULL;
  END IF;
  lo := to_char(month, 'YYYY-MM-DD');
  hi := to_char(month + interval '1 month', 'YYYY-MM-DD');
  BEGIN
    IF def IS NOT NULL THEN
      -- Out of the DEFAULT partition first (its delete trigger releases unique values the
      -- insert below claims again), then into the new month.
      DROP TABLE IF EXISTS pg_temp.cutover_moved;
      EXECUTE format('CREATE TEMP TABLE cutover_moved ON COMMIT DROP AS SELECT * FROM %s WHERE %I >= %L AND %I < %L',
        def, col, lo, col, hi);
      GET DIAGNOSTICS moved = ROW_COUNT;
      IF moved > 0 THEN
        EXECUTE format('DELETE FROM %s WHERE %I >= %L AND %I < %L', def, col, lo, col, hi);
      END IF;
    END IF;
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)', nsp, name, parent, lo, hi);
    IF moved > 0 THEN
      EXECUTE format('INSERT INTO %s SELECT * FROM pg_temp.cutover_moved', parent);
    END IF;
  EXCEPTION WHEN invalid_object_definition THEN -- the month is covered by a partition of another name
    RETURN NULL;
  END;
  RETURN name;
END
$fn$`), r.Replace(`CREATE OR REPLACE FUNCTION LEDGER.cutover_partitions_ahead(parent regclass, months_ahead integer DEFAULT 3,
  from_time timestamptz DEFAULT now()) RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
  nsp text;
  tbl text;
  name text;
  first date := date_trunc('month', from_time AT TIME ZONE 'UTC')::date;
BEGIN
  SELECT n.nspname, c.relname INTO nsp, tbl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent;
  PERFORM pg_advisory_xact_lock(hashtext(format('"%s"."%s"', replace(nsp, '"', '""'), replace(tbl, '"', '""'))));
  IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = parent AND partdefid <> 0) THEN
    name := LEDGER.cutover_ident63(tbl || '_default');
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s DEFAULT', nsp, name, parent);
    RETURN NEXT name;
  END IF;
  FOR i IN 0 .. months_ahead LOOP
    name := LEDGER.cutover_create_month(parent, (first + make_interval(months => i))::date);
    IF name IS NOT NULL THEN
      RETURN NEXT name;
    END IF;
  END LOOP;
END
$fn$`)}
}

// installPartitionFunctions puts the partition functions into the target's ledger schema
// (once per engine; CREATE OR REPLACE under an advisory lock, so workers do not race).
func (e *Engine) installPartitionFunctions(ctx context.Context) error {
	e.mu.Lock()
	done := e.partitionFns
	e.mu.Unlock()
	if done {
		return nil
	}
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('cutover partition functions'))`); err != nil {
			return err
		}
		for _, stmt := range partitionFunctions(spec.QuoteIdent(e.spec.Target.LedgerSchema)) {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("install the partition functions: %w", err)
	}
	e.mu.Lock()
	e.partitionFns = true
	e.mu.Unlock()
	return nil
}

// partitionFunction names one of the installed functions, schema-qualified.
func (e *Engine) partitionFunction(name string) string {
	return spec.QuoteIdent(e.spec.Target.LedgerSchema) + "." + name
}
