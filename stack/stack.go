package stack

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// ProviderName is the only provider.name faas-cli accepts.
const ProviderName = "openfaas"

// LoadOptions change how Load reads a stack file. The zero value reads it
// as faas-cli does.
type LoadOptions struct {
	// NoEnvsubst turns off ${VAR} substitution (faas-cli --envsubst=false).
	NoEnvsubst bool
	// Env looks variables up for substitution; nil means os.LookupEnv.
	Env func(string) (string, bool)
}

// Stack is a parsed stack file.
type Stack struct {
	Version  string
	Provider Provider
	// Functions are in the order the file lists them, which is the order
	// they are deployed in.
	Functions []Function

	file string // as given to Load, to name it in errors
	dir  string // environment_file paths are relative to it
}

// Provider is the stack's provider section.
type Provider struct {
	Name string `yaml:"name"`
	// Gateway is where the stack's functions are reached: ember deploy
	// prints their URLs under it. The CLI talks to its own daemon.
	Gateway string `yaml:"gateway"`
}

// Function is one entry of the stack's functions map: its deploy-time
// fields. Build-time fields are not decoded at all, so any value faas-cli
// accepts for them is accepted here.
type Function struct {
	Name  string `yaml:"-"` // the map key
	Image string `yaml:"image"`
	// FProcess becomes envProcess. faas-cli fills it from the template's
	// template.yml when it is empty; ember leaves it empty, since the
	// template's image already sets fprocess.
	FProcess               string            `yaml:"fprocess"`
	Environment            map[string]string `yaml:"environment"`
	EnvironmentFile        []string          `yaml:"environment_file"`
	Secrets                []string          `yaml:"secrets"`
	Constraints            []string          `yaml:"constraints"`
	Labels                 map[string]string `yaml:"labels"`
	Annotations            map[string]string `yaml:"annotations"`
	Limits                 *Resources        `yaml:"limits"`
	Requests               *Resources        `yaml:"requests"`
	ReadOnlyRootFilesystem bool              `yaml:"readonly_root_filesystem"`
	Namespace              string            `yaml:"namespace"`
}

// Resources are Kubernetes-style quantities, such as 128Mi and 100m.
type Resources struct {
	Memory string `yaml:"memory"`
	CPU    string `yaml:"cpu"`
}

// Deployment is one function of a stack, ready to send to the daemon.
type Deployment struct {
	Name     string
	Function wire.FunctionDeployment
}

// Error is a problem with a stack file. Its message names the file and,
// where they are known, the line, the function and the field.
type Error struct {
	File     string // the stack file as given to Load
	Line     int    // 0 when unknown
	Function string // empty for problems outside the functions map
	Field    string // such as "limits.memory"; empty for YAML errors
	Problem  string
	// Err is the cause, for errors.Is and errors.As: function.ErrInvalid
	// for invalid values, an fs error for unreadable environment files.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Function != "" {
		fmt.Fprintf(&b, "function %q: ", e.Function)
	}
	if e.Field != "" {
		b.WriteString(e.Field + " ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads and parses the stack file at path. It checks the file as a
// whole (YAML, version, provider); each function is checked when
// Deployments builds it, so --filter can pick a good function out of a
// stack with a broken one, as with faas-cli.
func Load(path string, opts LoadOptions) (*Stack, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := string(data)
	if !opts.NoEnvsubst {
		lookup := opts.Env
		if lookup == nil {
			lookup = os.LookupEnv
		}
		var serr *substError
		if text, serr = expand(text, lookup); serr != nil {
			return nil, &Error{File: path, Line: serr.line, Problem: serr.msg, Err: function.ErrInvalid}
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, yamlError(path, "", err)
	}
	s := &Stack{file: path, dir: filepath.Dir(path)}
	var top struct {
		Version   string    `yaml:"version"`
		Provider  Provider  `yaml:"provider"`
		Functions yaml.Node `yaml:"functions"`
	}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return nil, &Error{File: path, Line: root.Line, Problem: "want a mapping with provider: and functions:", Err: function.ErrInvalid}
		}
		if err := root.Decode(&top); err != nil {
			return nil, yamlError(path, "", err)
		}
	}
	s.Version, s.Provider = top.Version, top.Provider
	if s.Version != "" && s.Version != "1.0" {
		return nil, s.invalid("", "version", fmt.Sprintf(`%q: only "1.0" is supported`, s.Version))
	}
	switch s.Provider.Name {
	case ProviderName:
	case "":
		return nil, s.invalid("", "provider.name", fmt.Sprintf("is required: it must be %q", ProviderName))
	default:
		return nil, s.invalid("", "provider.name", fmt.Sprintf("%q: must be %q", s.Provider.Name, ProviderName))
	}
	if s.Functions, err = parseFunctions(path, &top.Functions); err != nil {
		return nil, err
	}
	return s, nil
}

// parseFunctions decodes the functions map entry by entry, which keeps
// the file's order and lets errors name the function.
func parseFunctions(file string, n *yaml.Node) ([]Function, error) {
	if n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: n.Line, Field: "functions", Problem: "must map function names to functions", Err: function.ErrInvalid}
	}
	var fns []Function
	seen := map[string]int{} // name → line
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		name := key.Value
		if key.Kind != yaml.ScalarNode {
			return nil, &Error{File: file, Line: key.Line, Field: "functions", Problem: "keys must be function names", Err: function.ErrInvalid}
		}
		if first, dup := seen[name]; dup {
			return nil, &Error{File: file, Line: key.Line, Function: name, Problem: fmt.Sprintf("defined twice (first at line %d)", first), Err: function.ErrInvalid}
		}
		seen[name] = key.Line
		var f Function
		if err := val.Decode(&f); err != nil {
			return nil, yamlError(file, name, err)
		}
		f.Name = name
		fns = append(fns, f)
	}
	return fns, nil
}

// yamlError turns a YAML error ("yaml: line 3: ...", or a TypeError with
// one "line N: ..." per problem) into Errors naming the file and line.
func yamlError(file, fn string, err error) error {
	var msgs []string
	if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		e := &Error{File: file, Function: fn, Problem: m, Err: err}
		if rest, ok := strings.CutPrefix(m, "line "); ok {
			if num, msg, ok := strings.Cut(rest, ": "); ok {
				if line, err := strconv.Atoi(num); err == nil {
					e.Line, e.Problem = line, msg
				}
			}
		}
		errs = append(errs, e)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func (s *Stack) invalid(fn, field, problem string) *Error {
	return &Error{File: s.file, Function: fn, Field: field, Problem: problem, Err: function.ErrInvalid}
}

// Select returns the functions whose names match filter, a path.Match
// glob ("" matches all), in file order. As with faas-cli, a filter that
// matches nothing is an error.
func (s *Stack) Select(filter string) ([]Function, error) {
	if filter == "" {
		return slices.Clone(s.Functions), nil
	}
	if _, err := path.Match(filter, ""); err != nil {
		return nil, fmt.Errorf("filter %q: %w", filter, err)
	}
	var out []Function
	for _, f := range s.Functions {
		if ok, _ := path.Match(filter, f.Name); ok {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: filter %q matches no function", s.file, filter)
	}
	return out, nil
}

// Deployments checks the functions that filter selects (see Select) and
// returns what to send for each, in file order. It reads their
// environment files. It fails on the first invalid function, before
// anything is deployed.
func (s *Stack) Deployments(filter string) ([]Deployment, error) {
	fns, err := s.Select(filter)
	if err != nil {
		return nil, err
	}
	out := make([]Deployment, 0, len(fns))
	for _, f := range fns {
		d, err := s.deployment(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Deployment{Name: f.Name, Function: d})
	}
	return out, nil
}

// deployment builds what faas-cli deploy sends for f
// (faas-cli commands/deploy.go): environment < environment_file, labels
// and annotations always present, empty lists and resources omitted.
func (s *Stack) deployment(f Function) (wire.FunctionDeployment, error) {
	if err := s.check(f); err != nil {
		return wire.FunctionDeployment{}, err
	}
	env := maps.Clone(f.Environment)
	for _, p := range f.EnvironmentFile {
		fileEnv, err := s.readEnvFile(f.Name, p)
		if err != nil {
			return wire.FunctionDeployment{}, err
		}
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, fileEnv)
	}
	if len(env) == 0 {
		env = nil
	}
	labels, annotations := map[string]string{}, map[string]string{}
	maps.Copy(labels, f.Labels)
	maps.Copy(annotations, f.Annotations)
	d := wire.FunctionDeployment{
		Service:                f.Name,
		Image:                  f.Image,
		Namespace:              f.Namespace,
		EnvProcess:             f.FProcess,
		EnvVars:                env,
		Constraints:            nonEmpty(f.Constraints),
		Secrets:                nonEmpty(f.Secrets),
		Labels:                 &labels,
		Annotations:            &annotations,
		Limits:                 resources(f.Limits),
		Requests:               resources(f.Requests),
		ReadOnlyRootFilesystem: f.ReadOnlyRootFilesystem,
	}
	// The daemon's own check, so that the stack stops here on anything it
	// would refuse, not halfway through a deploy.
	if err := d.Spec().Validate(); err != nil {
		return wire.FunctionDeployment{}, &Error{File: s.file, Function: f.Name,
			Problem: strings.TrimPrefix(err.Error(), function.ErrInvalid.Error()+": "), Err: err}
	}
	return d, nil
}

// check validates the fields a stack file names itself, so that errors
// point at them (limits.memory, secrets) before environment files are
// read; deployment then runs the spec's full Validate.
func (s *Stack) check(f Function) error {
	if f.Name == "" {
		return s.invalid(f.Name, "name", "is required")
	}
	if err := function.ValidateName(f.Name); err != nil {
		return s.invalid(f.Name, "name", reason(err, fmt.Sprintf("name %q", f.Name)))
	}
	if strings.TrimSpace(f.Image) == "" {
		return s.invalid(f.Name, "image", "is required")
	}
	for _, r := range []struct {
		field string
		res   *Resources
	}{{"limits", f.Limits}, {"requests", f.Requests}} {
		if r.res == nil {
			continue
		}
		if q := r.res.Memory; q != "" {
			if _, err := function.ParseMemory(q); err != nil {
				return s.quantity(f.Name, r.field+".memory", q, reason(err, fmt.Sprintf("memory %q", q)))
			}
		}
		if q := r.res.CPU; q != "" {
			if _, err := function.ParseCPU(q); err != nil {
				return s.quantity(f.Name, r.field+".cpu", q, reason(err, fmt.Sprintf("cpu %q", q)))
			}
		}
	}
	for _, sec := range f.Secrets {
		if err := function.ValidateName(sec); err != nil {
			return s.invalid(f.Name, "secrets", fmt.Sprintf("%q: %s", sec, reason(err, fmt.Sprintf("name %q", sec))))
		}
	}
	return nil
}

func (s *Stack) quantity(fn, field, q, why string) error {
	return s.invalid(fn, field, fmt.Sprintf("%q: %s", q, strings.TrimPrefix(why, "is ")))
}

// reason is the part of an error from package function after its
// subject: for `invalid: memory "12Q" is not a quantity such as 128Mi` and
// the subject `memory "12Q"`, `is not a quantity such as 128Mi`. A stack
// error names the field and value itself. A message of another shape is
// kept whole.
func reason(err error, subject string) string {
	msg := strings.TrimPrefix(err.Error(), function.ErrInvalid.Error()+": ")
	if rest, ok := strings.CutPrefix(msg, subject+" "); ok {
		return rest
	}
	return msg
}

// readEnvFile reads one environment_file: YAML with a top-level
// environment map. Like faas-cli, it does not substitute ${VAR} in it.
func (s *Stack) readEnvFile(fn, p string) (map[string]string, error) {
	full := p
	if !filepath.IsAbs(full) {
		full = filepath.Join(s.dir, p)
	}
	bad := func(problem string, err error) error {
		return &Error{File: s.file, Function: fn, Field: "environment_file", Problem: fmt.Sprintf("%q: %s", p, problem), Err: err}
	}
	data, err := os.ReadFile(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, bad("no such file", err)
	}
	if err != nil {
		return nil, bad(err.Error(), err)
	}
	var doc struct {
		Environment map[string]string `yaml:"environment"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		var msgs []string
		if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
			msgs = te.Errors
		} else {
			msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		return nil, bad(strings.Join(msgs, "; "), err)
	}
	return doc.Environment, nil
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func resources(r *Resources) *wire.FunctionResources {
	if r == nil || r.Memory == "" && r.CPU == "" {
		return nil
	}
	return &wire.FunctionResources{Memory: r.Memory, CPU: r.CPU}
}
