package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/function"
)

// Config tunes the controller. Zero values take the documented defaults.
type Config struct {
	// HealthInterval is how often ready replicas' lock files are checked
	// (default 5s, the HEALTHCHECK interval of OpenFaaS's examples).
	HealthInterval time.Duration
	// HealthMisses is how many consecutive missing-lock checks make a
	// replica be replaced (default 3).
	HealthMisses int
	// ProbeEvery is the longest a ready replica goes without a lock check
	// through task exec, when the budget below allows (default 1m).
	ProbeEvery time.Duration
	// ProbeSpacing is the shortest time between any two exec probes
	// (default 10s). A runc exec costs about 100 ms of CPU, so this caps
	// health checking at about 1% of one core however many replicas run;
	// between execs, a stat through /proc/PID/root (no process) watches
	// every ready replica each HealthInterval.
	ProbeSpacing time.Duration
	// DrainTimeout bounds how long a replica leaving service waits for its
	// in-flight requests (default 30s).
	DrainTimeout time.Duration
	// StopTimeout is the time between SIGTERM and SIGKILL (default 5s).
	StopTimeout time.Duration
	// WakeTimeout bounds how long a request waits for a ready replica
	// (default 30s).
	WakeTimeout time.Duration
	// CleanupBackoffMin and CleanupBackoffMax bound the delays between
	// retries of a failed cleanup (1s doubling to 1m).
	CleanupBackoffMin, CleanupBackoffMax time.Duration
	// BackoffMin and BackoffMax bound restart delays (1s doubling to 5m);
	// BackoffReset is how long a replica must run to reset it (10m).
	// Failed creations back off the same way, per function: after one,
	// the function's missing replicas wait; a replica created since that
	// stays ready for BackoffReset, or a new spec, resets it.
	BackoffMin, BackoffMax, BackoffReset time.Duration
	// MaxCreates bounds the replica creations in flight on the host
	// (default 4; each function has at most 2, 1 after a failure). A
	// create is a snapshot, a CNI ADD with its iptables changes and a runc
	// start, a few hundred ms of CPU, and CNI serialises on a host-wide
	// lock: more at once only makes each slower.
	MaxCreates int
	// AutoscaleInterval is how often the autoscaler samples load while
	// any function is busy (default 250ms); idle, it sleeps.
	AutoscaleInterval time.Duration
	// LoadWindow is the window load is averaged over (default 3s).
	LoadWindow time.Duration
	// MaxWaiting bounds the requests one function may hold while it wakes
	// (default 1000); more get ErrQueueFull.
	MaxWaiting int
	// MemoryLow reports host memory pressure, when paused functions are
	// parked early; default: MemAvailable below 10% of MemTotal.
	MemoryLow func() bool
	// Secrets, when set, is checked on deploy: a function that lists a
	// missing secret is refused.
	Secrets Secrets
	// Port is the port functions serve on (8080).
	Port int
	// Dial checks that a replica accepts connections; default a TCP dial.
	Dial func(ctx context.Context, addr string) error
	// ReadyGet asks a replica's HTTP readiness path and returns the status
	// code; default a plain GET of http://ADDR/PATH. The context carries a
	// short timeout per attempt.
	ReadyGet func(ctx context.Context, addr, path string) (status int, err error)
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HealthInterval, 5*time.Second)
	def(&c.ProbeEvery, time.Minute)
	def(&c.ProbeSpacing, 10*time.Second)
	def(&c.DrainTimeout, 30*time.Second)
	def(&c.StopTimeout, 5*time.Second)
	def(&c.WakeTimeout, 30*time.Second)
	def(&c.BackoffMin, time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	def(&c.BackoffReset, 10*time.Minute)
	def(&c.CleanupBackoffMin, time.Second)
	def(&c.CleanupBackoffMax, time.Minute)
	def(&c.AutoscaleInterval, 250*time.Millisecond)
	def(&c.LoadWindow, 3*time.Second)
	if c.MaxWaiting == 0 {
		c.MaxWaiting = 1000
	}
	if c.MaxCreates <= 0 {
		c.MaxCreates = 4
	}
	if c.MemoryLow == nil {
		c.MemoryLow = memoryLow
	}
	if c.HealthMisses == 0 {
		c.HealthMisses = 3
	}
	if c.Port == 0 {
		c.Port = 8080
	}
	if c.Dial == nil {
		d := net.Dialer{Timeout: time.Second}
		c.Dial = func(ctx context.Context, addr string) error {
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				conn.Close()
			}
			return err
		}
	}
	if c.ReadyGet == nil {
		c.ReadyGet = readyGetter()
	}
}

// Controller converges functions' replica sets on their specs.
type Controller struct {
	cfg     Config
	images  Images
	reps    Replicas
	tasks   Tasks
	freezer Freezer
	prober  Prober
	logs    Logs
	usage   Usage
	sweeper Sweeper
	st      Store
	log     *slog.Logger
	metrics *metrics
	janitor *janitor

	// autoCold is set while the autoscaler sleeps; Acquire then kicks it.
	autoCold atomic.Bool
	autoKick chan struct{}
	// probeWake restarts the sleeping probe loop when a replica is ready.
	probeWake chan struct{}
	// creates holds a token per replica creation in flight, host-wide.
	creates chan struct{}

	// fns is replaced, never mutated, so Acquire reads it without a lock.
	fns atomic.Pointer[map[string]*fn]

	mu      sync.Mutex // guards below; serialises changes to fns
	ctx     context.Context
	wg      sync.WaitGroup
	started bool
}

// New returns a controller; call Recover, then Run. Metrics are
// registered on reg (nil: not registered).
func New(cfg Config, d Deps, log *slog.Logger, reg prometheus.Registerer) *Controller {
	d.check()
	cfg.setDefaults()
	c := &Controller{cfg: cfg, images: d.Images, reps: d.Replicas, tasks: d.Tasks, freezer: d.Freezer, prober: d.Prober,
		logs: d.Logs, usage: d.Usage, sweeper: d.Sweeper, st: d.Store, log: log, metrics: newMetrics(reg),
		autoKick: make(chan struct{}, 1), probeWake: make(chan struct{}, 1), creates: make(chan struct{}, cfg.MaxCreates)}
	c.fns.Store(&map[string]*fn{})
	c.janitor = newJanitor(func(ctx context.Context) error { return c.sweeper.Sweep(ctx, c.live) },
		cfg.CleanupBackoffMin, cfg.CleanupBackoffMax, log, reg)
	if reg != nil {
		reg.MustRegister(newServiceCount(c))
	}
	return c
}

// Recover adopts the replicas that survived a daemon restart and prepares
// a loop per function. Loops start with Run, and so does the sweep of
// anything that belongs to no live replica: it can take seconds, and the
// daemon serves meanwhile.
func (c *Controller) Recover(ctx context.Context) error {
	specs, err := c.st.Functions()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	insts, err := c.reps.Replicas(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	fns := make(map[string]*fn, len(specs))
	for _, s := range specs {
		fns[s.Name] = newFn(c, s)
	}
	for _, in := range insts {
		f := fns[in.Function]
		if f == nil || !in.IP.IsValid() || in.Cgroup == "" {
			continue
		}
		switch in.Status {
		case function.TaskRunning, function.TaskPaused, function.TaskCreated:
		default:
			continue
		}
		f.adopt(in)
		c.log.Info("adopted replica", "fn", in.Function, "replica", in.ID, "ip", in.IP, "task", in.Status)
	}
	for _, f := range fns {
		f.settleAdopted()
	}
	c.fns.Store(&fns)
	return nil
}

// live reports whether id is a replica the controller tracks, being
// created and being removed included. The sweep asks it about each thing
// it finds, after finding it: a replica is tracked before any of its
// resources exists and until all of them are gone, so a sweep never takes
// what a replica created meanwhile.
func (c *Controller) live(id string) bool {
	for _, f := range *c.fns.Load() {
		f.mu.Lock()
		_, ok := f.replicas[id]
		f.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// Cleanup reports what the janitor has left to free and its failures.
func (c *Controller) Cleanup() CleanupStatus { return c.janitor.status() }

// Run starts every function's loop and blocks until ctx ends. Loops stop
// with ctx; the tasks keep running under containerd for the next daemon.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	c.ctx = ctx
	c.started = true
	for _, f := range *c.fns.Load() {
		c.startLoop(f)
	}
	c.wg.Add(3)
	go func() {
		defer c.wg.Done()
		c.probeLoop(ctx)
	}()
	// The first pass frees what the previous daemon left.
	c.janitor.kick()
	go func() {
		defer c.wg.Done()
		c.janitor.run(ctx)
	}()
	go func() {
		defer c.wg.Done()
		c.autoLoop(ctx)
	}()
	c.mu.Unlock()
	<-ctx.Done()
	c.wg.Wait()
	return nil
}

// Deploy validates spec, makes its image present (pulling it), stores it
// and starts converging: a new function gets its replicas, an existing one
// a rolling update. Nothing is changed when any step before storing fails.
func (c *Controller) Deploy(ctx context.Context, spec function.Spec) error {
	// One form whatever the client: an unchanged redeploy, from any of
	// them, must not roll the replicas.
	spec = spec.Normalize()
	if err := spec.Validate(); err != nil {
		return err
	}
	if c.cfg.Secrets != nil {
		for _, s := range spec.Secrets {
			if !c.cfg.Secrets.Exists(s) {
				return function.Invalidf("unable to find secret: %s", s)
			}
		}
	}
	if _, err := c.images.EnsureImage(ctx, spec.Image); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now().UTC()
	spec.CreatedAt, spec.UpdatedAt = now, now
	old, err := c.st.Function(spec.Name)
	switch {
	case err == nil:
		spec.CreatedAt = old.CreatedAt
		if spec.Replicas == 0 {
			spec.Replicas = old.Replicas
		}
		// Bounds set with `ember scale --min/--max` outlive redeploys,
		// as the replica count does.
		if spec.ScaleMin == nil && spec.ScaleMax == nil {
			spec.ScaleMin, spec.ScaleMax = old.ScaleMin, old.ScaleMax
			if err := spec.ValidateBounds(); err != nil {
				return fmt.Errorf("%w (bounds set with scale --min/--max)", err)
			}
		}
		// Deployments do not carry it: a redeploy of the same spec after a
		// restart must not restart again.
		spec.RestartGeneration = old.RestartGeneration
	case !errors.Is(err, function.ErrNotFound):
		return err
	}
	if err := c.st.PutFunction(spec); err != nil {
		return fmt.Errorf("store %s: %w", spec.Name, err)
	}
	fns := *c.fns.Load()
	defer c.kickAutoscaler()
	if f := fns[spec.Name]; f != nil && !f.isRemoving() {
		f.setSpec(spec)
		f.touched.Store(true)
		c.log.Info("updated", "fn", spec.Name, "image", spec.Image)
		return nil
	}
	f := newFn(c, spec)
	next := cloneMap(fns)
	next[spec.Name] = f
	c.fns.Store(&next)
	if c.started {
		c.startLoop(f)
	}
	c.log.Info("deployed", "fn", spec.Name, "image", spec.Image)
	return nil
}

// Scale sets a function's desired replica count.
func (c *Controller) Scale(ctx context.Context, name string, replicas int) error {
	if replicas < 0 || replicas > function.ReplicaLimit {
		return fmt.Errorf("%w: replicas must be between 0 and %d", function.ErrInvalid, function.ReplicaLimit)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f := (*c.fns.Load())[name]
	if f == nil || f.isRemoving() {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	spec := f.specCopy()
	spec.Replicas = replicas
	if err := c.st.PutFunction(spec); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	f.setReplicas(c.ctx, replicas)
	f.touched.Store(true)
	c.kickAutoscaler()
	c.log.Info("scaled", "fn", name, "replicas", replicas)
	return nil
}

// SetBounds overrides a function's min and max replicas (nil keeps one
// as it is) and brings the replica count within them. The replicas keep
// running: bounds are not part of the spec's hash.
func (c *Controller) SetBounds(ctx context.Context, name string, lo, hi *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := (*c.fns.Load())[name]
	if f == nil || f.isRemoving() {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	spec := f.specCopy()
	if lo != nil {
		spec.ScaleMin = lo
	}
	if hi != nil {
		spec.ScaleMax = hi
	}
	if err := spec.ValidateBounds(); err != nil {
		return err
	}
	if spec.Replicas > 0 {
		spec.Replicas = min(max(spec.Replicas, spec.MinReplicas(), 1), spec.MaxReplicas())
	}
	if err := c.st.PutFunction(spec); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	f.setSpec(spec)
	f.touched.Store(true)
	c.kickAutoscaler()
	c.log.Info("bounds set", "fn", name, "min", spec.MinReplicas(), "max", spec.MaxReplicas())
	return nil
}

// Restart replaces every replica of a function with a fresh one, through
// the same rolling update as a deploy: new replicas are ready before the
// old ones drain. It raises the spec's restart generation, stored first,
// so a restart survives a daemon restart half-way.
func (c *Controller) Restart(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := (*c.fns.Load())[name]
	if f == nil || f.isRemoving() {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	spec := f.specCopy()
	spec.RestartGeneration++
	spec.UpdatedAt = time.Now().UTC()
	if err := c.st.PutFunction(spec); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	f.setSpec(spec)
	f.touched.Store(true)
	c.kickAutoscaler()
	c.log.Info("restarting", "fn", name, "generation", spec.RestartGeneration)
	return nil
}

// Remove deletes a function: it leaves the store at once, then its
// replicas drain and are removed. Remove returns when all are gone or ctx
// ends (removal then goes on in the background).
func (c *Controller) Remove(ctx context.Context, name string) error {
	c.mu.Lock()
	f := (*c.fns.Load())[name]
	if f == nil || f.isRemoving() {
		c.mu.Unlock()
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	if err := c.st.DeleteFunction(name); err != nil {
		c.mu.Unlock()
		return err
	}
	f.markRemoving()
	if !c.started {
		// No loop to drain it (tests that never Run): drop it now.
		c.dropLocked(f)
		close(f.done)
	}
	c.mu.Unlock()
	c.log.Info("removing", "fn", name)
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropped is called by a function's loop when its last replica is gone
// after Remove.
func (c *Controller) dropped(f *fn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(f)
}

func (c *Controller) dropLocked(f *fn) {
	fns := *c.fns.Load()
	if fns[f.name] != f {
		return
	}
	c.metrics.forget(f)
	next := cloneMap(fns)
	delete(next, f.name)
	c.fns.Store(&next)
}

// Spec returns a function's desired state.
func (c *Controller) Spec(name string) (function.Spec, error) {
	f := c.lookup(name)
	if f == nil {
		return function.Spec{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	return f.specCopy(), nil
}

// Status returns a function's observed state.
func (c *Controller) Status(name string) (function.Status, error) {
	f := c.lookup(name)
	if f == nil {
		return function.Status{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	return f.status(), nil
}

// Functions lists the specs of all functions, sorted by name.
func (c *Controller) Functions() []function.Spec {
	fns := *c.fns.Load()
	out := make([]function.Spec, 0, len(fns))
	for _, f := range fns {
		if !f.isRemoving() {
			out = append(out, f.specCopy())
		}
	}
	slices.SortFunc(out, func(a, b function.Spec) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Usage returns a function's CPU and memory use, read from its replicas'
// cgroups.
func (c *Controller) Usage(name string) (function.Usage, error) {
	f := c.lookup(name)
	if f == nil {
		return function.Usage{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	f.mu.Lock()
	cgs := make([]string, 0, len(f.replicas))
	for _, r := range f.replicas {
		cgs = append(cgs, r.cgroup)
	}
	f.mu.Unlock()
	return c.usage.Usage(cgs), nil
}

// WaitReady blocks until a replica running the function's current spec is
// ready, and otherwise explains why not: the image, the process's exit code
// and last output, or the missing lock file.
func (c *Controller) WaitReady(ctx context.Context, name string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		f := c.lookup(name)
		if f == nil {
			return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
		}
		ok, hopeless, why := f.currentReady()
		if ok {
			return nil
		}
		if hopeless {
			return fmt.Errorf("%s not ready: %s", name, why)
		}
		select {
		case <-ctx.Done():
			if why == "" {
				why = "no replica started yet"
			}
			return fmt.Errorf("%s not ready: %s", name, why)
		case <-t.C:
		}
	}
}

// subnetFull is how the network reports that CNI found no free address;
// an interface, so this package need not import the network's.
type subnetFull interface {
	FullSubnet() netip.Prefix
}

// explainCreate says why a creation failed. An exhausted subnet is said
// plainly, with what holds its addresses, since only a larger subnet (or
// fewer replicas) helps.
func (c *Controller) explainCreate(err error) string {
	var sf subnetFull
	if errors.As(err, &sf) {
		return fmt.Sprintf("subnet %s has no free address: %d replicas running; use a larger --subnet", sf.FullSubnet(), c.addressed())
	}
	return err.Error()
}

// addressed counts the replicas holding an address, host-wide.
func (c *Controller) addressed() int {
	n := 0
	for _, f := range *c.fns.Load() {
		f.mu.Lock()
		for _, r := range f.replicas {
			if r.ip.IsValid() {
				n++
			}
		}
		f.mu.Unlock()
	}
	return n
}

func (c *Controller) wakeProber() {
	select {
	case c.probeWake <- struct{}{}:
	default:
	}
}

func (c *Controller) kickAutoscaler() {
	select {
	case c.autoKick <- struct{}{}:
	default:
	}
}

func (c *Controller) lookup(name string) *fn {
	f := (*c.fns.Load())[name]
	if f == nil || f.isRemoving() {
		return nil
	}
	return f
}

func cloneMap(m map[string]*fn) map[string]*fn {
	next := make(map[string]*fn, len(m)+1)
	for k, v := range m {
		next[k] = v
	}
	return next
}
