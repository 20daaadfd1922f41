package function

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultNamespace is the only function namespace ember has. The OpenFaaS API
// shows it under this name so that "NAME.openfaas-fn" resolves like "NAME".
const DefaultNamespace = "openfaas-fn"

// Labels with OpenFaaS's names that ember reads, and ember's own.
const (
	LabelScaleMin          = "com.openfaas.scale.min"
	LabelScaleMax          = "com.openfaas.scale.max"
	LabelScaleTarget       = "com.openfaas.scale.target"
	LabelScaleType         = "com.openfaas.scale.type"
	LabelScaleZero         = "com.openfaas.scale.zero"
	LabelScaleZeroDuration = "com.openfaas.scale.zero-duration"
	LabelScaleDownWindow   = "com.openfaas.scale.down.window"
	LabelDeleteAfter       = "ember.scale.delete-after"
)

// Annotations with OpenFaaS's names for an HTTP readiness check on top of
// the lock file and the open port.
const (
	AnnotationReadyPath         = "com.openfaas.ready.http.path"
	AnnotationReadyInitialDelay = "com.openfaas.ready.http.initialDelay"
	AnnotationReadyPeriod       = "com.openfaas.ready.http.periodSeconds"
)

// DefaultReadyPeriod is how often a ready replica's readiness path is
// checked when periodSeconds is not given: Kubernetes' default.
const DefaultReadyPeriod = 10 * time.Second

// Scale types: what the autoscaler's target counts.
const (
	ScaleCapacity = "capacity" // requests in flight per replica
	ScaleRPS      = "rps"      // requests per second per replica
)

// ErrNotFound is returned (wrapped) when a function does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned (wrapped) when creating something that exists.
var ErrExists = errors.New("already exists")

// ErrInvalid is returned (wrapped) for input that fails validation.
var ErrInvalid = errors.New("invalid")

// Invalidf returns an error that reads as the message alone but matches
// ErrInvalid, for messages other tools expect word for word.
func Invalidf(format string, args ...any) error {
	return invalidError(fmt.Sprintf(format, args...))
}

type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

// ErrImageNotFound is returned (wrapped) when a registry or archive does
// not have the image asked for: the user's mistake.
var ErrImageNotFound = errors.New("image not found")

// ErrNoReplica is returned (wrapped) when no replica became ready in time
// for a request.
var ErrNoReplica = errors.New("no ready replica")

// ErrQueueFull is returned (wrapped) when too many requests already wait
// for a function to wake.
var ErrQueueFull = errors.New("too many requests waiting")

// ErrImage is returned (wrapped) for any other failure to obtain an image,
// such as an unreachable registry.
var ErrImage = errors.New("image unavailable")

// ErrRuntimeUnavailable is returned (wrapped) when the container runtime
// cannot be reached. It says nothing about the replica asked about: its
// process keeps running and serving while containerd restarts, so callers
// retry later instead of counting it against the replica.
var ErrRuntimeUnavailable = errors.New("container runtime unavailable")

// ErrNoSpace is returned (wrapped) when the disk ember keeps its state on
// is full: a write was refused, reads still work.
var ErrNoSpace = errors.New("insufficient storage")

// Resources are Kubernetes-style quantities ("128Mi", "500m"), kept as the
// user wrote them so the API returns exactly what was sent.
type Resources struct {
	Memory string `json:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// Spec is the desired state of one function.
type Spec struct {
	Name                   string            `json:"name"`
	Image                  string            `json:"image"`
	EnvProcess             string            `json:"envProcess,omitempty"`
	Env                    map[string]string `json:"env,omitempty"`
	Labels                 map[string]string `json:"labels,omitempty"`
	Annotations            map[string]string `json:"annotations,omitempty"`
	Secrets                []string          `json:"secrets,omitempty"`
	Constraints            []string          `json:"constraints,omitempty"`
	Limits                 *Resources        `json:"limits,omitempty"`
	Requests               *Resources        `json:"requests,omitempty"`
	ReadOnlyRootFilesystem bool              `json:"readOnlyRootFilesystem,omitempty"`

	// Replicas is the desired replica count set by a scale request; zero
	// means "use the min label".
	Replicas int `json:"replicas,omitempty"`
	// ScaleMin and ScaleMax, set by `ember scale --min/--max`, override
	// the min and max labels. Like Replicas they are not part of the hash:
	// bounds do not change a container, so setting them rolls nothing.
	ScaleMin *int `json:"scaleMin,omitempty"`
	ScaleMax *int `json:"scaleMax,omitempty"`

	// RestartGeneration counts `ember restart`s: raising it changes Hash,
	// so the controller replaces every replica in a rolling update.
	RestartGeneration int64 `json:"restartGeneration,omitempty"`

	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// LabelFunctionName is the label OpenFaaS providers put on every function,
// set to its name. ember shows it in the API but never stores it: it is
// derived, and a client that sends back what it read must not change the
// spec.
const LabelFunctionName = "faas_function"

// Normalize returns the spec in the one form that ember stores and
// hashes, so that one function sent by faas-cli ("labels":{}), a stack
// file or ember's CLI (no labels at all) is one spec: empty maps, lists
// and resources become nil, an image without tag or digest gets ":latest"
// (as faas-cli adds it), and the derived faas_function label is dropped.
func (s Spec) Normalize() Spec {
	c := s.Clone()
	c.Image = NormalizeImage(c.Image)
	if c.Labels != nil {
		delete(c.Labels, LabelFunctionName)
	}
	c.Env, c.Labels, c.Annotations = nilIfEmpty(c.Env), nilIfEmpty(c.Labels), nilIfEmpty(c.Annotations)
	if len(c.Secrets) == 0 {
		c.Secrets = nil
	}
	if len(c.Constraints) == 0 {
		c.Constraints = nil
	}
	if c.Limits != nil && *c.Limits == (Resources{}) {
		c.Limits = nil
	}
	if c.Requests != nil && *c.Requests == (Resources{}) {
		c.Requests = nil
	}
	return c
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// NormalizeImage appends ":latest" to a reference without tag or digest,
// as faas-cli does before it sends one, so "echo" and "echo:latest" are
// the same image. A port ("127.0.0.1:5000/echo") is not a tag.
func NormalizeImage(ref string) string {
	if ref == "" || strings.Contains(ref, "@") {
		return ref
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	if strings.Contains(last, ":") {
		return ref
	}
	return ref + ":latest"
}

// Hash identifies what a replica was started from: two specs with equal
// hashes produce identical containers, so a changed hash means the running
// replicas are outdated. Scale and timestamps are deliberately left out.
//
// The hash is taken of the normalised spec, so empty and absent maps hash
// alike. The encoding is unchanged from the first release: a spec that
// was already normal (nil rather than empty maps, a tagged image) keeps
// its hash, and replicas of it keep running across an upgrade.
func (s Spec) Hash() string { return s.Normalize().rawHash() }

// rawHash is the hash of the spec's fields exactly as they are.
func (s Spec) rawHash() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	// json.Encoder sorts map keys, so the hash is stable.
	_ = enc.Encode([]any{s.Image, s.EnvProcess, s.Env, s.Labels, s.Annotations,
		s.Secrets, s.Limits, s.Requests, s.ReadOnlyRootFilesystem})
	// Only when set, so that specs stored before restarts existed keep
	// their hash and an upgrade restarts nothing.
	if s.RestartGeneration != 0 {
		fmt.Fprintf(h, "restart %d\n", s.RestartGeneration)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// SameContainer reports whether a replica started with hash runs what s
// describes: hash is s's Hash, or a hash that an ember from before
// normalisation gave the same function — with "{}" for an empty map, as a
// spec deployed by faas-cli had until the daemon restarted, or with the
// image as it was written. Adoption uses it so that an upgrade restarts
// nothing.
func (s Spec) SameContainer(hash string) bool {
	if hash == s.Hash() {
		return true
	}
	// Each empty field as nil or as empty, with the stored image and
	// with the normalised one.
	empty := map[string]string{}
	envs, labels, annotations := []map[string]string{s.Env}, []map[string]string{s.Labels}, []map[string]string{s.Annotations}
	if len(s.Env) == 0 {
		envs = []map[string]string{nil, empty}
	}
	if len(s.Labels) == 0 {
		labels = []map[string]string{nil, empty}
	}
	if len(s.Annotations) == 0 {
		annotations = []map[string]string{nil, empty}
	}
	secrets := [][]string{s.Secrets}
	if len(s.Secrets) == 0 {
		secrets = [][]string{nil, {}}
	}
	for _, image := range []string{s.Image, NormalizeImage(s.Image)} {
		for _, env := range envs {
			for _, l := range labels {
				for _, a := range annotations {
					for _, sec := range secrets {
						v := s
						v.Image, v.Env, v.Labels, v.Annotations, v.Secrets = image, env, l, a, sec
						if v.rawHash() == hash {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// Clone returns a deep copy, so a Spec handed to another goroutine cannot be
// changed under it.
func (s Spec) Clone() Spec {
	c := s
	c.Env = maps.Clone(s.Env)
	c.Labels = maps.Clone(s.Labels)
	c.Annotations = maps.Clone(s.Annotations)
	c.Secrets = slices.Clone(s.Secrets)
	c.Constraints = slices.Clone(s.Constraints)
	if s.ScaleMin != nil {
		v := *s.ScaleMin
		c.ScaleMin = &v
	}
	if s.ScaleMax != nil {
		v := *s.ScaleMax
		c.ScaleMax = &v
	}
	if s.Limits != nil {
		l := *s.Limits
		c.Limits = &l
	}
	if s.Requests != nil {
		r := *s.Requests
		c.Requests = &r
	}
	return c
}

// ReplicaLimit is the most replicas a function may have, on every path:
// scale requests, bounds and the max label.
const ReplicaLimit = 1000

// MinReplicas is ScaleMin, else the label com.openfaas.scale.min, default 1.
func (s Spec) MinReplicas() int {
	if s.ScaleMin != nil {
		return *s.ScaleMin
	}
	return s.labelInt(LabelScaleMin, 1)
}

// MaxReplicas is ScaleMax, else the label com.openfaas.scale.max, default 20.
func (s Spec) MaxReplicas() int {
	if s.ScaleMax != nil {
		return *s.ScaleMax
	}
	return s.labelInt(LabelScaleMax, 20)
}

// Autoscaled reports whether the autoscaler moves the replica count: the
// bounds leave it room.
func (s Spec) Autoscaled() bool { return s.MaxReplicas() > s.MinReplicas() }

// DesiredReplicas is the replica count the controller converges to.
func (s Spec) DesiredReplicas() int {
	if s.Replicas > 0 {
		return s.Replicas
	}
	return s.MinReplicas()
}

// ScaleTarget is the load per replica the autoscaler aims for (label
// com.openfaas.scale.target, default 10).
func (s Spec) ScaleTarget() int { return max(1, s.labelInt(LabelScaleTarget, 10)) }

// ScaleType is "capacity" (default) or "rps".
func (s Spec) ScaleType() string {
	if strings.TrimSpace(s.Labels[LabelScaleType]) == ScaleRPS {
		return ScaleRPS
	}
	return ScaleCapacity
}

// ScaleToZero reports whether idle replicas are paused and then deleted.
func (s Spec) ScaleToZero() bool {
	v, _ := strconv.ParseBool(strings.TrimSpace(s.Labels[LabelScaleZero]))
	return v
}

// ZeroDuration is how long a function must be idle before it is paused
// (default 5m).
func (s Spec) ZeroDuration() time.Duration {
	return s.labelDuration(LabelScaleZeroDuration, 5*time.Minute)
}

// DeleteAfter is how long a function stays paused before its replicas are
// deleted (default 30m).
func (s Spec) DeleteAfter() time.Duration { return s.labelDuration(LabelDeleteAfter, 30*time.Minute) }

// DownWindow is how long the autoscaler waits before scaling down
// (default 60s).
func (s Spec) DownWindow() time.Duration { return s.labelDuration(LabelScaleDownWindow, time.Minute) }

func (s Spec) labelDuration(key string, def time.Duration) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(s.Labels[key]))
	if err != nil || d < 0 {
		return def
	}
	return d
}

func (s Spec) labelInt(key string, def int) int {
	v, ok := s.Labels[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return def
	}
	return n
}

// Validate checks everything that can be checked without a registry.
func (s Spec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if strings.TrimSpace(s.Image) == "" {
		return fmt.Errorf("%w: image is required", ErrInvalid)
	}
	if strings.ContainsAny(s.Image, " \t\n") {
		return fmt.Errorf("%w: image %q contains whitespace", ErrInvalid, s.Image)
	}
	if strings.ContainsRune(s.EnvProcess, 0) {
		return fmt.Errorf("%w: envProcess %q contains a NUL byte", ErrInvalid, s.EnvProcess)
	}
	for k, v := range s.Env {
		if err := validateEnvName(k); err != nil {
			return err
		}
		// execve takes NUL-terminated strings: a NUL would silently cut
		// the value short. Newlines are fine (PEM keys hold them).
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: environment variable %s: value contains a NUL byte", ErrInvalid, k)
		}
	}
	for _, key := range []string{LabelScaleMin, LabelScaleMax, LabelScaleTarget} {
		if v, ok := s.Labels[key]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 0 {
				return fmt.Errorf("%w: label %s=%q is not a non-negative integer", ErrInvalid, key, v)
			}
		}
	}
	if err := s.ValidateBounds(); err != nil {
		return err
	}
	for _, key := range []string{LabelScaleZeroDuration, LabelDeleteAfter, LabelScaleDownWindow} {
		if v, ok := s.Labels[key]; ok {
			if d, err := time.ParseDuration(strings.TrimSpace(v)); err != nil || d < 0 {
				return fmt.Errorf("%w: label %s=%q is not a duration such as 5m", ErrInvalid, key, v)
			}
		}
	}
	if v, ok := s.Labels[LabelScaleType]; ok && v != ScaleCapacity && v != ScaleRPS {
		return fmt.Errorf("%w: label %s=%q: want %s or %s", ErrInvalid, LabelScaleType, v, ScaleCapacity, ScaleRPS)
	}
	if v, ok := s.Labels[LabelScaleZero]; ok {
		if _, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("%w: label %s=%q is not true or false", ErrInvalid, LabelScaleZero, v)
		}
	}
	if _, _, err := s.parseReadyHTTP(); err != nil {
		return err
	}
	for _, r := range []struct {
		field string
		res   *Resources
	}{{"limits", s.Limits}, {"requests", s.Requests}} {
		if r.res == nil {
			continue
		}
		if r.res.Memory != "" {
			if _, err := ParseMemory(r.res.Memory); err != nil {
				return fmt.Errorf("%s: %w", r.field, err)
			}
		}
		if r.res.CPU != "" {
			if _, err := ParseCPU(r.res.CPU); err != nil {
				return fmt.Errorf("%s: %w", r.field, err)
			}
		}
	}
	for _, sec := range s.Secrets {
		if err := ValidateName(sec); err != nil {
			return fmt.Errorf("secret: %w", err)
		}
	}
	return s.validateTimeouts()
}

// validateEnvName refuses names a process environment cannot carry or
// that no shell or program could read back: empty, with '=', or with
// control characters or spaces (a newline would forge a second variable
// in any "K=V" listing, such as /proc/PID/environ read line by line).
func validateEnvName(k string) error {
	if k == "" {
		return fmt.Errorf("%w: environment variable name is empty", ErrInvalid)
	}
	for _, c := range k {
		if c == '=' || c == ' ' || c < 0x20 || c == 0x7f || c == utf8.RuneError {
			return fmt.Errorf("%w: environment variable name %q must not contain '=', spaces or control characters", ErrInvalid, k)
		}
	}
	return nil
}

// ValidateBounds checks the replica bounds, from labels or overrides:
// 0 <= min <= max <= ReplicaLimit.
func (s Spec) ValidateBounds() error {
	lo, hi := s.MinReplicas(), s.MaxReplicas()
	switch {
	case s.ScaleMin != nil && *s.ScaleMin < 0, s.ScaleMax != nil && *s.ScaleMax < 0:
		return fmt.Errorf("%w: min and max replicas must not be negative", ErrInvalid)
	case hi > ReplicaLimit:
		return fmt.Errorf("%w: max replicas %d is above the limit of %d", ErrInvalid, hi, ReplicaLimit)
	case hi < lo:
		return fmt.Errorf("%w: max replicas %d is below min replicas %d", ErrInvalid, hi, lo)
	}
	return nil
}

// ReadyHTTP is an HTTP readiness check: a replica is ready only when a GET
// of Path answers 2xx, first InitialDelay after it started, then every
// Period while it runs.
type ReadyHTTP struct {
	Path         string
	InitialDelay time.Duration
	Period       time.Duration
}

// ReadyHTTP returns the function's HTTP readiness check; ok is false when
// the annotation com.openfaas.ready.http.path is not set. Invalid values
// (refused by Validate) read as the defaults.
func (s Spec) ReadyHTTP() (_ ReadyHTTP, ok bool) {
	r, ok, err := s.parseReadyHTTP()
	if err != nil {
		r = ReadyHTTP{Path: r.Path, Period: DefaultReadyPeriod}
	}
	return r, ok
}

// parseReadyHTTP reads the readiness annotations. initialDelay takes a Go
// duration ("2s", as OpenFaaS's examples write it) or plain seconds ("2",
// as Kubernetes' initialDelaySeconds); periodSeconds takes whole seconds
// only, as its name says. The delay and period are checked even without a
// path, so that a typo is not silently ignored.
func (s Spec) parseReadyHTTP() (r ReadyHTTP, ok bool, err error) {
	r.Period = DefaultReadyPeriod
	path, ok := s.Annotations[AnnotationReadyPath]
	r.Path = strings.TrimSpace(path)
	if ok && (!strings.HasPrefix(r.Path, "/") || strings.ContainsAny(r.Path, " \t\n\r")) {
		return r, ok, fmt.Errorf("%w: annotation %s=%q is not a path such as /ready", ErrInvalid, AnnotationReadyPath, path)
	}
	if v, set := s.Annotations[AnnotationReadyInitialDelay]; set {
		v = strings.TrimSpace(v)
		d, derr := time.ParseDuration(v)
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, derr = time.Duration(n)*time.Second, nil
		}
		if derr != nil || d < 0 {
			return r, ok, fmt.Errorf("%w: annotation %s=%q is not a duration such as 2s", ErrInvalid, AnnotationReadyInitialDelay, v)
		}
		r.InitialDelay = d
	}
	if v, set := s.Annotations[AnnotationReadyPeriod]; set {
		n, perr := strconv.Atoi(strings.TrimSpace(v))
		if perr != nil || n < 1 {
			return r, ok, fmt.Errorf("%w: annotation %s=%q is not a whole number of seconds of at least 1", ErrInvalid, AnnotationReadyPeriod, v)
		}
		r.Period = time.Duration(n) * time.Second
	}
	return r, ok, nil
}

// ValidateName reports whether name is a DNS-1123 label: 1-63 characters of
// lowercase letters, digits and '-', starting and ending alphanumeric. Names
// become containerd IDs, file names and URL path segments, so anything else
// is refused.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: name is required", ErrInvalid)
	}
	if len(name) > 63 {
		return fmt.Errorf("%w: name %q is longer than 63 characters", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if alnum || c == '-' && i > 0 && i < len(name)-1 {
			continue
		}
		return fmt.Errorf("%w: name %q must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)", ErrInvalid, name)
	}
	return nil
}

// SplitRef splits "NAME.NAMESPACE" on the last dot, as OpenFaaS does. A
// reference without a dot is in the default namespace.
func SplitRef(ref string) (name, namespace string) {
	if i := strings.LastIndexByte(ref, '.'); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return ref, DefaultNamespace
}

// ResolveRef turns a reference as OpenFaaS clients send it ("NAME" or
// "NAME.openfaas-fn") into a function name. Any other namespace is unknown.
func ResolveRef(ref string) (string, error) {
	name, ns := SplitRef(ref)
	if ns != DefaultNamespace {
		return "", fmt.Errorf("namespace %q: %w", ns, ErrNotFound)
	}
	return name, nil
}

// State is the lifecycle state of one replica.
type State string

// Replica states, as docs/ARCHITECTURE.md's lifecycle describes them.
const (
	StateStarting  State = "starting"
	StateReady     State = "ready"
	StateUnhealthy State = "unhealthy"
	StatePaused    State = "paused"
	StateStopping  State = "stopping"
	StateExited    State = "exited"
	// StateZero is a scaled-to-zero replica: no process, but its
	// container, snapshot, network and a created task are kept so the next
	// request only has to start it.
	StateZero State = "zero"
)

// Replica is the observed state of one replica.
type Replica struct {
	ID       string    `json:"id"`
	IP       string    `json:"ip,omitempty"`
	State    State     `json:"state"`
	Started  time.Time `json:"started"`
	Restarts int       `json:"restarts"`
	// LastExit says why the previous process ended ("exit code 2",
	// "OOM-killed"), empty if it never did.
	LastExit string `json:"lastExit,omitempty"`
	// Message explains a replica that is not ready.
	Message string `json:"message,omitempty"`
	Hash    string `json:"hash,omitempty"`
}

// Status is the observed state of a function.
type Status struct {
	// Phase is "active", "paused" (replicas frozen) or "zero" (no
	// process running).
	Phase     string    `json:"phase"`
	Desired   int       `json:"desired"`
	Ready     int       `json:"ready"`
	Replicas  []Replica `json:"replicas"`
	Invoked   uint64    `json:"invocations"`
	LastError string    `json:"lastError,omitempty"`
}

// MaxMemory is the largest memory quantity ember accepts, exclusive: 1Ti.
// The function package does not read the host, so the cap is fixed; it
// is far above what one replica of a single-host platform can use, and
// it keeps byte counts well inside int64 (9e18 overflowed before).
const MaxMemory = 1 << 40

// MaxMilliCPU is the largest CPU quantity ember accepts: 1024 cores, more
// than any one host has. It keeps the CFS quota (cores × period) from
// overflowing.
const MaxMilliCPU = 1024 * 1000

// ParseMemory parses a Kubernetes memory quantity ("128Mi", "1G", "512000")
// into bytes: at least 4Mi, below MaxMemory.
func ParseMemory(q string) (int64, error) {
	s := strings.TrimSpace(q)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	f, err := parseFinite(s)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%w: memory %q is not a quantity such as 128Mi", ErrInvalid, q)
	}
	b := f * float64(mult)
	if b >= MaxMemory {
		return 0, fmt.Errorf("%w: memory %q is not below the limit of 1Ti", ErrInvalid, q)
	}
	if b < 4<<20 {
		return 0, fmt.Errorf("%w: memory %q is below the 4Mi a process needs", ErrInvalid, q)
	}
	return int64(b), nil
}

// ParseCPU parses a Kubernetes CPU quantity ("500m", "0.5", "2") into
// millicores: at least 1m, at most MaxMilliCPU.
func ParseCPU(q string) (int64, error) {
	s := strings.TrimSpace(q)
	var milli float64
	var err error
	if strings.HasSuffix(s, "m") {
		milli, err = parseFinite(strings.TrimSuffix(s, "m"))
	} else {
		milli, err = parseFinite(s)
		milli *= 1000
	}
	if err != nil || milli < 1 {
		return 0, fmt.Errorf("%w: cpu %q is not a quantity such as 500m or 0.5", ErrInvalid, q)
	}
	if milli > MaxMilliCPU {
		return 0, fmt.Errorf("%w: cpu %q is above the limit of %d cores", ErrInvalid, q, MaxMilliCPU/1000)
	}
	return int64(milli), nil
}

// parseFinite is strconv.ParseFloat without the words it also accepts
// ("NaN", "Inf", "infinity"): none of them is a quantity.
func parseFinite(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return f, nil
}

// TaskStatus is a replica's task state as the container runtime reports it.
type TaskStatus string

// Task states. TaskNone means the container exists without a task (the host
// rebooted or containerd restarted).
const (
	TaskRunning TaskStatus = "running"
	TaskPaused  TaskStatus = "paused"
	TaskStopped TaskStatus = "stopped"
	TaskCreated TaskStatus = "created"
	TaskNone    TaskStatus = "none"
)

// Instance is what the container runtime knows of one replica.
type Instance struct {
	ID       string
	Function string
	Hash     string
	IP       netip.Addr
	Pid      uint32
	Status   TaskStatus
	Created  time.Time
	// Cgroup is the replica's cgroup path, for freezing it.
	Cgroup string
}

// Exit is how a replica's process ended.
type Exit struct {
	Code      uint32
	At        time.Time
	OOMKilled bool
	Err       error
}

func (e Exit) String() string {
	switch {
	case e.Err != nil:
		return e.Err.Error()
	case e.OOMKilled:
		return fmt.Sprintf("OOM-killed (exit code %d)", e.Code)
	case e.Code == 137:
		return "killed (exit code 137)"
	default:
		return fmt.Sprintf("exit code %d", e.Code)
	}
}

// Lease is a ready replica lent to one request by the controller. Release
// must be called exactly once when the request is done.
type Lease interface {
	Addr() string
	Release()
	// Refused reports that the replica refused a connection: it leaves
	// rotation at once, before the runtime reports its exit, and comes back
	// when it accepts connections again.
	Refused()
	// Timeout is how long the function may take to answer; zero means the
	// gateway's default.
	Timeout() time.Duration
}

// LogLine is one line of a replica's output.
type LogLine struct {
	Time     time.Time
	Function string
	Instance string
	Text     string
}

// LogQuery selects log lines.
type LogQuery struct {
	Instance string    // one replica, or all
	Since    time.Time // lines at or after
	Tail     int       // the last N lines only (0: all)
	Follow   bool      // then keep streaming new lines until the caller stops
}

// Usage is a function's resource use, summed over its replicas.
type Usage struct {
	// CPU is in millicores, averaged since the previous measurement.
	CPU float64
	// MemoryBytes is the memory its replicas use.
	MemoryBytes float64
}
