package scale_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// All controller tests run in a synctest bubble: the controller's tickers,
// timers and backoffs run on the fake clock, and synctest.Wait lets every
// goroutine settle before the test looks.

// env is one controller with its fakes. Build it inside the bubble.
type env struct {
	t  *testing.T
	rt *fakeRuntime
	st *fakeStore
	// counts is the Counts store; set its totals before start.
	counts *fakeCounts
	cfg    scale.Config
	c      *scale.Controller
}

func newEnv(t *testing.T, cfg scale.Config, specs ...function.Spec) *env {
	t.Helper()
	rt := newFakeRuntime()
	cfg.Dial = rt.dial
	cfg.ReadyGet = rt.readyGet
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})
	st := newFakeStore(specs...)
	cfg.MemoryLow = func() bool { return false } // not the host's
	if cfg.CPUSaturated == nil {
		cfg.CPUSaturated = func() bool { return false } // nor is this
	}
	counts := &fakeCounts{}
	d := rt.deps(st)
	d.Counts = counts
	return &env{t: t, rt: rt, st: st, counts: counts, cfg: cfg, c: scale.New(cfg, d, log, nil)}
}

// start recovers and runs the controller until the test ends.
func (e *env) start() {
	e.t.Helper()
	if err := e.c.Recover(e.t.Context()); err != nil {
		e.t.Fatalf("Recover: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.c.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
		// Let watchers and removals wind down inside the bubble.
		synctest.Wait()
	})
}

func (e *env) deploy(spec function.Spec) {
	e.t.Helper()
	if err := e.c.Deploy(e.t.Context(), spec); err != nil {
		e.t.Fatalf("Deploy(%s): %v", spec.Name, err)
	}
}

func (e *env) status(name string) function.Status {
	e.t.Helper()
	st, err := e.c.Status(name)
	if err != nil {
		e.t.Fatalf("Status(%s): %v", name, err)
	}
	return st
}

// states maps replica ID to state.
func (e *env) states(name string) map[string]function.State {
	e.t.Helper()
	out := map[string]function.State{}
	for _, r := range e.status(name).Replicas {
		out[r.ID] = r.State
	}
	return out
}

func (e *env) readyIDs(name string) []string {
	e.t.Helper()
	var ids []string
	for _, r := range e.status(name).Replicas {
		if r.State == function.StateReady {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// addrs maps replica ID to its Addr as Acquire returns it.
func (e *env) addrs(name string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, r := range e.status(name).Replicas {
		if r.IP != "" {
			out[r.ID] = r.IP + ":8080"
		}
	}
	return out
}

// acquire takes a lease and gives it back at once.
func (e *env) acquire(name string) string {
	e.t.Helper()
	l, err := e.c.Acquire(e.t.Context(), name)
	if err != nil {
		e.t.Fatalf("Acquire(%s): %v", name, err)
	}
	l.Release()
	return l.Addr()
}

// eventually polls cond on the bubble's fake clock, so it costs no real
// time; a minute of fake time is far more than any step here needs.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after a minute (fake clock)", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	synctest.Wait()
}

func spec(name, image string) function.Spec {
	return function.Spec{Name: name, Image: image}
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestDeployBecomesReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		synctest.Wait()

		st := e.status("echo")
		if st.Desired != 1 || st.Ready != 1 || len(st.Replicas) != 1 {
			t.Fatalf("status = %+v, want 1 desired, 1 ready, 1 replica", st)
		}
		r := st.Replicas[0]
		if r.State != function.StateReady || r.IP != "10.0.0.1" || r.Hash != spec("echo", "echo:1").Hash() {
			t.Errorf("replica = %+v, want ready at 10.0.0.1 with the spec's hash", r)
		}
		if got, want := e.acquire("echo"), "10.0.0.1:8080"; got != want {
			t.Errorf("Acquire addr = %q, want %q", got, want)
		}
		if err := e.c.WaitReady(t.Context(), "echo"); err != nil {
			t.Errorf("WaitReady: %v", err)
		}
		if got, want := e.st.names(), []string{"echo"}; !slices.Equal(got, want) {
			t.Errorf("stored = %v, want %v", got, want)
		}
		if got := len(e.rt.createdFor("echo")); got != 1 {
			t.Errorf("created %d replicas, want 1", got)
		}
		if got := e.status("echo").Invoked; got != 1 {
			t.Errorf("invocations = %d, want 1", got)
		}
	})
}

func TestDeployRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    function.Spec
		wantErr error
	}{
		{"image missing", spec("echo", "missing:1"), function.ErrImageNotFound},
		{"registry down", spec("echo", "unreachable:1"), function.ErrImage},
		{"invalid name", spec("Echo", "echo:1"), function.ErrInvalid},
		{"no image", spec("echo", ""), function.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.rt.failImage["missing:1"] = function.ErrImageNotFound
				e.rt.failImage["unreachable:1"] = function.ErrImage
				e.start()
				err := e.c.Deploy(t.Context(), tc.spec)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Deploy = %v, want %v", err, tc.wantErr)
				}
				synctest.Wait()
				if got := e.st.names(); len(got) != 0 {
					t.Errorf("stored %v after a failed deploy", got)
				}
				if got := e.rt.live(); len(got) != 0 {
					t.Errorf("replicas %v after a failed deploy", got)
				}
				if got := e.c.Functions(); len(got) != 0 {
					t.Errorf("Functions() = %v after a failed deploy", got)
				}
				if _, err := e.c.Acquire(t.Context(), tc.spec.Name); !errors.Is(err, function.ErrNotFound) {
					t.Errorf("Acquire = %v, want ErrNotFound", err)
				}
			})
		})
	}
}

func TestRoundRobin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		if err := e.c.Scale(t.Context(), "echo", 3); err != nil {
			t.Fatalf("Scale: %v", err)
		}
		synctest.Wait()
		if got := e.readyIDs("echo"); len(got) != 3 {
			t.Fatalf("ready = %v, want 3 replicas", got)
		}
		got := map[string]int{}
		for range 300 {
			got[e.acquire("echo")]++
		}
		want := map[string]int{}
		for _, a := range e.addrs("echo") {
			want[a] = 100
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("leases per addr (-want +got):\n%s", diff)
		}
		if got := e.st.spec("echo").Replicas; got != 3 {
			t.Errorf("stored replicas = %d, want 3", got)
		}
	})
}

func TestScaleRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		if err := e.c.Scale(t.Context(), "echo", -1); !errors.Is(err, function.ErrInvalid) {
			t.Errorf("Scale(-1) = %v, want ErrInvalid", err)
		}
		if err := e.c.Scale(t.Context(), "nope", 2); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Scale(nope) = %v, want ErrNotFound", err)
		}
	})
}

func TestLockMissingLeavesRotationAndReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 5 * time.Second
		e := newEnv(t, scale.Config{HealthInterval: interval, HealthMisses: 3})
		e.start()
		s := spec("echo", "echo:1")
		s.Replicas = 2
		e.deploy(s)
		synctest.Wait()
		ready := e.readyIDs("echo")
		if len(ready) != 2 {
			t.Fatalf("ready = %v, want 2", ready)
		}
		sick, well := ready[0], ready[1]
		addrs := e.addrs("echo")

		// Out of phase with the health ticker on purpose.
		time.Sleep(interval / 3)
		e.rt.setLock(sick, false)
		time.Sleep(interval)
		synctest.Wait()
		if got := e.states("echo")[sick]; got != function.StateUnhealthy {
			t.Errorf("after one interval without lock: state %q, want %q", got, function.StateUnhealthy)
		}
		for range 50 {
			if got := e.acquire("echo"); got != addrs[well] {
				t.Fatalf("Acquire = %q, want only the healthy %q", got, addrs[well])
			}
		}

		// Back before HealthMisses: back in rotation, nothing replaced.
		e.rt.setLock(sick, true)
		time.Sleep(interval)
		synctest.Wait()
		if got := e.readyIDs("echo"); !slices.Equal(got, ready) {
			t.Errorf("after lock restored: ready = %v, want %v", got, ready)
		}
		seen := map[string]bool{}
		for range 10 {
			seen[e.acquire("echo")] = true
		}
		if want := map[string]bool{addrs[sick]: true, addrs[well]: true}; !maps.Equal(seen, want) {
			t.Errorf("Acquire returned %v, want both %v", seen, want)
		}
		if got := len(e.rt.createdFor("echo")); got != 2 {
			t.Errorf("created %d replicas, want 2 (nothing replaced)", got)
		}
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Errorf("removed %v, want nothing", got)
		}
	})
}

func TestLockMissingReplacedSuccessorFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 5 * time.Second
		e := newEnv(t, scale.Config{HealthInterval: interval, HealthMisses: 3})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		synctest.Wait()
		old := e.readyIDs("echo")
		if len(old) != 1 {
			t.Fatalf("ready = %v, want 1", old)
		}
		// At each removal a successor must already be ready.
		e.rt.setOnRemove(func(fn, id string) {
			if ready := e.readyIDs("echo"); len(ready) == 0 || slices.Contains(ready, id) {
				t.Errorf("removing %s while ready replicas are %v: want a ready successor first", id, ready)
			}
		})
		e.rt.setNewLock(false) // the successor is slow to become ready
		e.rt.setLock(old[0], false)
		time.Sleep(3 * interval)
		synctest.Wait()

		created := e.rt.createdFor("echo")
		if len(created) != 2 {
			t.Fatalf("created %d replicas after %d misses, want a successor (2)", len(created), 3)
		}
		succ := created[1].ID
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Fatalf("removed %v while the successor is not ready yet", got)
		}
		if got := e.states("echo")[succ]; got != function.StateStarting {
			t.Errorf("successor state %q, want %q", got, function.StateStarting)
		}

		e.rt.setLock(succ, true)
		eventually(t, "old replica removed", func() bool { return len(e.rt.removedIDs()) == 1 })
		if got := e.rt.removedIDs(); !slices.Equal(got, old) {
			t.Errorf("removed %v, want %v", got, old)
		}
		if got := e.readyIDs("echo"); !slices.Equal(got, []string{succ}) {
			t.Errorf("ready = %v, want [%s]", got, succ)
		}
	})
}

// TestLockMissingReplaced checks what holds today: after HealthMisses
// checks without a lock the replica is replaced and the function serves
// again from the successor.
func TestLockMissingReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 5 * time.Second
		e := newEnv(t, scale.Config{HealthInterval: interval, HealthMisses: 3})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		synctest.Wait()
		old := e.readyIDs("echo")

		e.rt.setLock(old[0], false)
		time.Sleep(2 * interval)
		synctest.Wait()
		if got := len(e.rt.createdFor("echo")); got != 1 {
			t.Errorf("after 2 of 3 misses: created %d, want 1 (no successor yet)", got)
		}
		time.Sleep(interval)
		eventually(t, "successor ready", func() bool {
			r := e.readyIDs("echo")
			return len(r) == 1 && r[0] != old[0]
		})
		eventually(t, "old removed", func() bool { return len(e.rt.removedIDs()) == 1 })
		if got := e.rt.removedIDs(); !slices.Equal(got, old) {
			t.Errorf("removed %v, want %v", got, old)
		}
		succ := e.readyIDs("echo")[0]
		if got, want := e.acquire("echo"), e.addrs("echo")[succ]; got != want {
			t.Errorf("Acquire = %q, want the successor %q", got, want)
		}
	})
}

func TestRestartBackoff(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  scale.Config
		want []time.Duration
	}{
		{"doubling", scale.Config{}, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}},
		{"capped", scale.Config{BackoffMin: 500 * time.Millisecond, BackoffMax: 2 * time.Second},
			[]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, tc.cfg)
				e.start()
				e.deploy(spec("echo", "echo:1"))
				synctest.Wait()
				id := e.readyIDs("echo")[0]

				crash := func(n int) time.Duration {
					t.Helper()
					at := time.Now()
					e.rt.exit(id, 2)
					synctest.Wait()
					st := e.status("echo")
					if st.Ready != 0 || st.Replicas[0].State != function.StateExited || st.Replicas[0].LastExit != "exit code 2" {
						t.Errorf("after exit: %+v, want one exited replica with LastExit %q", st, "exit code 2")
					}
					if _, err := e.c.Acquire(ctxTimeout(t, time.Millisecond), "echo"); err == nil {
						t.Errorf("Acquire succeeded while the only replica is down")
					}
					eventually(t, "restart", func() bool { return len(e.rt.restarts()) == n })
					if got := e.status("echo").Replicas[0]; got.State != function.StateReady || got.Restarts != n {
						t.Errorf("after restart %d: %+v, want ready with %d restarts", n, got, n)
					}
					return e.rt.restarts()[n-1].At.Sub(at)
				}
				var got []time.Duration
				for i := range tc.want {
					got = append(got, crash(i+1))
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("restart delays (-want +got):\n%s", diff)
				}

				// Healthy for BackoffReset: the next crash starts over.
				reset := cmpOr(tc.cfg.BackoffReset, 10*time.Minute)
				time.Sleep(reset)
				first := cmpOr(tc.cfg.BackoffMin, time.Second)
				if got := crash(len(tc.want) + 1); got != first {
					t.Errorf("delay after %s healthy = %s, want %s", reset, got, first)
				}
			})
		})
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCrashLoopDoesNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.crash["crash:1"] = 1
		e.start()
		e.deploy(spec("good", "good:1"))
		e.deploy(spec("bad", "crash:1"))
		synctest.Wait()

		badDone := make(chan error, 1)
		go func() {
			_, err := e.c.Acquire(t.Context(), "bad")
			badDone <- err
		}()
		for range 40 {
			// The fake clock only moves when everyone blocks: an Acquire
			// that waited on anything would show elapsed time.
			start := time.Now()
			e.acquire("good")
			if d := time.Since(start); d != 0 {
				t.Fatalf("Acquire(good) took %s while bad crash-loops", d)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if got := e.status("bad").Replicas[0].Restarts; got < 3 {
			t.Errorf("bad restarted %d times in 10s, want >= 3", got)
		}
		if err := <-badDone; !errors.Is(err, function.ErrNoReplica) {
			t.Errorf("Acquire(bad) = %v, want ErrNoReplica", err)
		}
	})
}

func TestWaitReady(t *testing.T) {
	for _, tc := range []struct {
		name     string
		image    string
		wantErr  []string
		maxDelay time.Duration
	}{
		{"ready", "echo:1", nil, time.Second},
		{"crash-looping", "crash:1", []string{"crash-looping", "exit code 3", "panic: DATABASE_URL not set"}, 10 * time.Second},
		{"no lock", "nolock:1", []string{"not ready", "no lock file /tmp/.lock yet"}, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.rt.crash["crash:1"] = 3
				e.rt.logTail = []string{"starting", "panic: DATABASE_URL not set"}
				if tc.image == "nolock:1" {
					e.rt.setNewLock(false)
				}
				e.start()
				e.deploy(spec("fn", tc.image))
				start := time.Now()
				err := e.c.WaitReady(ctxTimeout(t, time.Minute), "fn")
				if d := time.Since(start); d > tc.maxDelay {
					t.Errorf("WaitReady took %s, want at most %s", d, tc.maxDelay)
				}
				if tc.wantErr == nil {
					if err != nil {
						t.Errorf("WaitReady = %v, want nil", err)
					}
					return
				}
				if err == nil {
					t.Fatal("WaitReady = nil, want an error")
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("WaitReady = %q, want it to contain %q", err, want)
					}
					// Each run wrote the same lines: the last run's are
					// said once, not once per restart.
					if n := strings.Count(err.Error(), want); n > 1 {
						t.Errorf("WaitReady = %q, has %q %d times, want once", err, want, n)
					}
				}
			})
		})
	}
}

func TestWaitReadyUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		if err := e.c.WaitReady(t.Context(), "nope"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("WaitReady = %v, want ErrNotFound", err)
		}
	})
}

func TestRollingUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		v1 := spec("echo", "echo:1")
		v1.Replicas = 2
		v1.Env = map[string]string{"V": "1"}
		e.deploy(v1)
		synctest.Wait()
		oldIDs := e.readyIDs("echo")
		if len(oldIDs) != 2 {
			t.Fatalf("v1 ready = %v, want 2", oldIDs)
		}
		oldAddrs := e.addrs("echo")

		// Never zero ready: checked at every removal and after every step.
		e.rt.setOnRemove(func(fn, id string) {
			if ready := e.readyIDs("echo"); len(ready) == 0 {
				t.Errorf("removing %s with no ready replica left", id)
			}
		})
		checkServing := func(step string, allowed map[string]bool) {
			t.Helper()
			if n := e.status("echo").Ready; n == 0 {
				t.Fatalf("%s: no ready replica", step)
			}
			for range 20 {
				if a := e.acquire("echo"); !allowed[a] {
					t.Errorf("%s: Acquire = %s, want one of %v", step, a, allowed)
				}
			}
		}

		e.rt.setNewLock(false)
		v2 := v1.Clone()
		v2.Replicas = 0 // keep the scale
		v2.Env = map[string]string{"V": "2"}
		e.deploy(v2)
		synctest.Wait()
		created := e.rt.createdFor("echo")
		if len(created) != 4 {
			t.Fatalf("created %d replicas after the update, want 2 more (4)", len(created))
		}
		new1, new2 := created[2].ID, created[3].ID
		for _, c := range created[2:] {
			if c.Hash != v2.Hash() {
				t.Errorf("new replica %s has hash %s, want v2's %s", c.ID, c.Hash, v2.Hash())
			}
		}
		time.Sleep(5 * time.Second) // new replicas stay not ready for a while
		synctest.Wait()
		only := func(m map[string]string, ids ...string) map[string]bool {
			out := map[string]bool{}
			for _, id := range ids {
				out[m[id]] = true
			}
			return out
		}
		checkServing("v2 starting", only(oldAddrs, oldIDs...))
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Errorf("removed %v before any v2 replica was ready", got)
		}

		e.rt.setLock(new1, true)
		eventually(t, "first v2 replica ready", func() bool { return e.states("echo")[new1] == function.StateReady })
		eventually(t, "one v1 replica removed", func() bool { return len(e.rt.removedIDs()) == 1 })
		all := e.addrs("echo")
		maps.Copy(all, oldAddrs)
		checkServing("one v2 ready", only(all, append([]string{new1}, oldIDs...)...))

		e.rt.setLock(new2, true)
		eventually(t, "both v1 replicas removed", func() bool { return len(e.rt.removedIDs()) == 2 })
		removed := e.rt.removedIDs()
		slices.Sort(removed)
		if !slices.Equal(removed, oldIDs) {
			t.Errorf("removed %v, want the v1 replicas %v", removed, oldIDs)
		}
		newIDs := []string{new1, new2}
		slices.Sort(newIDs)
		if got := e.readyIDs("echo"); !slices.Equal(got, newIDs) {
			t.Errorf("ready = %v, want v2's %v", got, newIDs)
		}
		checkServing("v2 ready", only(e.addrs("echo"), newIDs...))
		if got := e.status("echo").Desired; got != 2 {
			t.Errorf("desired = %d after update, want the scale kept (2)", got)
		}
		if err := e.c.WaitReady(t.Context(), "echo"); err != nil {
			t.Errorf("WaitReady: %v", err)
		}
	})
}

// An update whose new version never becomes ready must leave the old
// version serving.
// Restart replaces every replica through a rolling update, and a redeploy
// of the same spec afterwards restarts nothing more.
func TestRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		v1 := spec("echo", "echo:1")
		v1.Replicas = 2
		e.deploy(v1)
		synctest.Wait()
		old := e.readyIDs("echo")
		if len(old) != 2 {
			t.Fatalf("ready = %v, want 2", old)
		}
		e.rt.setOnRemove(func(fn, id string) {
			if ready := e.readyIDs("echo"); len(ready) == 0 {
				t.Errorf("removing %s with no ready replica left", id)
			}
		})
		if err := e.c.Restart(t.Context(), "echo"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		now := e.readyIDs("echo")
		if len(now) != 2 || slices.ContainsFunc(now, func(id string) bool { return slices.Contains(old, id) }) {
			t.Errorf("after restart ready = %v, want 2 new (old %v)", now, old)
		}
		stored, _ := e.st.Function("echo")
		if stored.RestartGeneration != 1 {
			t.Errorf("stored generation %d, want 1", stored.RestartGeneration)
		}
		if got := len(e.rt.createdFor("echo")); got != 4 {
			t.Errorf("created %d replicas, want 4", got)
		}
		e.deploy(v1)
		synctest.Wait()
		if got := len(e.rt.createdFor("echo")); got != 4 {
			t.Errorf("a redeploy after a restart created %d replicas, want still 4", got)
		}
		if err := e.c.Restart(t.Context(), "nope"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Restart(nope) = %v", err)
		}
	})
}

func TestRollingUpdateBrokenVersionKeepsOld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.crash["echo:2"] = 1
		e.start()
		e.deploy(spec("echo", "echo:1"))
		synctest.Wait()
		old := e.readyIDs("echo")
		oldAddr := e.addrs("echo")[old[0]]

		e.deploy(spec("echo", "echo:2"))
		err := e.c.WaitReady(ctxTimeout(t, time.Minute), "echo")
		if err == nil || !strings.Contains(err.Error(), "crash-looping") {
			t.Errorf("WaitReady = %v, want crash-looping", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := e.acquire("echo"); got != oldAddr {
			t.Errorf("Acquire = %q, want the old %q", got, oldAddr)
		}
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Errorf("removed %v while the new version crash-loops", got)
		}
	})
}

func TestRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := spec("a", "a:1"), spec("b", "b:1")
		e := newEnv(t, scale.Config{}, a, b)
		now := time.Now()
		e.rt.add(function.Instance{ID: "a-survivor", Function: "a", Hash: a.Hash(),
			IP: netip.MustParseAddr("10.0.0.100"), Pid: 100, Status: function.TaskRunning, Created: now.Add(-time.Hour), Cgroup: "/ember/a-survivor"})
		e.rt.add(function.Instance{ID: "b-stopped", Function: "b", Hash: b.Hash(),
			IP: netip.MustParseAddr("10.0.0.101"), Pid: 101, Status: function.TaskStopped, Created: now.Add(-time.Hour), Cgroup: "/ember/b-stopped"})
		e.rt.add(function.Instance{ID: "c-orphan", Function: "c", Hash: "0123456789abcdef",
			IP: netip.MustParseAddr("10.0.0.102"), Pid: 102, Status: function.TaskRunning, Created: now.Add(-time.Hour), Cgroup: "/ember/c-orphan"})
		e.start()
		synctest.Wait()

		if got := e.rt.createdFor("a"); len(got) != 0 {
			t.Errorf("created %v for a, want its survivor adopted", got)
		}
		if got := e.rt.createdFor("b"); len(got) != 1 {
			t.Errorf("created %d replicas for b, want 1", len(got))
		}
		if got, want := e.rt.sweptIDs(), []string{"b-stopped", "c-orphan"}; !slices.Equal(got, want) {
			t.Errorf("swept %v, want %v", got, want)
		}
		if got, want := e.readyIDs("a"), []string{"a-survivor"}; !slices.Equal(got, want) {
			t.Errorf("a ready = %v, want %v", got, want)
		}
		if got, want := e.acquire("a"), "10.0.0.100:8080"; got != want {
			t.Errorf("Acquire(a) = %q, want the adopted %q", got, want)
		}
		if got := e.acquire("b"); got == "10.0.0.101:8080" {
			t.Errorf("Acquire(b) = %q, the swept replica", got)
		}
		if _, err := e.c.Acquire(t.Context(), "c"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Acquire(c) = %v, want ErrNotFound", err)
		}
		names := []string{}
		for _, s := range e.c.Functions() {
			names = append(names, s.Name)
		}
		if want := []string{"a", "b"}; !slices.Equal(names, want) {
			t.Errorf("Functions() = %v, want %v", names, want)
		}
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Errorf("removed %v, want nothing", got)
		}
	})
}

func TestRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		s := spec("echo", "echo:1")
		s.Replicas = 2
		e.deploy(s)
		e.deploy(spec("other", "other:1"))
		synctest.Wait()
		ids := e.readyIDs("echo")

		if err := e.c.Remove(t.Context(), "echo"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		removed := e.rt.removedIDs()
		slices.Sort(removed)
		if !slices.Equal(removed, ids) {
			t.Errorf("removed %v when Remove returned, want %v", removed, ids)
		}
		if _, err := e.c.Acquire(t.Context(), "echo"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Acquire after Remove = %v, want ErrNotFound", err)
		}
		if _, err := e.c.Status("echo"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Status after Remove = %v, want ErrNotFound", err)
		}
		if _, err := e.c.Spec("echo"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Spec after Remove = %v, want ErrNotFound", err)
		}
		if err := e.c.Remove(t.Context(), "echo"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("second Remove = %v, want ErrNotFound", err)
		}
		if got, want := e.st.names(), []string{"other"}; !slices.Equal(got, want) {
			t.Errorf("stored %v, want %v", got, want)
		}
		if got := e.acquire("other"); got == "" {
			t.Error("other function stopped serving")
		}

		// The name can be used again.
		e.deploy(spec("echo", "echo:1"))
		if err := e.c.WaitReady(t.Context(), "echo"); err != nil {
			t.Errorf("WaitReady after redeploy: %v", err)
		}
	})
}

func TestRemoveBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.deploy(spec("echo", "echo:1"))
		if err := e.c.Remove(ctxTimeout(t, 10*time.Second), "echo"); err != nil {
			t.Errorf("Remove = %v, want nil", err)
		}
		if _, err := e.c.Status("echo"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Status after Remove = %v, want ErrNotFound", err)
		}
	})
}

func TestAcquireDuringRemoveFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{WakeTimeout: 30 * time.Second, DrainTimeout: time.Minute})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		synctest.Wait()
		lease, err := e.c.Acquire(t.Context(), "echo")
		if err != nil {
			t.Fatal(err)
		}
		removed := make(chan error, 1)
		go func() { removed <- e.c.Remove(t.Context(), "echo") }()
		synctest.Wait()

		start := time.Now()
		_, err = e.c.Acquire(t.Context(), "echo")
		if !errors.Is(err, function.ErrNotFound) || time.Since(start) != 0 {
			t.Errorf("Acquire while removing = %v after %s, want ErrNotFound at once", err, time.Since(start))
		}
		lease.Release()
		<-removed
	})
}

// An idle function with scale to zero is paused after its zero-duration
// and a request thaws it; scaled to zero it is parked and a request starts
// it again. Neither request fails.
func TestScaleToZeroAndWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		s := spec("echo", "echo:1")
		s.Labels = map[string]string{function.LabelScaleZero: "true", function.LabelScaleZeroDuration: "1m"}
		e.deploy(s)
		synctest.Wait()
		id := e.readyIDs("echo")[0]
		addr := e.acquire("echo")

		time.Sleep(time.Minute - time.Second)
		synctest.Wait()
		if got := e.status("echo").Phase; got != "active" {
			t.Errorf("phase %q before the zero-duration, want active", got)
		}
		eventually(t, "paused", func() bool { return e.status("echo").Phase == "paused" })
		if got := e.rt.status(id); got != function.TaskPaused {
			t.Errorf("task status = %q, want paused (frozen)", got)
		}
		start := time.Now()
		if got := e.acquire("echo"); got != addr {
			t.Errorf("Acquire after pause = %q, want the thawed %q", got, addr)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("thaw took %s", d)
		}
		if frozen, thawed, _, _ := e.rt.calls(); len(frozen) != 1 || !slices.Equal(frozen, thawed) {
			t.Errorf("frozen %v, thawed %v: want the one replica's cgroup once each", frozen, thawed)
		}
		if got := e.status("echo").Phase; got != "active" {
			t.Errorf("phase after a request = %q, want active", got)
		}

		synctest.Wait() // see TestScaleToZeroParksAfterPoke for what happens without
		if err := e.c.Scale(t.Context(), "echo", 0); err != nil {
			t.Fatalf("Scale(0): %v", err)
		}
		eventually(t, "parked", func() bool {
			_, _, parked, _ := e.rt.calls()
			return len(parked) == 1
		})
		if got := e.status("echo"); got.Phase != "zero" || got.Ready != 0 {
			t.Errorf("after Scale(0): phase %q, %d ready; want zero, 0", got.Phase, got.Ready)
		}
		if got := e.acquire("echo"); got != addr {
			t.Errorf("Acquire after parking = %q, want the unparked %q", got, addr)
		}
		if _, _, _, unparked := e.rt.calls(); !slices.Equal(unparked, []string{id}) {
			t.Errorf("unparked %v, want [%s]", unparked, id)
		}
		if got := len(e.rt.createdFor("echo")); got != 1 {
			t.Errorf("created %d replicas, want 1 (woken, not recreated)", got)
		}
	})
}

// Scale(0) sets the desired count to zero before its park event reaches
// the loop; a reconcile in between (any pending poke) drains the replica
// instead, so nothing is parked and the next request must create one from
// scratch. The race needs a poke in flight, so each round makes one.
func TestScaleToZeroParksAfterPoke(t *testing.T) {
	const rounds = 500
	failed := 0
	for range rounds {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, scale.Config{})
			e.start()
			s := spec("echo", "echo:1")
			s.Labels = map[string]string{function.LabelScaleZero: "true", function.LabelScaleZeroDuration: "1m"}
			e.deploy(s)
			time.Sleep(2 * time.Minute)
			synctest.Wait()
			e.acquire("echo") // thaws it; the loop is still busy with the wake-up
			if err := e.c.Scale(t.Context(), "echo", 0); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			if _, _, parked, _ := e.rt.calls(); len(parked) != 1 {
				failed++
			}
		})
	}
	if failed > 0 {
		t.Errorf("Scale(0) parked nothing in %d of %d rounds", failed, rounds)
	}
}

// A removal that fails leaves the replica's resources behind; the
// controller forgets the replica at once, and its janitor sweeps what is
// left, retrying with backoff until a sweep succeeds, and reports it
// meanwhile.
func TestFailedRemovalIsSweptUntilClean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		s := spec("echo", "echo:1")
		s.Replicas = 3
		e.deploy(s)
		e.deploy(spec("other", "other:1"))
		synctest.Wait()
		ids := e.readyIDs("echo")
		others := e.readyIDs("other")

		e.rt.mu.Lock()
		e.rt.failRemoves, e.rt.failSweeps = 3, 2
		e.rt.mu.Unlock()
		if err := e.c.Remove(t.Context(), "echo"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		synctest.Wait()
		if got := e.c.Cleanup(); got.Pending == 0 || got.Failures != 3+1 || got.LastError == "" {
			t.Errorf("Cleanup() after 3 failed removals and a failed sweep = %+v, want pending, 4 failures and the error", got)
		}
		for _, id := range ids {
			if !e.rt.has(id) {
				t.Errorf("%s gone before any sweep succeeded", id)
			}
		}

		time.Sleep(time.Minute)
		synctest.Wait()
		for _, id := range ids {
			if e.rt.has(id) {
				t.Errorf("%s still there after the retries", id)
			}
		}
		if got := e.c.Cleanup(); got.Pending != 0 || got.LastError != "" || got.Failures != 3+2 {
			t.Errorf("Cleanup() after the retries = %+v, want nothing pending and 5 failures", got)
		}
		if got := e.readyIDs("other"); !slices.Equal(got, others) {
			t.Errorf("other's replicas %v after the sweeps, want them kept: %v", got, others)
		}
	})
}
