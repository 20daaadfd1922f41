package function

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
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

	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Hash identifies what a replica was started from: two specs with equal
// hashes produce identical containers, so a changed hash means the running
// replicas are outdated. Scale and timestamps are deliberately left out.
func (s Spec) Hash() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	// json.Encoder sorts map keys, so the hash is stable.
	_ = enc.Encode([]any{s.Image, s.EnvProcess, s.Env, s.Labels, s.Annotations,
		s.Secrets, s.Limits, s.Requests, s.ReadOnlyRootFilesystem})
	return hex.EncodeToString(h.Sum(nil))[:16]
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

// MinReplicas is the label com.openfaas.scale.min, default 1.
func (s Spec) MinReplicas() int { return s.labelInt(LabelScaleMin, 1) }

// MaxReplicas is the label com.openfaas.scale.max, default 20.
func (s Spec) MaxReplicas() int { return s.labelInt(LabelScaleMax, 20) }

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
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: environment variable name %q", ErrInvalid, k)
		}
	}
	for _, key := range []string{LabelScaleMin, LabelScaleMax, LabelScaleTarget} {
		if v, ok := s.Labels[key]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 0 {
				return fmt.Errorf("%w: label %s=%q is not a non-negative integer", ErrInvalid, key, v)
			}
		}
	}
	if s.MaxReplicas() < s.MinReplicas() {
		return fmt.Errorf("%w: label %s=%d is below %s=%d", ErrInvalid, LabelScaleMax, s.MaxReplicas(), LabelScaleMin, s.MinReplicas())
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
	if s.Limits != nil {
		if s.Limits.Memory != "" {
			if _, err := ParseMemory(s.Limits.Memory); err != nil {
				return fmt.Errorf("limits: %w", err)
			}
		}
		if s.Limits.CPU != "" {
			if _, err := ParseCPU(s.Limits.CPU); err != nil {
				return fmt.Errorf("limits: %w", err)
			}
		}
	}
	for _, sec := range s.Secrets {
		if err := ValidateName(sec); err != nil {
			return fmt.Errorf("secret: %w", err)
		}
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

// Replica states, as DESIGN.md's lifecycle describes them.
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

// ParseMemory parses a Kubernetes memory quantity ("128Mi", "1G", "512000")
// into bytes.
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
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%w: memory %q is not a quantity such as 128Mi", ErrInvalid, q)
	}
	b := int64(f * float64(mult))
	if b < 4<<20 {
		return 0, fmt.Errorf("%w: memory %q is below the 4Mi a process needs", ErrInvalid, q)
	}
	return b, nil
}

// ParseCPU parses a Kubernetes CPU quantity ("500m", "0.5", "2") into
// millicores.
func ParseCPU(q string) (int64, error) {
	s := strings.TrimSpace(q)
	var milli float64
	var err error
	if strings.HasSuffix(s, "m") {
		milli, err = strconv.ParseFloat(strings.TrimSuffix(s, "m"), 64)
	} else {
		milli, err = strconv.ParseFloat(s, 64)
		milli *= 1000
	}
	if err != nil || milli < 1 {
		return 0, fmt.Errorf("%w: cpu %q is not a quantity such as 500m or 0.5", ErrInvalid, q)
	}
	return int64(milli), nil
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
