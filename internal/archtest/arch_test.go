package archtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/emberfaas/ember/"

// pkg is what `go list -test -json` says of one package or test variant.
type pkg struct {
	ImportPath string
	ForTest    string // set on a test variant: the package it tests
	Imports    []string
	Deps       []string
}

// TestPackageGraph checks the whole module, integration-tagged files
// included, against the rules.
func TestPackageGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-test", "-tags", "integration", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < len(rules) {
		t.Fatalf("go list gave %d packages, want at least %d: is the module path right?", len(pkgs), len(rules))
	}
	for _, msg := range check(pkgs, rules, foreignRules) {
		t.Error(msg)
	}
}

func decode(out []byte) ([]pkg, error) {
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			return pkgs, nil
		} else if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
}

// check returns one message per broken rule.
func check(pkgs []pkg, rules map[string]rule, foreign []foreignRule) []string {
	var msgs []string
	seen := map[string]bool{}
	for _, p := range pkgs {
		path, _, _ := strings.Cut(p.ImportPath, " ") // "x [x.test]" is x's test build
		if strings.HasSuffix(path, ".test") {
			continue // the generated test main
		}
		name, ok := strings.CutPrefix(path, module)
		if !ok {
			continue
		}
		test := p.ForTest != ""
		name = strings.TrimSuffix(name, "_test") // external test package
		seen[name] = true
		r, known := rules[name]
		if !known {
			msgs = append(msgs, fmt.Sprintf("%s has no rule: add it to internal/archtest/rules_test.go with the packages it may import and why", name))
			continue
		}
		allowed := r.imports
		imports, depends := "code imports", "code depends on"
		if test {
			allowed = append(slices.Clone(r.imports), r.testImports...)
			imports, depends = "tests import", "tests depend on"
		}
		for _, imp := range p.Imports {
			imp, _, _ = strings.Cut(imp, " ")
			dep, ours := strings.CutPrefix(imp, module)
			if !ours || dep == name {
				continue
			}
			if !slices.Contains(allowed, dep) {
				msgs = append(msgs, fmt.Sprintf("%s: %s %s; allowed: %v (%s)", name, imports, dep, allowed, r.why))
			}
		}
		for _, f := range foreign {
			if slices.Contains(f.users, name) {
				continue
			}
			for _, d := range p.Deps {
				d, _, _ = strings.Cut(d, " ")
				if d == f.prefix || strings.HasPrefix(d, f.prefix+"/") {
					msgs = append(msgs, fmt.Sprintf("%s: %s %s; only %v may: %s", name, depends, d, f.users, f.why))
					break
				}
			}
		}
	}
	var stale []string
	for name := range rules {
		if !seen[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	for _, name := range stale {
		msgs = append(msgs, fmt.Sprintf("rule for %s, which does not exist: remove it", name))
	}
	return msgs
}

// TestCheckCatchesViolations plants one violation of each kind and wants
// each reported.
func TestCheckCatchesViolations(t *testing.T) {
	rules := map[string]rule{
		"function": {why: "leaf"},
		"scale":    {imports: []string{"function"}, why: "controller"},
		"cmd/ember": {imports: []string{"function", "scale"}, testImports: []string{"internal/itest"},
			why: "root"},
		"internal/itest": {why: "harness"},
		"gone":           {why: "removed package"},
	}
	foreign := []foreignRule{{"github.com/containerd/containerd", []string{"cmd/ember"}, "runtime's business"}}
	pkgs := []pkg{
		{ImportPath: module + "function"},
		{ImportPath: module + "internal/itest"},
		// An import of ours the rules do not allow, in production code.
		{ImportPath: module + "scale", Imports: []string{module + "function", module + "cmd/ember"}},
		// The same in a test file only (an external test package).
		{ImportPath: module + "scale_test [" + module + "scale.test]", ForTest: module + "scale",
			Imports: []string{module + "scale", module + "internal/itest"}},
		// A third-party engine reached from the wrong package, indirectly.
		{ImportPath: module + "function [" + module + "function.test]", ForTest: module + "function",
			Deps: []string{"github.com/containerd/containerd/errdefs"}},
		// A package nobody wrote a rule for.
		{ImportPath: module + "queue", Imports: []string{module + "function"}},
		// Allowed: cmd's tests may use the harness.
		{ImportPath: module + "cmd/ember [" + module + "cmd/ember.test]", ForTest: module + "cmd/ember",
			Imports: []string{module + "internal/itest", module + "scale"}, Deps: []string{"github.com/containerd/containerd"}},
		{ImportPath: module + "cmd/ember.test"},
	}
	got := check(pkgs, rules, foreign)
	for _, want := range []string{
		"scale: code imports cmd/ember",
		"scale: tests import internal/itest",
		"function: tests depend on github.com/containerd/containerd/errdefs",
		"queue has no rule",
		"rule for gone, which does not exist",
	} {
		if !slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, want) }) {
			t.Errorf("no message starting %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if len(got) != 5 {
		t.Errorf("%d messages, want exactly the 5 planted:\n%s", len(got), strings.Join(got, "\n"))
	}
}
