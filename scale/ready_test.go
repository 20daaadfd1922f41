package scale_test

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// readySpec is echo with an HTTP readiness path; kv adds annotations.
func readySpec(image string, kv ...string) function.Spec {
	s := spec("echo", image)
	s.Annotations = map[string]string{function.AnnotationReadyPath: "/ready"}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Annotations[kv[i]] = kv[i+1]
	}
	return s
}

func (e *env) message(name, id string) string {
	e.t.Helper()
	for _, r := range e.status(name).Replicas {
		if r.ID == id {
			return r.Message
		}
	}
	return ""
}

// A replica with a readiness path stays out of rotation, with the path and
// the last answer as its message, until the path answers 2xx.
func TestReadyHTTPGatesRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.setNewReady(0) // not listening on the path's server yet
		e.start()
		e.deploy(readySpec("echo:1"))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		id := e.rt.createdFor("echo")[0].ID
		if got := e.states("echo")[id]; got != function.StateStarting {
			t.Fatalf("state %q with the path refusing, want %q", got, function.StateStarting)
		}
		if got, want := e.message("echo", id), "readiness GET /ready: connection refused"; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}

		e.rt.setReady(id, 503)
		time.Sleep(time.Second)
		synctest.Wait()
		err := e.c.WaitReady(ctxTimeout(t, 10*time.Second), "echo")
		if err == nil || !strings.Contains(err.Error(), "readiness GET /ready answered 503") {
			t.Errorf("WaitReady = %v, want it to name the path and the 503", err)
		}
		if got := e.status("echo").Ready; got != 0 {
			t.Errorf("%d ready while the path answers 503, want 0", got)
		}
		// Retried often enough to be quick, not in a tight loop.
		if n := e.rt.count("ReadyGet /ready", "echo"); n < 20 || n > 100 {
			t.Errorf("%d readiness GETs in 16s, want one every 250ms or so", n)
		}

		e.rt.setReady(id, 204)
		if err := e.c.WaitReady(ctxTimeout(t, time.Second), "echo"); err != nil {
			t.Errorf("WaitReady after 204 = %v", err)
		}
		if got, want := e.acquire("echo"), e.addrs("echo")[id]; got != want {
			t.Errorf("Acquire = %q, want %q", got, want)
		}
		if got := e.message("echo", id); got != "" {
			t.Errorf("message of a ready replica = %q, want none", got)
		}
	})
}

// No readiness GET before the initial delay; ready right after it.
func TestReadyHTTPInitialDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 3 * time.Second
		e := newEnv(t, scale.Config{})
		e.start()
		start := time.Now()
		e.deploy(readySpec("echo:1", function.AnnotationReadyInitialDelay, "3s"))
		time.Sleep(delay - time.Millisecond)
		synctest.Wait()
		if n := e.rt.count("ReadyGet /ready", "echo"); n != 0 {
			t.Errorf("%d readiness GETs before the initial delay, want 0", n)
		}
		id := e.rt.createdFor("echo")[0].ID
		if got, want := e.message("echo", id), "readiness GET /ready waits for its initial delay of 3s"; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
		if err := e.c.WaitReady(ctxTimeout(t, time.Second), "echo"); err != nil {
			t.Fatalf("WaitReady = %v", err)
		}
		calls := e.rt.calledAt("ReadyGet /ready", "echo")
		if len(calls) != 1 || calls[0].Sub(start) < delay {
			t.Errorf("readiness GETs at %v after the start, want one at %s", calls, delay)
		}
	})
}

// A ready replica's path is checked every periodSeconds: a failure takes it
// out of rotation (without replacing it), a pass brings it back.
func TestReadyHTTPPeriodic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = 3 * time.Second
		e := newEnv(t, scale.Config{HealthInterval: 5 * time.Second, HealthMisses: 3})
		e.start()
		s := readySpec("echo:1", function.AnnotationReadyPeriod, "3")
		s.Labels = map[string]string{function.LabelScaleMin: "2", function.LabelScaleMax: "2"}
		e.deploy(s)
		synctest.Wait()
		ready := e.readyIDs("echo")
		if len(ready) != 2 {
			t.Fatalf("ready = %v, want 2", ready)
		}
		sick, well := ready[0], ready[1]
		addrs := e.addrs("echo")
		before := len(e.rt.calledAt("ReadyGet /ready", "echo"))

		e.rt.setReady(sick, 500)
		time.Sleep(period)
		synctest.Wait()
		if got := e.states("echo")[sick]; got != function.StateUnhealthy {
			t.Fatalf("after a period of 500s: state %q, want %q", got, function.StateUnhealthy)
		}
		if got, want := e.message("echo", sick), "readiness GET /ready answered 500"; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
		for range 20 {
			if got := e.acquire("echo"); got != addrs[well] {
				t.Fatalf("Acquire = %q, want only %q", got, addrs[well])
			}
		}
		// Failing for long is not a reason to replace it, and the lock
		// checks in between (still present) do not bring it back.
		for range 120 {
			time.Sleep(500 * time.Millisecond)
			synctest.Wait()
			if got := e.states("echo")[sick]; got != function.StateUnhealthy {
				t.Fatalf("path failing, lock present: state %q, want %q", got, function.StateUnhealthy)
			}
		}
		if got := len(e.rt.createdFor("echo")); got != 2 {
			t.Errorf("created %d replicas while one fails its readiness, want 2", got)
		}
		if got := e.states("echo")[sick]; got != function.StateUnhealthy {
			t.Errorf("after a minute: state %q, want %q", got, function.StateUnhealthy)
		}
		// Two replicas, one check each per period.
		if n := len(e.rt.calledAt("ReadyGet /ready", "echo")) - before; n < 40 || n > 42 {
			t.Errorf("%d periodic readiness GETs in 63s, want 42 (2 replicas every 3s)", n)
		}

		e.rt.setReady(sick, 200)
		time.Sleep(period)
		synctest.Wait()
		if got := e.readyIDs("echo"); !slices.Equal(got, ready) {
			t.Errorf("after the path passes again: ready = %v, want %v", got, ready)
		}
		seen := map[string]bool{}
		for range 10 {
			seen[e.acquire("echo")] = true
		}
		if !seen[addrs[sick]] || !seen[addrs[well]] {
			t.Errorf("Acquire returned %v, want both", seen)
		}

		// A missing lock wins over a passing path, and a failing path over
		// a present lock: the replica is back only when both pass.
		e.rt.setLock(sick, false)
		e.rt.setReady(sick, 500)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := e.states("echo")[sick]; got != function.StateUnhealthy {
			t.Errorf("no lock, path failing: state %q, want %q", got, function.StateUnhealthy)
		}
		e.rt.setLock(sick, true)
		for range 50 { // never back in between, not even for a moment
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			if got := e.states("echo")[sick]; got != function.StateUnhealthy {
				t.Fatalf("lock back, path failing: state %q, want %q", got, function.StateUnhealthy)
			}
		}
		e.rt.setLock(sick, false)
		e.rt.setReady(sick, 200)
		time.Sleep(5*time.Second + period) // a lock check, then a path check
		synctest.Wait()
		if got := e.states("echo")[sick]; got != function.StateUnhealthy {
			t.Errorf("no lock, path passing: state %q, want %q", got, function.StateUnhealthy)
		}
		e.rt.setLock(sick, true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := e.states("echo")[sick]; got != function.StateReady {
			t.Errorf("lock back, path passing: state %q, want %q", got, function.StateReady)
		}
	})
}

// A rolling update whose new replicas never pass their readiness path
// keeps the old ones serving, and WaitReady says why.
func TestReadyHTTPRollingUpdateKeepsOld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		v1 := readySpec("echo:1")
		v1.Labels = map[string]string{function.LabelScaleMin: "2", function.LabelScaleMax: "2"}
		e.deploy(v1)
		synctest.Wait()
		old := e.readyIDs("echo")
		if len(old) != 2 {
			t.Fatalf("v1 ready = %v, want 2", old)
		}
		oldAddrs := map[string]bool{}
		for _, a := range e.addrs("echo") {
			oldAddrs[a] = true
		}

		e.rt.setNewReady(503) // say, v2 has the wrong database name
		v2 := readySpec("echo:2")
		v2.Labels = v1.Labels
		e.deploy(v2)
		err := e.c.WaitReady(ctxTimeout(t, 10*time.Second), "echo")
		if err == nil || !strings.Contains(err.Error(), "readiness GET /ready answered 503") {
			t.Errorf("WaitReady = %v, want it to name the path and the 503", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		for range 20 {
			if a := e.acquire("echo"); !oldAddrs[a] {
				t.Fatalf("Acquire = %q, want a v1 replica %v", a, oldAddrs)
			}
		}
		if got := e.readyIDs("echo"); !slices.Equal(got, old) {
			t.Errorf("ready = %v, want v1's %v", got, old)
		}
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Errorf("removed %v while v2 never became ready", got)
		}
		for _, r := range e.status("echo").Replicas {
			if r.Hash == v2.Hash() && (r.State != function.StateStarting || r.Message != "readiness GET /ready answered 503") {
				t.Errorf("v2 replica %s: %s %q, want starting with the 503", r.ID, r.State, r.Message)
			}
		}

		// Fixed: v2 passes and replaces v1.
		for _, c := range e.rt.createdFor("echo")[2:] {
			e.rt.setReady(c.ID, 200)
		}
		eventually(t, "v1 replaced", func() bool { return len(e.rt.removedIDs()) == 2 })
		if err := e.c.WaitReady(t.Context(), "echo"); err != nil {
			t.Errorf("WaitReady = %v", err)
		}
	})
}

// A paused function's replicas are not checked: nothing polls it.
func TestReadyHTTPPausedNotChecked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newAutoEnv(t, scale.Config{})
		e.start()
		s := labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, "10s")
		s.Annotations = map[string]string{function.AnnotationReadyPath: "/ready", function.AnnotationReadyPeriod: "1"}
		e.deploy(s)
		synctest.Wait()
		e.acquire("echo")
		e.phase("echo", "paused", time.Minute)
		n := e.rt.count("ReadyGet /ready", "echo")
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if got := e.rt.count("ReadyGet /ready", "echo") - n; got != 0 {
			t.Errorf("%d readiness GETs while paused, want 0", got)
		}
		e.acquire("echo")
		if got := e.status("echo").Ready; got != 1 {
			t.Errorf("%d ready after a wake, want 1", got)
		}
	})
}
