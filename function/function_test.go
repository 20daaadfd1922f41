package function

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"echo", true},
		{"a", true},
		{"fn-1", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Echo", false},
		{"-a", false},
		{"a-", false},
		{"a/b", false},
		{"..", false},
		{"a.b", false},
		{"a_b", false},
	} {
		err := ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) error %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

func TestResolveRef(t *testing.T) {
	for _, tc := range []struct {
		ref, want string
		ok        bool
	}{
		{"echo", "echo", true},
		{"echo.openfaas-fn", "echo", true},
		{"echo.other", "echo.other", true},
		{"echo.Other", "", false},
		{"echo.", "", false},
		{".other", "", false},
	} {
		got, err := ResolveRef(tc.ref)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ResolveRef(%q) = %q, %v; want %q ok=%v", tc.ref, got, err, tc.want, tc.ok)
		}
	}
}

// The default namespace's keys and metric labels are what they were
// before namespaces, so an upgraded daemon adopts what it finds.
func TestQualifyKeepsTheDefaultBare(t *testing.T) {
	for _, tc := range []struct {
		name, ns, key, metric, base, keyNS string
	}{
		{"echo", "", "echo", "echo.openfaas-fn", "echo", DefaultNamespace},
		{"echo", DefaultNamespace, "echo", "echo.openfaas-fn", "echo", DefaultNamespace},
		{"echo", "staging", "echo.staging", "echo.staging", "echo", "staging"},
	} {
		key := Qualify(tc.name, tc.ns)
		s := Spec{Name: key}
		if key != tc.key || MetricName(key) != tc.metric || s.BaseName() != tc.base || s.Namespace() != tc.keyNS {
			t.Errorf("Qualify(%q, %q) = %q (metric %q, base %q, ns %q); want %q (%q, %q, %q)", tc.name, tc.ns,
				key, MetricName(key), s.BaseName(), s.Namespace(), tc.key, tc.metric, tc.base, tc.keyNS)
		}
		if err := ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v", key, err)
		}
	}
	long := strings.Repeat("a", 30) + "." + strings.Repeat("b", 25)
	if err := ValidateKey(long); !errors.Is(err, ErrInvalid) {
		t.Errorf("ValidateKey of a %d-character key = %v, want ErrInvalid", len(long), err)
	}
	for _, bad := range []string{"echo.openfaas-fn", "echo.", "Echo", "echo.Staging", "a.b.c"} {
		if err := ValidateKey(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if h := (Spec{Name: "echo", Image: "i"}).Hash(); h != (Spec{Name: Qualify("echo", DefaultNamespace), Image: "i"}).Hash() {
		t.Errorf("hash changed in the default namespace")
	}
}

func TestHashIgnoresScaleAndTime(t *testing.T) {
	a := Spec{Name: "x", Image: "i", Env: map[string]string{"A": "1", "B": "2"}}
	b := a.Clone()
	b.Replicas = 3
	if a.Hash() != b.Hash() {
		t.Error("hash changed with replicas")
	}
	b.Env["A"] = "3"
	if a.Hash() == b.Hash() {
		t.Error("hash did not change with env")
	}
}

// Hashes of normal specs as the first release computed them: replicas
// started from these must keep running after an upgrade.
func TestHashOfNormalSpecsUnchanged(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "echo", Image: "127.0.0.1:5000/echo:v1"}, "7d793feab5b9d32e"},
		{Spec{Name: "echo", Image: "ghcr.io/openfaas/alpine:latest", EnvProcess: "env", Env: map[string]string{"A": "1", "B": "2"}}, "7ace7a4d0d0e8f89"},
		{Spec{Name: "echo", Image: "echo:v2", Labels: map[string]string{LabelScaleMin: "2", "team": "x"}, Annotations: map[string]string{"topic": "t"},
			Secrets: []string{"db", "api"}, Limits: &Resources{Memory: "128Mi", CPU: "500m"}, Requests: &Resources{Memory: "64Mi"}, ReadOnlyRootFilesystem: true}, "00f6c6414693ee27"},
		{Spec{Name: "echo", Image: "ghcr.io/x/y@sha256:0123456789012345678901234567890123456789012345678901234567890123", Env: map[string]string{"fprocess": "cat"}}, "dec64f16b7350e9f"},
	} {
		if got := tc.spec.Hash(); got != tc.want {
			t.Errorf("%+v: hash %s, want %s", tc.spec, got, tc.want)
		}
	}
}

func TestHashEquivalentSpecs(t *testing.T) {
	base := Spec{Name: "echo", Image: "127.0.0.1:5000/echo:v1"}
	with := func(f func(*Spec)) Spec { s := base.Clone(); f(&s); return s }
	for name, s := range map[string]Spec{
		"empty labels (faas-cli, stack)": with(func(s *Spec) { s.Labels = map[string]string{} }),
		"empty annotations":              with(func(s *Spec) { s.Annotations = map[string]string{} }),
		"empty env":                      with(func(s *Spec) { s.Env = map[string]string{} }),
		"empty secrets":                  with(func(s *Spec) { s.Secrets = []string{} }),
		"empty constraints":              with(func(s *Spec) { s.Constraints = []string{} }),
		"empty limits":                   with(func(s *Spec) { s.Limits = &Resources{} }),
		"empty requests":                 with(func(s *Spec) { s.Requests = &Resources{} }),
		"derived faas_function label":    with(func(s *Spec) { s.Labels = map[string]string{LabelFunctionName: "echo"} }),
		"other constraints":              with(func(s *Spec) { s.Constraints = []string{"a=b"} }),
		"replicas and times":             with(func(s *Spec) { s.Replicas, s.CreatedAt = 3, time.Now() }),
		"everything empty at once": with(func(s *Spec) {
			s.Labels, s.Annotations, s.Env = map[string]string{}, map[string]string{}, map[string]string{}
			s.Secrets, s.Limits = []string{}, &Resources{}
		}),
	} {
		if s.Hash() != base.Hash() {
			t.Errorf("%s: hash %s, want %s", name, s.Hash(), base.Hash())
		}
	}
	for name, s := range map[string]Spec{
		"a label":      with(func(s *Spec) { s.Labels = map[string]string{"a": "b"} }),
		"an env":       with(func(s *Spec) { s.Env = map[string]string{"a": "b"} }),
		"a secret":     with(func(s *Spec) { s.Secrets = []string{"db"} }),
		"a limit":      with(func(s *Spec) { s.Limits = &Resources{Memory: "64Mi"} }),
		"another tag":  with(func(s *Spec) { s.Image = "127.0.0.1:5000/echo:v2" }),
		"envProcess":   with(func(s *Spec) { s.EnvProcess = "cat" }),
		"read-only fs": with(func(s *Spec) { s.ReadOnlyRootFilesystem = true }),
	} {
		if s.Hash() == base.Hash() {
			t.Errorf("%s: same hash as the base spec", name)
		}
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"echo":                       "echo:latest",
		"echo:v1":                    "echo:v1",
		"127.0.0.1:5000/echo":        "127.0.0.1:5000/echo:latest",
		"127.0.0.1:5000/echo:v1":     "127.0.0.1:5000/echo:v1",
		"ghcr.io/a/b@sha256:0123":    "ghcr.io/a/b@sha256:0123",
		"ghcr.io/a/b:v1@sha256:0123": "ghcr.io/a/b:v1@sha256:0123",
		"docker.io/library/alpine":   "docker.io/library/alpine:latest",
		"":                           "",
	} {
		if got := NormalizeImage(in); got != want {
			t.Errorf("NormalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
	a, b := Spec{Name: "x", Image: "echo"}, Spec{Name: "x", Image: "echo:latest"}
	if a.Hash() != b.Hash() {
		t.Error(`"echo" and "echo:latest" hash differently`)
	}
}

// Replicas started by an ember that hashed faas-cli's "labels":{} as
// such, or an untagged image as written, are the current spec's.
func TestSameContainerAcceptsOlderHashes(t *testing.T) {
	stored := Spec{Name: "echo", Image: "echo", Secrets: []string{"db"}} // as read back from the store
	for name, started := range map[string]Spec{
		"now":                  stored,
		"faas-cli's {} labels": {Name: "echo", Image: "echo", Secrets: []string{"db"}, Labels: map[string]string{}, Annotations: map[string]string{}},
		"only {} annotations":  {Name: "echo", Image: "echo", Secrets: []string{"db"}, Annotations: map[string]string{}},
		"untagged image":       {Name: "echo", Image: "echo", Secrets: []string{"db"}},
	} {
		if !stored.SameContainer(started.rawHash()) {
			t.Errorf("%s: replica hash %s not recognised", name, started.rawHash())
		}
	}
	other := Spec{Name: "echo", Image: "echo", Secrets: []string{"db"}, Labels: map[string]string{"a": "b"}}
	if stored.SameContainer(other.rawHash()) || stored.SameContainer(other.Hash()) {
		t.Error("a spec with another label is taken for the same container")
	}
}

// A restart generation changes the hash, but only once set: specs stored
// before it existed keep their hash, so an upgrade restarts nothing.
func TestHashRestartGeneration(t *testing.T) {
	s := Spec{Name: "fn", Image: "img:1", EnvProcess: "cat", Env: map[string]string{"A": "1"},
		Labels: map[string]string{"l": "v"}, Annotations: map[string]string{"a": "b"}, Secrets: []string{"db"},
		Limits: &Resources{Memory: "128Mi"}, ReadOnlyRootFilesystem: true}
	// The hash as it was computed before restarts existed.
	h := sha256.New()
	json.NewEncoder(h).Encode([]any{s.Image, s.EnvProcess, s.Env, s.Labels, s.Annotations,
		s.Secrets, s.Limits, s.Requests, s.ReadOnlyRootFilesystem})
	if want := hex.EncodeToString(h.Sum(nil))[:16]; s.Hash() != want {
		t.Errorf("hash without a restart = %s, want the old %s", s.Hash(), want)
	}
	seen := map[string]int64{}
	for gen := range int64(4) {
		r := s.Clone()
		r.RestartGeneration = gen
		if prev, ok := seen[r.Hash()]; ok {
			t.Errorf("generation %d hashes like %d", gen, prev)
		}
		seen[r.Hash()] = gen
		if r.Hash() != r.Clone().Hash() {
			t.Errorf("generation %d: hash not stable", gen)
		}
	}
}

func TestReadyHTTPAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		want    ReadyHTTP
		ok      bool
		wantErr string // names the annotation; "" for valid
	}{
		{"none", nil, ReadyHTTP{Period: DefaultReadyPeriod}, false, ""},
		{"path only", map[string]string{AnnotationReadyPath: "/ready"}, ReadyHTTP{Path: "/ready", Period: DefaultReadyPeriod}, true, ""},
		{"all", map[string]string{AnnotationReadyPath: "/_/ready", AnnotationReadyInitialDelay: "2s", AnnotationReadyPeriod: "3"},
			ReadyHTTP{Path: "/_/ready", InitialDelay: 2 * time.Second, Period: 3 * time.Second}, true, ""},
		{"delay in seconds", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyInitialDelay: "5"},
			ReadyHTTP{Path: "/ready", InitialDelay: 5 * time.Second, Period: DefaultReadyPeriod}, true, ""},
		{"relative path", map[string]string{AnnotationReadyPath: "ready"}, ReadyHTTP{}, true, AnnotationReadyPath},
		{"bad delay", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyInitialDelay: "soon"}, ReadyHTTP{}, true, AnnotationReadyInitialDelay},
		{"negative delay", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyInitialDelay: "-1s"}, ReadyHTTP{}, true, AnnotationReadyInitialDelay},
		{"bad period", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyPeriod: "10s"}, ReadyHTTP{}, true, AnnotationReadyPeriod},
		{"zero period", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyPeriod: "0"}, ReadyHTTP{}, true, AnnotationReadyPeriod},
		{"bad period without path", map[string]string{AnnotationReadyPeriod: "x"}, ReadyHTTP{}, false, AnnotationReadyPeriod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Spec{Name: "fn", Image: "img", Annotations: tc.ann}
			err := s.Validate()
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate = %v, want ErrInvalid naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate = %v", err)
			}
			got, ok := s.ReadyHTTP()
			if got != tc.want || ok != tc.ok {
				t.Errorf("ReadyHTTP = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// The scaling labels are checked by Validate, which every path (CLI, API,
// stack file) runs before anything changes; each error names the label.
func TestValidateScalingLabels(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		ok         bool
	}{
		{LabelScaleType, "rps", true},
		{LabelScaleType, "capacity", true},
		{LabelScaleType, "cpu", true},
		{LabelScaleType, "queue", false},
		{LabelScaleType, "", false},
		{LabelScaleTarget, "50", true},
		{LabelScaleTarget, "0", false},
		{LabelScaleTarget, "-1", false},
		{LabelScaleTarget, "1.5", false},
		{LabelScaleProportion, "0.90", true},
		{LabelScaleProportion, "1", true},
		{LabelScaleProportion, "0", false},
		{LabelScaleProportion, "1.5", false},
		{LabelScaleProportion, "ninety", false},
		{LabelScaleFactor, "20", true},
		{LabelScaleFactor, "100", true},
		{LabelScaleFactor, "0", false},
		{LabelScaleFactor, "101", false},
	} {
		s := Spec{Name: "echo", Image: "echo:1", Labels: map[string]string{tc.key: tc.value}}
		err := s.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s=%q: Validate() = %v, want ok=%v", tc.key, tc.value, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.key)) {
			t.Errorf("%s=%q: error %q should wrap ErrInvalid and name the label", tc.key, tc.value, err)
		}
	}
}

func TestScaleRule(t *testing.T) {
	for _, tc := range []struct {
		labels   map[string]string
		typ      string
		target   int
		prop     float64
		step     int
		describe string
	}{
		{nil, ScaleCE, 50, 0.9, 4, "no labels: CE's rule, 20% of max 20"},
		{map[string]string{LabelScaleMax: "2"}, ScaleCE, 50, 0.9, 1, "the certifier's max 2"},
		{map[string]string{LabelScaleMax: "5", LabelScaleFactor: "10"}, ScaleCE, 50, 0.9, 1, "CE's current defaults"},
		{map[string]string{LabelScaleTarget: "10"}, ScaleRPS, 10, 0.9, 4, "a target alone: Pro's default type"},
		{map[string]string{LabelScaleProportion: "0.5"}, ScaleRPS, 50, 0.5, 4, "a proportion alone"},
		{map[string]string{LabelScaleType: "capacity"}, ScaleCapacity, 50, 0.9, 4, "type capacity"},
	} {
		s := Spec{Name: "echo", Image: "echo:1", Labels: tc.labels}
		if s.ScaleType() != tc.typ || s.ScaleTarget() != tc.target || s.ScaleProportion() != tc.prop || s.CEStep() != tc.step {
			t.Errorf("%s: type %q target %d proportion %v step %d; want %q %d %v %d", tc.describe,
				s.ScaleType(), s.ScaleTarget(), s.ScaleProportion(), s.CEStep(), tc.typ, tc.target, tc.prop, tc.step)
		}
	}
}
