package scale

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/emberfaas/ember/function"
)

// A service runs under the same loop as a function with its own policy:
// one replica whatever the bounds say (function.Spec's replica methods),
// no autoscaling, pausing or parking, readiness by its healthcheck
// instead of a lock file and port 8080, and its address published to
// every replica's hosts file under its name.

// Healthchecker runs a service's healthcheck command in its container.
type Healthchecker interface {
	ProbeExec(ctx context.Context, id string, args []string) (bool, error)
}

// Hosts publishes services' names and addresses to replicas.
type Hosts interface {
	SetServiceHosts(map[string]netip.Addr) error
}

// Placer creates a service's replica at a given address. A service keeps
// one address for its lifetime (restarts, image updates, daemon restarts,
// reboots): functions reach it through their hosts files, which their
// resolvers cache (Go's for 5 s, others longer), so a new address would
// fail their calls for as long after the service is back.
type Placer interface {
	CreateAt(ctx context.Context, spec function.Spec, id string, ip netip.Addr) (function.Instance, error)
}

// errService refuses what only functions do.
func errService(name, what string) error {
	return fmt.Errorf("%w: %s is a service: services are not %s", function.ErrInvalid, name, what)
}

// waitHealthy runs a starting service replica's healthcheck until it
// passes; a service without one is ready once its process runs. Then it
// goes on checking, every interval, as compose does: a ready service whose
// check fails Retries times in a row is reported unhealthy, and ready
// again once a check passes. It is not restarted for it (compose restarts
// a container only when its process exits), nor taken from functions'
// hosts files: a database that answers slowly is better reached than not.
func (f *fn) waitHealthy(ctx context.Context, id string, spec function.Spec) {
	if spec.Service == nil || spec.Service.Healthcheck == nil {
		f.send(ctx, func() { f.becameReady(id, false) })
		return
	}
	test := spec.Service.Healthcheck.Test
	interval := spec.HealthInterval()
	delay := min(200*time.Millisecond, interval)
	var last string
	for {
		ok, err := f.c.health.ProbeExec(ctx, id, test)
		if ok {
			f.send(ctx, func() { f.becameReady(id, true) })
			break
		}
		msg := healthMessage(err)
		if msg != last {
			last = msg
			f.send(ctx, func() { f.setMessage(id, msg) })
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, interval)
	}
	retries, fails := spec.HealthRetries(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		ok, err := f.c.health.ProbeExec(ctx, id, test)
		switch {
		case ctx.Err() != nil:
			return
		case ok:
			if fails >= retries {
				f.send(ctx, func() { f.healthyAgain(id) })
			}
			fails = 0
		default:
			fails++
			if fails == retries {
				msg := fmt.Sprintf("%s (%d checks in a row)", healthMessage(err), fails)
				f.send(ctx, func() { f.unhealthy(id, msg) })
			}
		}
	}
}

func healthMessage(err error) string {
	if err != nil {
		return "healthcheck: " + err.Error()
	}
	return "healthcheck failing"
}

// unhealthy reports a ready service replica whose healthcheck keeps
// failing.
func (f *fn) unhealthy(id, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil || r.state != function.StateReady {
		return
	}
	r.state, r.message = function.StateUnhealthy, why
	f.c.metrics.healthFailures.WithLabelValues(f.metricName()).Inc()
	f.c.log.Warn("service unhealthy", "fn", f.name, "replica", id, "why", why)
	f.publish()
}

// healthyAgain puts an unhealthy service replica whose check passed back
// to ready.
func (f *fn) healthyAgain(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil || r.state != function.StateUnhealthy {
		return
	}
	r.state, r.message = function.StateReady, ""
	f.c.log.Info("service healthy again", "fn", f.name, "replica", id)
	f.publish()
}

// ServiceIP returns the address of a service's replica, ready or not: a
// published port forwards there, and a connection to a service that is
// restarting fails as it would to any server.
func (c *Controller) ServiceIP(name string) (netip.Addr, bool) {
	f := (*c.fns.Load())[name]
	if f == nil || !f.service || f.gone.Load() {
		return netip.Addr{}, false
	}
	ip, _ := f.serviceIP()
	return ip, ip.IsValid()
}

// serviceIP is the address a service's name should point at: a ready
// replica's first, else the newest with an address, else the one its
// next replica will take. While it restarts its name keeps its address:
// a name that vanished would fail calls for as long as resolvers cache
// its absence.
func (f *fn) serviceIP() (netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var best *replica
	for _, r := range f.replicas {
		if !r.ip.IsValid() || r.state == function.StateStopping {
			continue
		}
		switch {
		case best == nil,
			r.state == function.StateReady && best.state != function.StateReady,
			(r.state == function.StateReady) == (best.state == function.StateReady) && r.started.After(best.started):
			best = r
		}
	}
	if best == nil {
		return f.svcIP, false
	}
	return best.ip, best.state == function.StateReady
}

// servicesFirst starts the loops of fns, functions the daemon found with
// nothing running (after a reboot), once every service is ready or after
// Config.ServiceWait. Functions declare no dependencies, and one started
// before the database it calls would fail its first requests; requests
// that arrive meanwhile are held as for any wake-up. A function that was
// running is adopted at once: it has been calling its services all along.
func (c *Controller) servicesFirst(ctx context.Context, fns []*fn) {
	start := time.Now()
	deadline := time.NewTimer(c.cfg.ServiceWait)
	defer deadline.Stop()
	waited, services := true, 0
wait:
	for _, s := range *c.fns.Load() {
		if !s.service {
			continue
		}
		services++
		for {
			ch := s.changes()
			if len(*s.eps.Load()) > 0 || s.gone.Load() {
				break
			}
			select {
			case <-ch:
			case <-deadline.C:
				c.log.Warn("services not ready: starting functions anyway", "waited", c.cfg.ServiceWait, "service", s.name)
				waited = false
				break wait
			case <-ctx.Done():
				return
			}
		}
	}
	if waited && services > 0 {
		c.log.Info("services ready: starting functions", "waited", time.Since(start).Round(time.Millisecond))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fns {
		if (*c.fns.Load())[f.name] == f {
			c.startLoop(f)
		}
	}
}

// hasReplicas reports whether the function has replicas, adopted ones at
// the daemon's start.
func (f *fn) hasReplicas() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.replicas) > 0
}

// kickHosts asks the hosts loop to publish services' addresses again.
func (c *Controller) kickHosts() {
	select {
	case c.hostsKick <- struct{}{}:
	default:
	}
}

// hostsLoop publishes services' addresses whenever one may have changed.
// It runs apart from the functions' loops: it reads every service's
// replicas, which no function's loop may do under its own lock.
func (c *Controller) hostsLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.hostsKick:
		}
		m := map[string]netip.Addr{}
		for name, f := range *c.fns.Load() {
			if !f.service || f.gone.Load() {
				continue
			}
			if ip, _ := f.serviceIP(); ip.IsValid() {
				m[name] = ip
			}
		}
		if err := c.hosts.SetServiceHosts(m); err != nil {
			c.log.Warn("publish service addresses", "err", err)
		}
	}
}

func kindOf(s function.Spec) string {
	if s.IsService() {
		return function.KindService
	}
	return function.KindFunction
}
