package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

var ruleOps = []string{"not_null", "eq", "ne", "gt", "ge", "lt", "le", "in", "matches", "max_length"}

func (r Rule) check(cols map[string]string) error {
	if r.Severity != "" && r.Severity != "error" && r.Severity != "warning" {
		return fmt.Errorf("severity %q: want error or warning", r.Severity)
	}
	if _, ok := cols[r.Column]; !ok {
		return fmt.Errorf("column %q is not a target column", r.Column)
	}
	switch r.Op {
	case "not_null":
		if r.Value != nil || len(r.Values) > 0 {
			return errors.New("not_null takes no value")
		}
	case "in":
		if len(r.Values) == 0 {
			return errors.New("in needs values")
		}
	case "eq", "ne", "gt", "ge", "lt", "le", "matches", "max_length":
		if r.Value == nil {
			return fmt.Errorf("%s needs a value", r.Op)
		}
		if r.Op == "matches" {
			if _, err := regexp.Compile(*r.Value); err != nil {
				return fmt.Errorf("matches: %v", err)
			}
		}
	default:
		return fmt.Errorf("op %q: want one of %s", r.Op, strings.Join(ruleOps, ", "))
	}
	return nil
}

// Label names a rule in reports.
func (r Rule) Label() string {
	if r.Name != "" {
		return r.Name
	}
	v := ""
	if r.Value != nil {
		v = " " + *r.Value
	} else if len(r.Values) > 0 {
		v = " [" + strings.Join(r.Values, ",") + "]"
	}
	return r.Column + " " + r.Op + v
}

func (ix Index) check(cols map[string]string) error {
	if ix.FullText != nil {
		if len(ix.Columns) > 0 {
			return errors.New("full_text indexes list their columns under full_text")
		}
		if len(ix.FullText.Columns) == 0 {
			return errors.New("full_text needs columns")
		}
		if err := CheckIdent(ix.FullText.Config); err != nil {
			return fmt.Errorf("full_text config: %v", err)
		}
		for _, c := range ix.FullText.Columns {
			if _, ok := cols[c]; !ok {
				return fmt.Errorf("column %q is not a target column", c)
			}
		}
		return nil
	}
	if len(ix.Columns) == 0 {
		return errors.New("columns required")
	}
	for _, c := range ix.Columns {
		if _, ok := cols[c]; !ok {
			return fmt.Errorf("column %q is not a target column", c)
		}
	}
	if ix.Where != nil {
		return ix.Where.check(cols)
	}
	return nil
}
