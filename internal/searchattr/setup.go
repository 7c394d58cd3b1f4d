package searchattr

import (
	"context"
	"fmt"
	"sort"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
)

// Problem is one attribute a namespace lacks or holds with another type.
type Problem struct {
	Def
	Found enumspb.IndexedValueType // UNSPECIFIED when missing
}

func (p Problem) String() string {
	if p.Found == enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED {
		return fmt.Sprintf("%s (%s) is missing", p.Name, p.CLIType())
	}
	return fmt.Sprintf("%s is %s, want %s", p.Name, typeName(p.Found), p.CLIType())
}

func typeName(t enumspb.IndexedValueType) string {
	if n, ok := cliType[t]; ok {
		return n
	}
	return strings.TrimPrefix(t.String(), "INDEXED_VALUE_TYPE_")
}

// Check lists what namespace lacks of All (missing, or registered with another type).
func Check(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string) ([]Problem, error) {
	resp, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	var out []Problem
	for _, d := range All {
		got := resp.GetCustomAttributes()[d.Name]
		if got != d.Type {
			out = append(out, Problem{Def: d, Found: got})
		}
	}
	return out, nil
}

// Register adds the missing attributes to namespace and returns their names. An attribute
// registered with another type cannot be changed in place: Register refuses and names it.
func Register(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string) ([]string, error) {
	problems, err := Check(ctx, op, namespace)
	if err != nil {
		return nil, err
	}
	add := map[string]enumspb.IndexedValueType{}
	var added, wrong []string
	for _, p := range problems {
		if p.Found != enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED {
			wrong = append(wrong, p.String())
			continue
		}
		add[p.Name] = p.Type
		added = append(added, p.Name)
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("namespace %s has search attributes of another type (%s): remove them "+
			"(temporal operator search-attribute remove) or use another namespace", namespace, strings.Join(wrong, "; "))
	}
	if len(add) == 0 {
		return nil, nil
	}
	if _, err := op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: add}); err != nil {
		return nil, fmt.Errorf("add search attributes to namespace %s: %w", namespace, err)
	}
	sort.Strings(added)
	return added, nil
}

// CLICommands are the temporal CLI lines that register the attributes of problems; flags are
// the connection's (temporalconn.Options.CLIFlags).
func CLICommands(problems []Problem, namespace, flags string) []string {
	var out []string
	for _, p := range problems {
		line := "temporal operator search-attribute create --namespace " + namespace + " --name " + p.Name + " --type " + p.CLIType()
		if flags != "" {
			line += " " + flags
		}
		out = append(out, line)
	}
	return out
}
