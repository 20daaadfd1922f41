package scale

import (
	"context"
	"slices"
	"time"

	"github.com/emberfaas/ember/function"
)

// reconcile moves the replica set one step towards the desired state and
// returns when it next needs to run for a timed action (a restart after
// backoff).
func (f *fn) reconcile(ctx context.Context) (next time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.phase != phaseActive && !f.removing {
		return time.Time{}
	}
	hash := f.spec.Hash()
	desired := f.desired
	if f.removing {
		desired = 0
	}
	for _, r := range f.replicas {
		if r.state == function.StateZero && r.message == "" && r.hash == hash && !f.removing {
			// A created, unstarted task in an active function: left by a
			// daemon killed between creating a task and starting it. It
			// counts toward desired, so start it; an outdated one is
			// removed below.
			r.state = function.StateStarting
			r.started = time.Now()
			f.unpark(ctx, r)
		}
	}
	var cur, old []*replica
	curReady, stopping := 0, 0
	for _, r := range f.replicas {
		if r.state == function.StateStopping {
			stopping++
			continue
		}
		if r.hash == hash && !r.replace {
			cur = append(cur, r)
			if r.state == function.StateReady {
				curReady++
			}
		} else {
			old = append(old, r)
		}
	}
	// Start what is missing, all together on the function's creation
	// backoff and within its share of creation slots.
	now := time.Now()
	if f.service && (len(old) > 0 || stopping > 0) {
		// A service owns its volumes: two of its processes must never run
		// at once, so an update stops the old replica before the new one
		// starts, and its clients wait for the restart.
		for _, r := range old {
			f.drain(ctx, r)
		}
		old = nil
	} else if missing := desired - len(cur); missing > 0 {
		if now.Before(f.createAt) {
			next = f.createAt
		} else {
			for range min(missing, f.createLimit()-f.creating) {
				f.create(ctx)
			}
		}
	}
	// Remove current replicas beyond desired: not-ready ones first, then
	// the newest.
	if extra := len(cur) - desired; extra > 0 {
		slices.SortFunc(cur, byRemoval)
		for _, r := range cur[:extra] {
			f.drain(ctx, r)
		}
	}
	// Outdated or replaced replicas keep serving until enough current ones
	// are ready to carry the load: no request fails during an update.
	// An adopted one counts as serving until its readiness is confirmed
	// again (a stat and a dial) or denied: draining it first would leave
	// an update interrupted by a daemon restart with nothing to serve.
	keepOld := max(0, desired-curReady)
	slices.SortFunc(old, byRemoval)
	for i, r := range old {
		serving := r.state == function.StateReady || r.state == function.StateUnhealthy ||
			(r.adopted && r.state == function.StateStarting)
		if i >= len(old)-keepOld && serving {
			continue
		}
		f.drain(ctx, r)
	}
	// Restarts due.
	for _, r := range f.replicas {
		if r.state != function.StateExited || r.restartAt.IsZero() {
			continue
		}
		if !now.Before(r.restartAt) {
			r.restartAt = time.Time{}
			f.restart(ctx, r)
		} else if next.IsZero() || r.restartAt.Before(next) {
			next = r.restartAt
		}
	}
	return next
}

// byRemoval orders replicas so the least useful go first and, of equal
// use, the newest: the longest running have proved themselves.
func byRemoval(a, b *replica) int {
	if d := rankForRemoval(a) - rankForRemoval(b); d != 0 {
		return d
	}
	return b.started.Compare(a.started)
}

// rankForRemoval orders replicas so the least useful go first.
func rankForRemoval(r *replica) int {
	switch r.state {
	case function.StateExited:
		return 0
	case function.StateUnhealthy:
		return 1
	case function.StateZero, function.StatePaused:
		return 2
	case function.StateStarting:
		return 3
	default:
		return 4
	}
}
