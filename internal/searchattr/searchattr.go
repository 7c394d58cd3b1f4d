// Package searchattr declares cutover's Temporal search attributes once: the typed keys
// workflows upsert and the (name, type) list the dev server and docker-compose register.
package searchattr

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Keys workflows upsert; operators filter on them in the UI and with `temporal workflow list --query`.
var (
	Kind        = temporal.NewSearchAttributeKeyKeyword("MigrationKind") // email | database
	Phase       = temporal.NewSearchAttributeKeyKeyword("MigrationPhase")
	Gate        = temporal.NewSearchAttributeKeyKeyword("MigrationGate")
	Domain      = temporal.NewSearchAttributeKeyKeyword("MigrationDomain")
	Status      = temporal.NewSearchAttributeKeyKeyword("MigrationStatus")
	SyncPercent = temporal.NewSearchAttributeKeyFloat64("SyncPercent")
	TenantID    = temporal.NewSearchAttributeKeyInt64("TenantID")
)

// Def is one attribute as a server registers it.
type Def struct {
	Name string
	Type enumspb.IndexedValueType
}

// All lists every attribute with its server-side type.
var All = []Def{
	{Kind.GetName(), enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Phase.GetName(), enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Gate.GetName(), enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Domain.GetName(), enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{Status.GetName(), enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{SyncPercent.GetName(), enumspb.INDEXED_VALUE_TYPE_DOUBLE},
	{TenantID.GetName(), enumspb.INDEXED_VALUE_TYPE_INT},
}

// cliType is the spelling `temporal server start-dev --search-attribute` and
// `temporal operator search-attribute create --type` accept.
var cliType = map[enumspb.IndexedValueType]string{
	enumspb.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
	enumspb.INDEXED_VALUE_TYPE_DOUBLE:  "Double",
	enumspb.INDEXED_VALUE_TYPE_INT:     "Int",
}

// CLIType returns the temporal CLI's name for the attribute's type.
func (d Def) CLIType() string { return cliType[d.Type] }

// DevServerFlags returns the `--search-attribute Name=Type` flags for `temporal server start-dev`.
func DevServerFlags() []string {
	var out []string
	for _, d := range All {
		out = append(out, "--search-attribute", d.Name+"="+d.CLIType())
	}
	return out
}
