package dbcopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// ErrApprovalRequired is returned for a critical operation nobody approved.
var ErrApprovalRequired = errors.New("critical schema change needs an approval")

var riskRank = map[model.RiskLevel]int{model.RiskLow: 0, model.RiskMedium: 1, model.RiskHigh: 2, model.RiskCritical: 3}

// assessRisk rates an operation: dropping data is critical, rewriting a column high, adding
// or copying low. The spec may raise the level, never lower it.
func assessRisk(op spec.SchemaOp) model.RiskLevel {
	r := model.RiskLow
	switch op.Type {
	case "drop_column":
		r = model.RiskCritical
	case "modify_column":
		r = model.RiskHigh
	}
	if s := model.RiskLevel(op.Risk); op.Risk != "" && riskRank[s] > riskRank[r] {
		r = s
	}
	return r
}

// SchemaOpID is the ledger id of a named operation of this migration.
func (e *Engine) SchemaOpID(name string) uuid.UUID {
	return uuid.NewSHA1(e.opt.MigrationID, []byte("schema-op/"+name))
}

func (e *Engine) schemaOpSpec(name string) (spec.SchemaOp, error) {
	for _, op := range e.spec.SchemaOps {
		if op.Name == name {
			return op, nil
		}
	}
	return spec.SchemaOp{}, fmt.Errorf("%w: no schema operation %q", ErrSpec, name)
}

// liveColumn is a column as the catalog describes it.
type liveColumn struct {
	typ     string // format_type with modifiers
	notNull bool
	def     *string
}

func (e *Engine) liveColumn(ctx context.Context, q store.Querier, table, col string) (*liveColumn, error) {
	var c liveColumn
	err := q.QueryRow(ctx, `SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = $1::regclass AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
		e.qualified(table), col).Scan(&c.typ, &c.notNull, &c.def)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("column %s.%s: %w", table, col, err)
	}
	return &c, nil
}

func (e *Engine) primaryKey(ctx context.Context, table string) ([]string, error) {
	rows, err := e.pool.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY a.attnum`, e.qualified(table))
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%w: table %s has no primary key to restore a backup by", ErrSpec, table)
	}
	return cols, nil
}

// PlanSchemaOp renders the operation's SQL, rollback SQL and backup table from the live schema,
// assesses its risk and records it (pending) in schema_change_operations. Idempotent: a
// recorded operation is returned as stored.
func (e *Engine) PlanSchemaOp(ctx context.Context, name string) (store.SchemaOp, error) {
	id := e.SchemaOpID(name)
	if op, err := e.ledger.GetSchemaOp(ctx, id); err == nil {
		return op, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.SchemaOp{}, err
	}
	so, err := e.schemaOpSpec(name)
	if err != nil {
		return store.SchemaOp{}, err
	}
	q := spec.QuoteIdent
	table := e.qualified(so.Table)
	col := q(so.Column)
	backup := ident63("bak", so.Table, orDefault(so.Column, "all"), strings.ReplaceAll(id.String()[:8], "-", ""))
	backupQ := spec.QuoteQualified(e.spec.Target.LedgerSchema, backup)
	op := store.SchemaOp{ID: id, MigrationID: e.opt.MigrationID, OperationType: model.SchemaOpType(so.Type),
		TableName: so.Table, RiskLevel: assessRisk(so)}
	if so.Column != "" {
		c := so.Column
		op.ColumnName = &c
	}
	restore := func(live *liveColumn, pk []string) string {
		conds := make([]string, len(pk))
		sel := make([]string, len(pk))
		for i, k := range pk {
			conds[i] = fmt.Sprintf("t.%s = b.%s", q(k), q(k))
			sel[i] = q(k)
		}
		s := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;\nUPDATE %s t SET %s = b.%s FROM %s b WHERE %s;",
			table, col, live.typ, table, col, col, backupQ, strings.Join(conds, " AND "))
		if live.notNull {
			s += fmt.Sprintf("\nALTER TABLE %s ALTER COLUMN %s SET NOT NULL;", table, col)
		}
		if live.def != nil {
			s += fmt.Sprintf("\nALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s;", table, col, *live.def)
		}
		return s
	}
	backupCols := func(pk []string) string {
		cols := make([]string, len(pk))
		for i, k := range pk {
			cols[i] = q(k)
		}
		return strings.Join(append(cols, col), ", ")
	}
	switch so.Type {
	case "add_column":
		def := ""
		if so.Default != nil {
			def = fmt.Sprintf(" DEFAULT %s::%s", quoteLiteral(*so.Default), so.ColType)
		}
		op.OperationSQL = fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s%s;", table, col, so.ColType, def)
		op.RollbackSQL = fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s;", table, col)
	case "drop_column", "modify_column":
		live, err := e.liveColumn(ctx, e.pool, so.Table, so.Column)
		if err != nil {
			return op, err
		}
		if live == nil {
			return op, fmt.Errorf("%w: schema op %s: column %s.%s does not exist", ErrSpec, name, so.Table, so.Column)
		}
		pk, err := e.primaryKey(ctx, so.Table)
		if err != nil {
			return op, err
		}
		op.BackupTableName = &backup
		snap := fmt.Sprintf("CREATE TABLE %s AS SELECT %s FROM %s;", backupQ, backupCols(pk), table)
		if so.Type == "drop_column" {
			op.OperationSQL = fmt.Sprintf("%s\nALTER TABLE %s DROP COLUMN %s;", snap, table, col)
			op.RollbackSQL = restore(live, pk)
		} else {
			op.OperationSQL = fmt.Sprintf("%s\nALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s;", snap, table, col, so.ColType, col, so.ColType)
			op.RollbackSQL = fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s;\n%s", table, col, restore(live, pk))
		}
	case "create_backup":
		op.BackupTableName = &backup
		op.OperationSQL = fmt.Sprintf("CREATE TABLE %s AS TABLE %s;", backupQ, table)
		op.RollbackSQL = fmt.Sprintf("DELETE FROM %s;\nINSERT INTO %s SELECT * FROM %s;", table, table, backupQ)
	}
	if err := e.ledger.CreateSchemaOp(ctx, op); err != nil {
		return op, err
	}
	return e.ledger.GetSchemaOp(ctx, id)
}

// ExecuteSchemaOp runs a planned operation in one transaction with its validation (row counts
// before and after, the backup holding every row, the column present or absent as intended)
// and its status. A critical operation needs approvedBy (recorded) or an earlier approval.
// Running a completed operation again is a no-op.
func (e *Engine) ExecuteSchemaOp(ctx context.Context, name, approvedBy string) (store.SchemaOp, error) {
	op, err := e.PlanSchemaOp(ctx, name)
	if err != nil {
		return op, err
	}
	if op.Status == model.OpCompleted {
		return op, nil
	}
	if op.Status == model.OpRolledBack || op.Status == model.OpFailed {
		return op, fmt.Errorf("%w: schema op %s is %s", ErrSpec, name, op.Status)
	}
	if approvedBy != "" {
		if err := e.ledger.ApproveSchemaOp(ctx, op.ID, approvedBy, time.Now()); err != nil {
			return op, err
		}
		op.ApprovedBy = &approvedBy
	}
	if op.RiskLevel == model.RiskCritical && op.ApprovedBy == nil {
		return op, fmt.Errorf("schema op %s (%s %s): %w", name, op.OperationType, op.TableName, ErrApprovalRequired)
	}
	checks := map[string]any{}
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		var before int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+e.qualified(op.TableName)).Scan(&before); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, op.OperationSQL); err != nil {
			return fmt.Errorf("execute: %w", err)
		}
		var after int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+e.qualified(op.TableName)).Scan(&after); err != nil {
			return err
		}
		checks["rows_before"], checks["rows_after"] = before, after
		ok := before == after
		if op.BackupTableName != nil {
			var backed int64
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+spec.QuoteQualified(e.spec.Target.LedgerSchema, *op.BackupTableName)).Scan(&backed); err != nil {
				return err
			}
			checks["backup_rows"] = backed
			ok = ok && backed == before
		}
		if op.ColumnName != nil {
			live, err := e.liveColumn(ctx, tx, op.TableName, *op.ColumnName)
			if err != nil {
				return err
			}
			present := live != nil
			checks["column_present"] = present
			ok = ok && present == (op.OperationType != model.OpDropColumn)
		}
		checks["passed"] = ok
		if !ok {
			return fmt.Errorf("post-operation validation failed: %v", checks)
		}
		return st.SetSchemaOpStatus(ctx, op.ID, model.OpCompleted, mustJSON(map[string]any{"pre_post": checks}))
	})
	if err != nil {
		checks["error"] = err.Error()
		_ = e.ledger.SetSchemaOpStatus(context.WithoutCancel(ctx), op.ID, model.OpFailed, mustJSON(map[string]any{"pre_post": checks}))
		return op, fmt.Errorf("schema op %s: %w", name, err)
	}
	return e.ledger.GetSchemaOp(ctx, op.ID)
}

// RollbackSchemaOp runs a completed operation's rollback SQL (restoring data from its backup)
// and marks it rolled_back. Other states are left as they are.
func (e *Engine) RollbackSchemaOp(ctx context.Context, name string) (store.SchemaOp, error) {
	op, err := e.ledger.GetSchemaOp(ctx, e.SchemaOpID(name))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return op, nil // never planned: nothing to undo
		}
		return op, err
	}
	if op.Status != model.OpCompleted {
		return op, nil
	}
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, op.RollbackSQL); err != nil {
			return fmt.Errorf("rollback SQL: %w", err)
		}
		var res map[string]any
		_ = json.Unmarshal(op.ValidationResults, &res)
		if res == nil {
			res = map[string]any{}
		}
		res["rolled_back_at"] = time.Now().UTC().Format(time.RFC3339)
		return store.New(tx).SetSchemaOpStatus(ctx, op.ID, model.OpRolledBack, mustJSON(res))
	})
	if err != nil {
		return op, fmt.Errorf("roll back schema op %s: %w", name, err)
	}
	return e.ledger.GetSchemaOp(ctx, op.ID)
}
