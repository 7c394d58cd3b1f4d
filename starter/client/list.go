package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cutover/cutover/internal/searchattr"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// ListOptions filter List. Kind, Phase, Gate and Status match the search attributes exactly;
// Query is any extra visibility query ANDed to them, e.g. "TenantID = 7".
type ListOptions struct {
	Kind   string // KindEmail, KindDatabase or "" for both
	Phase  string // MigrationPhase
	Gate   string // MigrationGate
	Status string // MigrationStatus
	Domain string // MigrationDomain
	Query  string
	Open   bool // running executions only
	Limit  int  // default 100
}

// Summary is one migration as the visibility store knows it.
type Summary struct {
	Kind        string     `json:"kind"`
	ID          string     `json:"id"` // the job id, or the migration UUID
	WorkflowID  string     `json:"workflow_id"`
	RunID       string     `json:"run_id"`
	Execution   string     `json:"execution"` // Running, Completed, Failed, ...
	Phase       string     `json:"phase,omitempty"`
	Gate        string     `json:"gate,omitempty"`
	Status      string     `json:"status,omitempty"`
	Domain      string     `json:"domain,omitempty"`
	TenantID    int64      `json:"tenant_id,omitempty"`
	SyncPercent float64    `json:"sync_percent"`
	Started     time.Time  `json:"started"`
	Closed      *time.Time `json:"closed,omitempty"`
}

// Visibility is the visibility query List runs.
func (o ListOptions) Visibility() string {
	conds := []string{fmt.Sprintf("WorkflowType IN ('%s', '%s')", emailapi.WorkflowName, dbmigrateapi.WorkflowName)}
	eq := func(key, v string) {
		if v != "" {
			conds = append(conds, fmt.Sprintf("%s = '%s'", key, strings.ReplaceAll(v, "'", "''")))
		}
	}
	switch o.Kind {
	case KindEmail:
		conds[0] = fmt.Sprintf("WorkflowType = '%s'", emailapi.WorkflowName)
	case KindDatabase:
		conds[0] = fmt.Sprintf("WorkflowType = '%s'", dbmigrateapi.WorkflowName)
	}
	eq(searchattr.Phase.GetName(), o.Phase)
	eq(searchattr.Gate.GetName(), o.Gate)
	eq(searchattr.Status.GetName(), o.Status)
	eq(searchattr.Domain.GetName(), o.Domain)
	if o.Open {
		conds = append(conds, "ExecutionStatus = 'Running'")
	}
	if q := strings.TrimSpace(o.Query); q != "" {
		conds = append(conds, "("+q+")")
	}
	return strings.Join(conds, " AND ")
}

// List returns migrations, newest first.
func (c *Client) List(ctx context.Context, o ListOptions) ([]Summary, error) {
	limit := o.Limit
	if limit <= 0 {
		limit = 100
	}
	q := o.Visibility()
	var out []Summary
	var token []byte
	for len(out) < limit {
		resp, err := c.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q,
			PageSize: int32(min(limit-len(out), 1000)), NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list migrations (%s): %w", q, err)
		}
		for _, e := range resp.GetExecutions() {
			s := Summary{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
				Execution: executionStatus(e.GetStatus().String()), Started: e.GetStartTime().AsTime().UTC()}
			if ct := e.GetCloseTime(); ct != nil && ct.IsValid() && !ct.AsTime().IsZero() && ct.AsTime().Unix() > 0 {
				t := ct.AsTime().UTC()
				s.Closed = &t
			}
			fields := e.GetSearchAttributes().GetIndexedFields()
			s.Kind = saString(fields, searchattr.Kind.GetName())
			s.Phase = saString(fields, searchattr.Phase.GetName())
			s.Gate = saString(fields, searchattr.Gate.GetName())
			s.Status = saString(fields, searchattr.Status.GetName())
			s.Domain = saString(fields, searchattr.Domain.GetName())
			decode(fields[searchattr.TenantID.GetName()], &s.TenantID)
			decode(fields[searchattr.SyncPercent.GetName()], &s.SyncPercent)
			switch e.GetType().GetName() {
			case emailapi.WorkflowName:
				s.Kind = KindEmail
				s.ID = strings.TrimPrefix(s.WorkflowID, "email-job-")
			case dbmigrateapi.WorkflowName:
				s.Kind = KindDatabase
				s.ID = strings.TrimPrefix(s.WorkflowID, dbmigrateapi.WorkflowIDPrefix)
			}
			out = append(out, s)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	return out, nil
}

// EmailJobID is a listed email job's id (0 for anything else).
func (s Summary) EmailJobID() int64 {
	if s.Kind != KindEmail {
		return 0
	}
	id, _ := strconv.ParseInt(s.ID, 10, 64)
	return id
}

func executionStatus(enum string) string {
	// WORKFLOW_EXECUTION_STATUS_RUNNING → Running, as the UI and the temporal CLI spell it.
	s := strings.TrimPrefix(enum, "WORKFLOW_EXECUTION_STATUS_")
	if s == "" {
		return ""
	}
	parts := strings.Split(strings.ToLower(s), "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

func saString(fields map[string]*commonpb.Payload, key string) string {
	var s string
	decode(fields[key], &s)
	return s
}

func decode(p *commonpb.Payload, into any) {
	if p == nil {
		return
	}
	_ = converter.GetDefaultDataConverter().FromPayload(p, into)
}
