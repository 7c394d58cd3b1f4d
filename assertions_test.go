package cutover_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestAssertionsSayWhichFieldFailed: no test checks several comparisons in one condition
// (`if a != x || b != y { t.Fatalf(...) }`), whose failure does not say which one failed; each
// comparison gets its own check (or the values go through cmp.Diff). A condition that guards
// (`if cond && (a != x || ...)`) is not that shape.
func TestAssertionsSayWhichFieldFailed(t *testing.T) {
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if is, ok := n.(*ast.IfStmt); ok && compoundComparison(is.Cond) && failsTest(is.Body) {
				found = append(found, fset.Position(is.Pos()).String())
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range found {
		t.Errorf("%s: one check per comparison, so a failure says which one", at)
	}
}

// compoundComparison: cond is an || of two or more comparisons (among other operands).
func compoundComparison(cond ast.Expr) bool {
	var ops []ast.Expr
	var flatten func(e ast.Expr)
	flatten = func(e ast.Expr) {
		if be, ok := e.(*ast.BinaryExpr); ok && be.Op == token.LOR {
			flatten(be.X)
			flatten(be.Y)
			return
		}
		ops = append(ops, e)
	}
	flatten(cond)
	comparisons := 0
	for _, o := range ops {
		if be, ok := o.(*ast.BinaryExpr); ok {
			switch be.Op {
			case token.EQL, token.NEQ, token.LSS, token.GTR, token.LEQ, token.GEQ:
				comparisons++
			}
		}
	}
	return len(ops) > 1 && comparisons > 1
}

// failsTest: the body starts with t.Fatal, t.Fatalf, t.Error or t.Errorf (on any receiver).
func failsTest(body *ast.BlockStmt) bool {
	if len(body.List) == 0 {
		return false
	}
	es, ok := body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	switch sel.Sel.Name {
	case "Fatal", "Fatalf", "Error", "Errorf":
		return true
	}
	return false
}
