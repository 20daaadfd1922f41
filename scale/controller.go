package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

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
	health  Healthchecker
	hosts   Hosts
	place   Placer
	counts  Counts
	tally   tally
	log     *slog.Logger
	metrics *metrics
	janitor *janitor

	// autoCold is set while the autoscaler sleeps; Acquire then kicks it.
	autoCold atomic.Bool
	autoKick chan struct{}
	// cpuSaturated is Config.CPUSaturated as of the autoscaler's current
	// wake-up; only the autoscaler goroutine touches it.
	cpuSaturated bool
	// probeWake restarts the sleeping probe loop when a replica is ready.
	probeWake chan struct{}
	// hostsKick asks the hosts loop to publish services' addresses.
	hostsKick chan struct{}
	// creates holds a token per replica creation in flight, host-wide.
	creates chan struct{}

	// fns is replaced, never mutated, so Acquire reads it without a lock.
	fns atomic.Pointer[map[string]*fn]
	// running is Run's context, for the data plane's Refused: a request
	// must not wait on mu, which Deploy holds across a store write.
	running atomic.Pointer[context.Context]

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
		logs: d.Logs, usage: d.Usage, sweeper: d.Sweeper, st: d.Store, health: d.Health, hosts: d.Hosts, place: d.Place, counts: d.Counts, log: log, metrics: newMetrics(reg),
		hostsKick: make(chan struct{}, 1),
		autoKick:  make(chan struct{}, 1), probeWake: make(chan struct{}, 1), creates: make(chan struct{}, cfg.MaxCreates)}
	c.fns.Store(&map[string]*fn{})
	c.tally.base, c.tally.flushed, c.tally.samples = map[string]uint64{}, map[string]uint64{}, map[string][]countSample{}
	c.janitor = newJanitor(func(ctx context.Context) error { return c.sweeper.Sweep(ctx, c.live) },
		cfg.CleanupBackoffMin, cfg.CleanupBackoffMax, log, reg)
	if reg != nil {
		reg.MustRegister(newServiceCount(c))
	}
	return c
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
	c.running.Store(&ctx)
	c.started = true
	var later []*fn
	for _, f := range *c.fns.Load() {
		if f.service || f.hasReplicas() {
			c.startLoop(f)
		} else {
			later = append(later, f)
		}
	}
	if len(later) > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.servicesFirst(ctx, later)
		}()
	}
	c.wg.Add(4)
	go func() {
		defer c.wg.Done()
		c.tallyLoop(ctx)
	}()
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
	if c.hosts != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.hostsLoop(ctx)
		}()
		c.kickHosts()
	}
	c.mu.Unlock()
	<-ctx.Done()
	c.wg.Wait()
	return nil
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
