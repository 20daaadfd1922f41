package scale

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emberfaas/ember/function"
)

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
			// Only secrets of the function's own namespace can be mounted.
			if !c.cfg.Secrets.Exists(function.Qualify(s, spec.Namespace())) {
				return function.Invalidf("unable to find secret: %s", s)
			}
		}
	}
	if spec.IsService() && (c.health == nil || c.hosts == nil) {
		return fmt.Errorf("%w: this controller runs no services", function.ErrInvalid)
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
		if old.IsService() != spec.IsService() {
			return fmt.Errorf("%w: %s is a %s", function.ErrExists, spec.Name, kindOf(old))
		}
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
	if old := fns[spec.Name]; old != nil {
		// Still draining after a remove (faas-cli deploy --replace): its
		// count goes on in its successor's.
		c.forgetCount(old)
	}
	f := newFn(c, spec)
	next := cloneMap(fns)
	next[spec.Name] = f
	c.fns.Store(&next)
	c.startRate(f)
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
	return c.update(name, func(f *fn, s *function.Spec) error {
		if f.service {
			return errService(name, "scaled")
		}
		s.Replicas = replicas
		return nil
	}, func(f *fn, _ function.Spec) {
		f.setReplicas(c.ctx, replicas)
		c.log.Info("scaled", "fn", name, "replicas", replicas)
	})
}

// SetBounds overrides a function's min and max replicas (nil keeps one
// as it is) and brings the replica count within them. The replicas keep
// running: bounds are not part of the spec's hash.
func (c *Controller) SetBounds(ctx context.Context, name string, lo, hi *int) error {
	return c.update(name, func(f *fn, s *function.Spec) error {
		if f.service {
			return errService(name, "scaled")
		}
		if lo != nil {
			s.ScaleMin = lo
		}
		if hi != nil {
			s.ScaleMax = hi
		}
		if err := s.ValidateBounds(); err != nil {
			return err
		}
		if s.Replicas > 0 {
			s.Replicas = min(max(s.Replicas, s.MinReplicas(), 1), s.MaxReplicas())
		}
		return nil
	}, func(f *fn, s function.Spec) {
		f.setSpec(s)
		c.log.Info("bounds set", "fn", name, "min", s.MinReplicas(), "max", s.MaxReplicas())
	})
}

// Restart replaces every replica of a function with a fresh one, through
// the same rolling update as a deploy: new replicas are ready before the
// old ones drain. It raises the spec's restart generation, stored first,
// so a restart survives a daemon restart half-way.
func (c *Controller) Restart(_ context.Context, name string) error {
	return c.update(name, func(_ *fn, s *function.Spec) error {
		s.RestartGeneration++
		s.UpdatedAt = time.Now().UTC()
		return nil
	}, func(f *fn, s function.Spec) {
		f.setSpec(s)
		c.log.Info("restarting", "fn", name, "generation", s.RestartGeneration)
	})
}

// update changes a deployed function's stored spec, under c.mu so that
// changes are applied in the order they are stored: edit a copy, store it,
// then apply it to the running function. Nothing changes when edit or the
// store refuses.
func (c *Controller) update(name string, edit func(*fn, *function.Spec) error, apply func(*fn, function.Spec)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := (*c.fns.Load())[name]
	if f == nil || f.isRemoving() {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	spec := f.specCopy()
	if err := edit(f, &spec); err != nil {
		return err
	}
	if err := c.st.PutFunction(spec); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	apply(f, spec)
	f.touched.Store(true)
	c.kickAutoscaler()
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
	if f.service {
		c.kickHosts()
	}
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
	c.forgetCount(f)
	fns := *c.fns.Load()
	if fns[f.name] != f {
		return
	}
	c.metrics.forget(f)
	next := cloneMap(fns)
	delete(next, f.name)
	c.fns.Store(&next)
}
