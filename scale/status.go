package scale

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/emberfaas/ember/function"
)

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
	cgs := make(map[string]string, len(f.replicas))
	for _, r := range f.replicas {
		cgs[r.id] = r.cgroup
	}
	f.mu.Unlock()
	// One reading per replica, summed: CPU is measured since the previous
	// reading of the same cgroup, so reading them twice would halve it.
	u := function.Usage{Replicas: make(map[string]function.Usage, len(cgs))}
	for id, cg := range cgs {
		ru := c.usage.Usage([]string{cg})
		u.CPU += ru.CPU
		u.MemoryBytes += ru.MemoryBytes
		u.Replicas[id] = ru
	}
	return u, nil
}

// WaitReady blocks until a replica running the function's current spec is
// ready, and otherwise explains why not: the image, the process's exit code
// and last output, or the missing lock file.
func (c *Controller) WaitReady(ctx context.Context, name string) error {
	for {
		f := c.lookup(name)
		if f == nil {
			return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
		}
		changed := f.changes() // before looking: a change after it closes it
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
		case <-changed:
		}
	}
}

// status reports the function's observed state.
func (f *fn) status() function.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	total := f.c.total(f)
	st := function.Status{Desired: f.desired, Invoked: total, Rate: f.c.rate(f.name, total, time.Now()), Phase: f.phase.String()}
	if f.createErr != "" {
		st.LastError = "create failed: " + f.createErr
	}
	if f.phase != phaseActive {
		st.Desired = 0
	}
	for _, r := range f.replicas {
		if r.state == function.StateReady {
			st.Ready++
		}
		rep := function.Replica{ID: r.id, State: r.state, Started: r.started, Restarts: r.restarts,
			LastExit: r.lastExit, Message: r.message, Hash: r.hash,
			ReadyAfterSeconds: r.readyAfter.Seconds(), Adopted: !r.adoptedAt.IsZero()}
		if r.ip.IsValid() {
			rep.IP = r.ip.String()
		}
		st.Replicas = append(st.Replicas, rep)
	}
	slices.SortFunc(st.Replicas, func(a, b function.Replica) int { return a.Started.Compare(b.Started) })
	return st
}

// currentReady reports whether a replica of the current spec is ready and,
// if not, the most telling reason. hopeless is set when waiting longer is
// pointless: the replica keeps exiting without ever having been ready.
//
// Ready means every replica in rotation runs the current spec: a deploy
// that returns while an old replica still serves would let the caller's
// next request reach the old version.
func (f *fn) currentReady() (ok, hopeless bool, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hash := f.spec.Hash()
	eps := *f.eps.Load()
	ok = len(eps) > 0
	rolling := false
	for _, r := range eps {
		if r.hash != hash {
			ok, rolling = false, true
		}
	}
	if ok {
		return true, false, ""
	}
	if rolling {
		// Said unless a new replica has something more telling.
		defer func() {
			if why == "" {
				why = "rolling update: old replicas still serving"
			}
		}()
	}
	crashing := false
	for _, r := range f.replicas {
		if r.hash != hash || r.state == function.StateReady {
			continue
		}
		if r.message != "" && (why == "" || r.state == function.StateExited) {
			why = r.message
		}
		if r.state == function.StateExited && r.restarts >= crashLoopRestarts && r.everReady.IsZero() {
			crashing = true
		}
	}
	switch {
	case crashing:
		return false, true, "crash-looping: " + why
	case f.createErr != "":
		// Failing time after time, as a crash loop does: waiting through
		// the backoff will not help.
		return false, f.createFails > crashLoopRestarts, "create failed: " + f.createErr
	}
	return false, false, why
}

// crashLoopRestarts is how many failed restarts of a never-ready replica
// make WaitReady give up early (after about 1s+2s of backoff).
const crashLoopRestarts = 2
