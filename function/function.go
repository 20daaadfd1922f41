package function

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultNamespace is the namespace of everything deployed without one.
// The OpenFaaS API shows it under this name so that "NAME.openfaas-fn"
// resolves like "NAME".
const DefaultNamespace = "openfaas-fn"

// Labels with OpenFaaS's names that ember reads, and ember's own.
const (
	LabelScaleMin          = "com.openfaas.scale.min"
	LabelScaleMax          = "com.openfaas.scale.max"
	LabelScaleTarget       = "com.openfaas.scale.target"
	LabelScaleType         = "com.openfaas.scale.type"
	LabelScaleProportion   = "com.openfaas.scale.target-proportion"
	LabelScaleFactor       = "com.openfaas.scale.factor"
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

// Scale types: what the autoscaler's target counts. ScaleCE is no type
// label at all: OpenFaaS CE's fixed rule, not a target.
const (
	ScaleCapacity = "capacity" // requests in flight per replica
	ScaleRPS      = "rps"      // requests per second per replica
	ScaleCPU      = "cpu"      // millicores per replica
	ScaleCE       = ""
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
	// Kind is KindFunction (or empty) or KindService.
	Kind string `json:"kind,omitempty"`
	// Name is the function's key (see Qualify): NAME in the default
	// namespace, NAME.NAMESPACE in any other.
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
	// Service holds a service's settings; nil for a function.
	Service *Service `json:"service,omitempty"`

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

// Clone returns a deep copy, so a Spec handed to another goroutine cannot be
// changed under it.
func (s Spec) Clone() Spec {
	c := s
	c.Env = maps.Clone(s.Env)
	c.Labels = maps.Clone(s.Labels)
	c.Annotations = maps.Clone(s.Annotations)
	c.Secrets = slices.Clone(s.Secrets)
	c.Constraints = slices.Clone(s.Constraints)
	c.Service = s.Service.clone()
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

// Validate checks everything that can be checked without a registry.
func (s Spec) Validate() error {
	if err := ValidateKey(s.Name); err != nil {
		return err
	}
	if err := s.validateService(); err != nil {
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
	for _, key := range []string{LabelScaleMin, LabelScaleMax} {
		if v, ok := s.Labels[key]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 0 {
				return fmt.Errorf("%w: label %s=%q is not a non-negative integer", ErrInvalid, key, v)
			}
		}
	}
	if err := s.validateScaling(); err != nil {
		return err
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

// Qualify returns the key a function or secret named name in namespace ns
// is stored, run and routed under: the bare name in the default namespace
// and NAME.NS in any other. Keeping the default's keys bare keeps every
// store key, container, spec hash and metric label of a daemon from before
// namespaces the same, so an upgrade adopts its replicas untouched. Names
// are DNS labels without dots, so a key splits back unambiguously.
func Qualify(name, ns string) string {
	if ns == "" || ns == DefaultNamespace {
		return name
	}
	return name + "." + ns
}

// ValidateNamespace reports whether ns can name a namespace: a DNS-1123
// label, as Kubernetes requires.
func ValidateNamespace(ns string) error {
	if err := ValidateName(ns); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	return nil
}

// ValidateKey checks a key as Qualify makes it: a valid name, and when
// qualified, a valid namespace other than the default (whose keys are
// bare).
func ValidateKey(key string) error {
	name, ns := SplitRef(key)
	if err := ValidateName(name); err != nil {
		return err
	}
	if ns != DefaultNamespace || strings.Contains(key, ".") {
		if ns == DefaultNamespace {
			return fmt.Errorf("%w: %q: the default namespace is not written out", ErrInvalid, key)
		}
		if err := ValidateNamespace(ns); err != nil {
			return err
		}
		// A replica's hostname is its ID, KEY-XXXXXXXX, and Linux takes
		// at most 64 bytes.
		if len(key) > MaxKeyLen {
			return fmt.Errorf("%w: %s in namespace %s: name and namespace together are longer than %d characters", ErrInvalid, name, ns, MaxKeyLen-1)
		}
	}
	return nil
}

// MaxKeyLen is the longest key (NAME.NS) outside the default namespace:
// its replicas' hostnames, KEY-XXXXXXXX, must fit Linux's 64 bytes.
const MaxKeyLen = 64 - 9

// ResolveRef turns a reference as OpenFaaS clients send it ("NAME" or
// "NAME.NAMESPACE") into a function's key (see Qualify).
func ResolveRef(ref string) (string, error) {
	name, ns := SplitRef(ref)
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if err := ValidateNamespace(ns); err != nil {
		return "", err
	}
	if ns != DefaultNamespace {
		// ref is already NAME.NS, the key: no new string on the
		// gateway's per-request path.
		return ref, nil
	}
	return name, nil
}

// MetricName is the function_name label of a function's series:
// NAME.NAMESPACE, as the OpenFaaS gateway labels them whenever it knows
// its function namespace (faasd's does), so the default namespace's keep
// the label they had before namespaces.
func MetricName(key string) string {
	name, ns := SplitRef(key)
	return name + "." + ns
}

// Namespace is a function namespace: its name and, as OpenFaaS keeps them,
// labels and annotations.
type Namespace struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Namespace is the namespace the spec's function is in.
func (s Spec) Namespace() string {
	_, ns := SplitRef(s.Name)
	return ns
}

// BaseName is the function's name within its namespace.
func (s Spec) BaseName() string {
	name, _ := SplitRef(s.Name)
	return name
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
	// ReadyAfterSeconds is how long its process took from start to
	// ready, absent until it was. A replica adopted from an earlier
	// daemon is Adopted instead: its start-up was that daemon's.
	ReadyAfterSeconds float64 `json:"readyAfterSeconds,omitempty"`
	Adopted           bool    `json:"adopted,omitempty"`
	// CPU (millicores) and MemoryBytes are its use, in describe.
	CPU         float64 `json:"cpu,omitempty"`
	MemoryBytes float64 `json:"memoryBytes,omitempty"`
}

// Status is the observed state of a function.
type Status struct {
	// Phase is "active", "paused" (replicas frozen) or "zero" (no
	// process running).
	Phase    string    `json:"phase"`
	Desired  int       `json:"desired"`
	Ready    int       `json:"ready"`
	Replicas []Replica `json:"replicas"`
	Invoked  uint64    `json:"invocations"`
	// Rate is requests per second over about the last minute.
	Rate      float64 `json:"rate"`
	LastError string  `json:"lastError,omitempty"`
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
	// Replicas is each replica's share, by ID.
	Replicas map[string]Usage
}
