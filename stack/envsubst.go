package stack

import (
	"fmt"
	"strings"
)

// expand substitutes environment variables in a stack file's text before
// it is parsed, following faas-cli (which uses drone/envsubst):
//
//   - ${NAME} is NAME's value, empty when unset;
//   - ${NAME:-default}, ${NAME-default}, ${NAME:=default} and
//     ${NAME=default} are default when NAME is unset or empty (envsubst
//     cannot tell the two apart); default may itself contain ${...};
//   - $$ is a literal $, so $${NAME} stays ${NAME};
//   - $NAME without braces is left alone.
//
// Other shell forms (${#NAME}, ${NAME^^}, ${NAME/a/b}, ...) are refused
// rather than passed through, so a typo cannot deploy a literal "${".
// Errors carry the 1-based line of the offending "${".
func expand(src string, lookup func(string) (string, bool)) (string, *substError) {
	var b strings.Builder
	b.Grow(len(src))
	for i := 0; i < len(src); {
		c := src[i]
		if c != '$' || i+1 == len(src) {
			b.WriteByte(c)
			i++
			continue
		}
		switch src[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
		case '{':
			end, ok := closingBrace(src, i+2)
			if !ok {
				return "", &substError{line: lineAt(src, i), msg: "unterminated ${"}
			}
			v, err := substitute(src[i+2:end], lookup)
			if err != nil {
				err.line = lineAt(src, i)
				return "", err
			}
			b.WriteString(v)
			i = end + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// substError is a bad ${...} expression. It is not an error value: Load
// turns it into one naming the file.
type substError struct {
	line int
	msg  string
}

// closingBrace returns the index of the '}' that closes the "${" whose
// body starts at from, allowing nested "${...}" in defaults.
func closingBrace(s string, from int) (int, bool) {
	depth := 1
	for j := from; j < len(s); j++ {
		switch {
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case s[j] == '}':
			depth--
			if depth == 0 {
				return j, true
			}
		}
	}
	return 0, false
}

// substitute evaluates the body of one ${...}.
func substitute(expr string, lookup func(string) (string, bool)) (string, *substError) {
	n := 0
	for n < len(expr) && isNameByte(expr[n]) {
		n++
	}
	name, rest := expr[:n], expr[n:]
	if name == "" {
		return "", &substError{msg: fmt.Sprintf("${%s}: want a variable name", expr)}
	}
	val, _ := lookup(name)
	if rest == "" {
		return val, nil
	}
	var def string
	switch {
	case strings.HasPrefix(rest, ":-"), strings.HasPrefix(rest, ":="):
		def = rest[2:]
	case rest[0] == '-', rest[0] == '=':
		def = rest[1:]
	default:
		return "", &substError{msg: fmt.Sprintf("${%s}: unsupported substitution (use ${NAME} or ${NAME:-default})", expr)}
	}
	if val != "" {
		return val, nil
	}
	// A line inside a default is relative to it; the caller replaces it
	// with the line of the outer "${".
	return expand(def, lookup)
}

// isNameByte reports whether c may appear in a variable name. Like
// envsubst, a name may start with a digit: ${1} is looked up (and is
// normally empty) rather than refused.
func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func lineAt(s string, i int) int { return strings.Count(s[:i], "\n") + 1 }
