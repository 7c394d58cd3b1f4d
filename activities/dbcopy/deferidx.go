package dbcopy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// Secondary indexes of a target table that exists and is empty when an entity's first load
// starts are dropped for the load and built once after it: maintained row by row, a full-text
// GIN index (or any secondary index) costs the load more than one build over the loaded table.
// Their definitions are written to the ledger (deferred_indexes) in the transaction that drops
// them, and deleted in the transaction that builds each one again (Finalize, or a rollback),
// so a crash anywhere between leaves them recorded for the next Finalize or rollback.
//
// Deferred: valid, non-unique indexes that back no constraint, are not the replica identity
// nor the clustered index. Unique indexes stay: a duplicate must still fail its row (and be
// quarantined) as it is written. Tables the spec creates carry no secondary index during
// their first load anyway (Finalize builds the spec's).

// testHookIndexTx runs before the commit of the transaction that defers an entity's indexes
// (step "defer") and of each one that builds one again ("restore <name>"): tests crash there.
var testHookIndexTx func(ctx context.Context, tx pgx.Tx, step string) error

// deferredIndex is one recorded index.
type deferredIndex struct {
	schema, table, name, definition string
	tablespace, comment             *string
}

// deferIndexes drops the deferrable secondary indexes of an entity's target table when the
// table is empty, recording them first, all in one transaction under an exclusive lock (no
// row arrives between the check and the drop). It returns how many it deferred; a table with
// rows, or without such indexes, is left as it is.
func (e *Engine) deferIndexes(ctx context.Context, p *entityPlan) (int, error) {
	found, err := deferrableIndexes(ctx, e.pool, p.target)
	if err != nil || len(found) == 0 {
		return 0, err
	}
	n := 0
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+p.target+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return err
		}
		var empty bool
		if err := tx.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+p.target+")").Scan(&empty); err != nil {
			return err
		}
		if !empty {
			return nil
		}
		found, err := deferrableIndexes(ctx, tx, p.target) // again, under the lock
		if err != nil {
			return err
		}
		for _, ix := range found {
			if _, err := tx.Exec(ctx, `INSERT INTO deferred_indexes
				(migration_id, entity_name, schema_name, table_name, index_name, definition, tablespace, comment)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.opt.MigrationID, p.ent.Name, ix.schema, p.ent.TargetTable,
				ix.name, ix.definition, ix.tablespace, ix.comment); err != nil {
				return fmt.Errorf("record index %s: %w", ix.name, err)
			}
			if _, err := tx.Exec(ctx, "DROP INDEX "+spec.QuoteQualified(ix.schema, ix.name)); err != nil {
				return fmt.Errorf("drop index %s: %w", ix.name, err)
			}
			n++
		}
		if testHookIndexTx != nil {
			return testHookIndexTx(ctx, tx, "defer")
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("defer the indexes of %s: %w", p.ent.TargetTable, err)
	}
	if n > 0 {
		e.log.Info("secondary indexes dropped for the first load, built again after it", "migration_id",
			e.opt.MigrationID, "entity", p.ent.Name, "table", p.ent.TargetTable, "indexes", n)
	}
	return n, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// deferrableIndexes lists a table's deferrable indexes (see above) with the statement that
// builds each again: pg_get_indexdef's, made IF NOT EXISTS and, for a partitioned table's
// index (which pg_get_indexdef prints ON ONLY the parent), over every partition.
func deferrableIndexes(ctx context.Context, q querier, table string) ([]deferredIndex, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname, c.relname, quote_ident(c.relname), pg_get_indexdef(i.indexrelid),
		c.relkind = 'I', ts.spcname, obj_description(i.indexrelid, 'pg_class')
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
		WHERE i.indrelid = $1::regclass AND i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary
		AND NOT i.indisexclusion AND NOT i.indisreplident AND NOT i.indisclustered
		AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
		ORDER BY c.relname`, table)
	if err != nil {
		return nil, fmt.Errorf("indexes of %s: %w", table, err)
	}
	defer rows.Close()
	var out []deferredIndex
	for rows.Next() {
		var ix deferredIndex
		var quoted, def string
		var partitioned bool
		if err := rows.Scan(&ix.schema, &ix.name, &quoted, &def, &partitioned, &ix.tablespace, &ix.comment); err != nil {
			return nil, err
		}
		head := "CREATE INDEX " + quoted + " ON "
		rest, ok := strings.CutPrefix(def, head)
		if !ok {
			return nil, fmt.Errorf("index %s of %s: unexpected definition %q", ix.name, table, def)
		}
		if partitioned {
			rest = strings.TrimPrefix(rest, "ONLY ")
		}
		ix.definition = "CREATE INDEX IF NOT EXISTS " + quoted + " ON " + rest
		out = append(out, ix)
	}
	return out, rows.Err()
}

// restoreIndexes builds again the indexes recorded for an entity, each in its own transaction
// with the deletion of its record (a crash leaves the rest recorded), up to Writers at once; a
// partitioned table's on its partitions first, side by side (buildIndexes).
func (e *Engine) restoreIndexes(ctx context.Context, entity string) error {
	rows, err := e.pool.Query(ctx, `SELECT schema_name, table_name, index_name, definition, tablespace, comment
		FROM deferred_indexes WHERE migration_id = $1 AND entity_name = $2 ORDER BY index_name`, e.opt.MigrationID, entity)
	if err != nil {
		return fmt.Errorf("deferred indexes of %s: %w", entity, err)
	}
	var todo []deferredIndex
	for rows.Next() {
		var ix deferredIndex
		if err := rows.Scan(&ix.schema, &ix.table, &ix.name, &ix.definition, &ix.tablespace, &ix.comment); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, ix)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("deferred indexes of %s: %w", entity, err)
	}
	if len(todo) == 0 {
		return nil
	}
	builds, err := e.partitionBuilds(ctx, todo)
	if err != nil {
		return fmt.Errorf("build deferred indexes of %s again: %w", entity, err)
	}
	if err := e.runBuilds(ctx, builds, e.writers()); err != nil {
		return fmt.Errorf("build deferred indexes of %s again: %w", entity, err)
	}
	final := make([]indexBuild, len(todo))
	for i, ix := range todo {
		final[i] = indexBuild{sql: ix.definition, tablespace: ix.tablespace, gin: strings.Contains(ix.definition, " USING gin "),
			then: func(ctx context.Context, tx pgx.Tx) error {
				if ix.comment != nil {
					if _, err := tx.Exec(ctx, "COMMENT ON INDEX "+spec.QuoteQualified(ix.schema, ix.name)+" IS "+
						quoteLiteral(*ix.comment)); err != nil {
						return err
					}
				}
				if _, err := tx.Exec(ctx, `DELETE FROM deferred_indexes WHERE migration_id = $1 AND entity_name = $2
					AND index_name = $3`, e.opt.MigrationID, entity, ix.name); err != nil {
					return err
				}
				if testHookIndexTx != nil {
					return testHookIndexTx(ctx, tx, "restore "+ix.name)
				}
				return nil
			}}
	}
	if err := e.runBuilds(ctx, final, e.writers()); err != nil {
		return fmt.Errorf("build deferred indexes of %s again: %w", entity, err)
	}
	return nil
}

// partitionBuilds are the builds of recorded indexes of a partitioned table on each of its
// partitions (buildIndexes), to run before the indexes themselves, which then adopt them. An
// index whose definition does not read as CREATE INDEX IF NOT EXISTS name ON table tail (as
// deferrableIndexes wrote it, the table as this session prints it) is built whole.
func (e *Engine) partitionBuilds(ctx context.Context, todo []deferredIndex) ([]indexBuild, error) {
	var out []indexBuild
	for _, ix := range todo {
		table := spec.QuoteQualified(ix.schema, ix.table)
		parts, err := e.leafPartitions(ctx, table)
		if err != nil {
			return nil, err
		}
		if len(parts) == 0 {
			continue
		}
		var printed string
		if err := e.pool.QueryRow(ctx, `SELECT $1::regclass::text`, table).Scan(&printed); err != nil {
			return nil, err
		}
		tail, ok := strings.CutPrefix(ix.definition, "CREATE INDEX IF NOT EXISTS "+spec.QuoteIdent(ix.name)+" ON "+printed+" ")
		if !ok {
			continue
		}
		for _, p := range parts {
			out = append(out, indexBuild{sql: "CREATE INDEX IF NOT EXISTS " + spec.QuoteIdent(ident63(p.name, ix.name)) + " ON " +
				spec.QuoteQualified(p.schema, p.name) + " " + tail, tablespace: ix.tablespace, bytes: p.bytes,
				gin: strings.HasPrefix(tail, "USING gin ")})
		}
	}
	return out, nil
}

// indexBuildSettings bounds an index build by finalizeStatements rather than the session's
// statement timeout.
func indexBuildSettings(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", finalizeStatements.Milliseconds()))
	return err
}
