package scale

import (
	"context"
	"time"

	"github.com/emberfaas/ember/function"
)

// The controller reaches the container runtime through the roles below,
// each what one part of it uses: the roles are small so that a reader sees
// what a part may do, and a test double need only cover what is used.
// One runtime plays all of them in the daemon.

// Images makes an image present, pulling it if needed, and returns its
// digest. Deploy uses it before anything is stored.
type Images interface {
	EnsureImage(ctx context.Context, ref string) (string, error)
}

// Replicas creates and removes replicas (container, snapshot, network,
// task) and lists what exists, for adoption after a restart.
type Replicas interface {
	Create(ctx context.Context, spec function.Spec, id string) (function.Instance, error)
	Remove(ctx context.Context, fn, id string, grace time.Duration) error
	Replicas(ctx context.Context) ([]function.Instance, error)
}

// Tasks runs a replica's process inside the container it keeps: waits for
// its exit, restarts it, parks it (process stopped, task created) and
// starts it again.
type Tasks interface {
	Wait(ctx context.Context, id string) (<-chan function.Exit, error)
	Restart(ctx context.Context, id string) (pid uint32, err error)
	Park(ctx context.Context, id string, grace time.Duration) error
	Unpark(ctx context.Context, id string) (pid uint32, err error)
}

// Freezer pauses and resumes a replica's processes through its cgroup.
type Freezer interface {
	Freeze(ctx context.Context, cgroup string) error
	Thaw(cgroup string) error
}

// Prober looks for a replica's lock file: cheaply through /proc/PID/root,
// or by exec in the container, which also sees it as the process does.
type Prober interface {
	LockVisible(pid uint32) (bool, error)
	ProbeLock(ctx context.Context, id string) (bool, error)
}

// Logs gives a replica's last lines of output, to explain an exit.
type Logs interface {
	LogTail(fn, id string, n int) []string
}

// Usage reads CPU and memory use from cgroups.
type Usage interface {
	Usage(cgroups []string) function.Usage
}

// Sweeper frees what belongs to no replica keep reports live.
type Sweeper interface {
	Sweep(ctx context.Context, keep func(id string) bool) error
}

// Secrets tells which secrets exist.
type Secrets interface {
	Exists(name string) bool
}

// Store is the durable desired state.
type Store interface {
	PutFunction(function.Spec) error
	Function(name string) (function.Spec, error)
	Functions() ([]function.Spec, error)
	DeleteFunction(name string) error
}

// Deps are what the controller works through. Every field is required.
type Deps struct {
	Images   Images
	Replicas Replicas
	Tasks    Tasks
	Freezer  Freezer
	Prober   Prober
	Logs     Logs
	Usage    Usage
	Sweeper  Sweeper
	Store    Store
	// Health runs services' healthchecks and Hosts publishes their
	// addresses; both may be nil when no service is ever deployed.
	Health Healthchecker
	Hosts  Hosts
	// Place creates a service's replica at its predecessor's address; nil,
	// a service's replicas take any address.
	Place Placer
	// Counts keeps invocation totals across restarts; nil: they start
	// at zero with each daemon.
	Counts Counts
}

// check panics on a missing dependency: a wiring mistake, better found
// at start than at the first replica that needs it.
func (d Deps) check() {
	for _, dep := range []struct {
		name string
		set  bool
	}{
		{"Images", d.Images != nil}, {"Replicas", d.Replicas != nil}, {"Tasks", d.Tasks != nil},
		{"Freezer", d.Freezer != nil}, {"Prober", d.Prober != nil}, {"Logs", d.Logs != nil},
		{"Usage", d.Usage != nil}, {"Sweeper", d.Sweeper != nil}, {"Store", d.Store != nil},
	} {
		if !dep.set {
			panic("scale.New: Deps." + dep.name + " is nil")
		}
	}
}
