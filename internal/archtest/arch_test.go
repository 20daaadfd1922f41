package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/emberfaas/ember/"

// allowed lists, per package, the packages of ours it may import.
var allowed = map[string][]string{
	"function": {},
	"store":    {"function"},
	"network":  {},
	"runtime":  {"function"},
	"scale":    {"function"},
	"proxy":    {"function"},
	"api":      {"function"},
	"client":   {"api", "function"},
	"stack":    {"api", "function"},
}

// foreign lists third-party module prefixes and the only packages that may
// depend on them, directly or not.
var foreign = map[string][]string{
	"github.com/spf13/cobra":              {"cmd/ember"},
	"github.com/containerd/containerd":    {"runtime", "cmd/ember"},
	"github.com/containernetworking/cni":  {"network", "cmd/ember"},
	"github.com/julienschmidt/httprouter": {"api", "client", "stack", "cmd/ember"},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func TestPackageGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-json", "github.com/emberfaas/ember/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		if strings.HasPrefix(name, "internal/") || strings.HasPrefix(name, "testdata/") {
			continue
		}
		seen++
		if ok, known := allowed[name]; known {
			for _, imp := range p.Imports {
				if dep, ours := strings.CutPrefix(imp, module); ours && !slices.Contains(ok, dep) {
					t.Errorf("%s imports %s; DESIGN.md allows only %v", name, dep, ok)
				}
			}
		}
		for prefix, users := range foreign {
			if slices.Contains(users, name) {
				continue
			}
			for _, d := range p.Deps {
				if d == prefix || strings.HasPrefix(d, prefix+"/") {
					t.Errorf("%s depends on %s; only %v may", name, d, users)
					break
				}
			}
		}
	}
	if seen < len(allowed) {
		t.Errorf("saw %d packages, want at least %d: is the module path right?", seen, len(allowed))
	}
}
