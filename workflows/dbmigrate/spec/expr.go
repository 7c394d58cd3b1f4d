package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Expr is a parsed expression from the small safe set: column names, 'string' and numeric
// literals, and the functions lower, upper, trim, concat, coalesce, nullif, replace, substr.
// It is evaluated in Go by the engine, never turned into SQL.
type Expr struct {
	Func string  // "" for a leaf
	Args []*Expr // function arguments
	Col  string  // leaf: column name
	Lit  *string // leaf: literal (numbers are kept as their text)
}

// exprFuncs gives each function's arity (min, max; -1 = any).
var exprFuncs = map[string][2]int{
	"lower": {1, 1}, "upper": {1, 1}, "trim": {1, 1},
	"concat": {1, -1}, "coalesce": {1, -1}, "nullif": {2, 2},
	"replace": {3, 3}, "substr": {2, 3},
}

// ParseExpr parses s.
func ParseExpr(s string) (*Expr, error) {
	p := &exprParser{s: s}
	e, err := p.parse()
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i:], p.i)
	}
	return e, nil
}

// Columns lists the source columns the expression reads.
func (e *Expr) Columns() []string {
	var out []string
	var walk func(*Expr)
	walk = func(x *Expr) {
		if x.Col != "" {
			out = append(out, x.Col)
		}
		for _, a := range x.Args {
			walk(a)
		}
	}
	walk(e)
	return out
}

type exprParser struct {
	s     string
	i     int
	depth int
}

func (p *exprParser) skip() {
	for p.i < len(p.s) && unicode.IsSpace(rune(p.s[p.i])) {
		p.i++
	}
}

func (p *exprParser) parse() (*Expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 32 {
		return nil, errors.New("expression nested too deeply")
	}
	p.skip()
	if p.i >= len(p.s) {
		return nil, errors.New("unexpected end of expression")
	}
	c := p.s[p.i]
	switch {
	case c == '\'':
		var b strings.Builder
		p.i++
		for {
			if p.i >= len(p.s) {
				return nil, errors.New("unterminated string literal")
			}
			if p.s[p.i] == '\'' {
				if p.i+1 < len(p.s) && p.s[p.i+1] == '\'' {
					b.WriteByte('\'')
					p.i += 2
					continue
				}
				p.i++
				lit := b.String()
				return &Expr{Lit: &lit}, nil
			}
			b.WriteByte(p.s[p.i])
			p.i++
		}
	case c == '-' || (c >= '0' && c <= '9'):
		j := p.i + 1
		for j < len(p.s) && (p.s[j] == '.' || (p.s[j] >= '0' && p.s[j] <= '9')) {
			j++
		}
		lit := p.s[p.i:j]
		if _, err := strconv.ParseFloat(lit, 64); err != nil {
			return nil, fmt.Errorf("bad number %q", lit)
		}
		p.i = j
		return &Expr{Lit: &lit}, nil
	case c == '_' || unicode.IsLetter(rune(c)):
		j := p.i
		for j < len(p.s) && (p.s[j] == '_' || p.s[j] == '$' || unicode.IsLetter(rune(p.s[j])) || unicode.IsDigit(rune(p.s[j]))) {
			j++
		}
		name := p.s[p.i:j]
		p.i = j
		p.skip()
		if p.i < len(p.s) && p.s[p.i] == '(' {
			fn := strings.ToLower(name)
			ar, ok := exprFuncs[fn]
			if !ok {
				return nil, fmt.Errorf("unknown function %q (want one of lower, upper, trim, concat, coalesce, nullif, replace, substr)", name)
			}
			p.i++
			e := &Expr{Func: fn}
			p.skip()
			if p.i < len(p.s) && p.s[p.i] == ')' {
				p.i++
			} else {
				for {
					a, err := p.parse()
					if err != nil {
						return nil, err
					}
					e.Args = append(e.Args, a)
					p.skip()
					if p.i >= len(p.s) {
						return nil, fmt.Errorf("%s(: missing )", fn)
					}
					if p.s[p.i] == ',' {
						p.i++
						continue
					}
					if p.s[p.i] == ')' {
						p.i++
						break
					}
					return nil, fmt.Errorf("unexpected %q in %s(...)", p.s[p.i], fn)
				}
			}
			if len(e.Args) < ar[0] || (ar[1] >= 0 && len(e.Args) > ar[1]) {
				return nil, fmt.Errorf("%s takes %s argument(s), got %d", fn, arity(ar), len(e.Args))
			}
			return e, nil
		}
		return &Expr{Col: name}, nil
	}
	return nil, fmt.Errorf("unexpected %q at offset %d", string(c), p.i)
}

func arity(a [2]int) string {
	switch {
	case a[1] < 0:
		return fmt.Sprintf("at least %d", a[0])
	case a[0] == a[1]:
		return strconv.Itoa(a[0])
	default:
		return fmt.Sprintf("%d to %d", a[0], a[1])
	}
}

// Eval computes the expression over a row; get returns a column's value as text (nil = NULL).
func (e *Expr) Eval(get func(col string) *string) *string {
	if e.Lit != nil {
		return e.Lit
	}
	if e.Func == "" {
		return get(e.Col)
	}
	args := make([]*string, len(e.Args))
	for i, a := range e.Args {
		args[i] = a.Eval(get)
	}
	str := func(s string) *string { return &s }
	switch e.Func {
	case "lower", "upper", "trim":
		if args[0] == nil {
			return nil
		}
		switch e.Func {
		case "lower":
			return str(strings.ToLower(*args[0]))
		case "upper":
			return str(strings.ToUpper(*args[0]))
		default:
			return str(strings.TrimSpace(*args[0]))
		}
	case "concat": // like PostgreSQL's concat: NULLs are empty
		var b strings.Builder
		for _, a := range args {
			if a != nil {
				b.WriteString(*a)
			}
		}
		return str(b.String())
	case "coalesce":
		for _, a := range args {
			if a != nil {
				return a
			}
		}
		return nil
	case "nullif":
		if args[0] != nil && args[1] != nil && *args[0] == *args[1] {
			return nil
		}
		return args[0]
	case "replace":
		if args[0] == nil || args[1] == nil || args[2] == nil {
			return nil
		}
		return str(strings.ReplaceAll(*args[0], *args[1], *args[2]))
	case "substr": // 1-based, in characters
		if args[0] == nil || args[1] == nil {
			return nil
		}
		r := []rune(*args[0])
		start, err := strconv.Atoi(*args[1])
		if err != nil {
			return nil
		}
		start = max(start-1, 0)
		if start > len(r) {
			return str("")
		}
		end := len(r)
		if len(args) == 3 && args[2] != nil {
			n, err := strconv.Atoi(*args[2])
			if err == nil && n >= 0 {
				end = min(start+n, len(r))
			}
		}
		return str(string(r[start:end]))
	}
	return nil
}
