package scale_test

import (
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// The autoscaler and the idler run on timers, so every test here runs in a
// synctest bubble: minutes of load and hours of idleness pass on the fake
// clock in milliseconds, and the default AutoscaleInterval (250ms) and
// LoadWindow (3s) apply.

const (
	interval   = 250 * time.Millisecond // Config.AutoscaleInterval's default
	loadWindow = 3 * time.Second        // Config.LoadWindow's default
)

// fakeMemory is a Config.MemoryLow that the test sets and counts; the
// autoscaler reads it on (some of) its wake-ups, so its count also shows
// whether the autoscaler sleeps.
type fakeMemory struct {
	low   atomic.Bool
	calls atomic.Int64
}

func (m *fakeMemory) check() bool {
	m.calls.Add(1)
	return m.low.Load()
}

// newAutoEnv is newEnv with a MemoryLow the test controls: newEnv pins it
// to false.
func newAutoEnv(t *testing.T, cfg scale.Config) (*env, *fakeMemory) {
	t.Helper()
	mem := &fakeMemory{}
	rt := newFakeRuntime()
	cfg.Dial = rt.dial
	cfg.ReadyGet = rt.readyGet
	cfg.MemoryLow = mem.check
	if cfg.CPUSaturated == nil {
		cfg.CPUSaturated = func() bool { return false } // not the host's
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})
	st := newFakeStore()
	return &env{t: t, rt: rt, st: st, cfg: cfg, c: scale.New(cfg, rt.deps(st), log, nil)}, mem
}

// labelled is spec("echo", "echo:1") with labels given as key, value pairs.
func labelled(kv ...string) function.Spec {
	s := spec("echo", "echo:1")
	s.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Labels[kv[i]] = kv[i+1]
	}
	return s
}

// hold takes n leases and keeps them: they count as in flight until
// released.
func (e *env) hold(name string, n int) []function.Lease {
	e.t.Helper()
	ls := make([]function.Lease, 0, n)
	for range n {
		l, err := e.c.Acquire(e.t.Context(), name)
		if err != nil {
			e.t.Fatalf("Acquire(%s): %v", name, err)
		}
		ls = append(ls, l)
	}
	return ls
}

func release(ls []function.Lease) {
	for _, l := range ls {
		l.Release()
	}
}

// change is a step of a function's desired replica count, at a time
// since the watch began.
type change struct {
	At       time.Duration
	From, To int
}

// watch samples name's desired replica count every 10ms of fake time for
// d and returns its changes.
func (e *env) watch(name string, d time.Duration) []change {
	e.t.Helper()
	start := time.Now()
	last := e.status(name).Desired
	var out []change
	for time.Since(start) < d {
		time.Sleep(10 * time.Millisecond)
		if n := e.status(name).Desired; n != last {
			out = append(out, change{At: time.Since(start), From: last, To: n})
			last = n
		}
	}
	return out
}

// load runs a goroutine that keeps want(i) leases out during the i-th
// period of length every, until the returned stop is called (which
// releases them).
func (e *env) load(name string, every time.Duration, want func(i int) int) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var held []function.Lease
		defer func() { release(held) }()
		for i := 0; ; i++ {
			n := want(i)
			for len(held) > n {
				held[len(held)-1].Release()
				held = held[:len(held)-1]
			}
			for len(held) < n {
				l, err := e.c.Acquire(e.t.Context(), name)
				if err != nil {
					e.t.Errorf("Acquire(%s): %v", name, err)
					return
				}
				held = append(held, l)
			}
			select {
			case <-quit:
				return
			case <-time.After(every):
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// phase waits up to limit of fake time for name to reach phase ph and
// returns when it did.
func (e *env) phase(name, ph string, limit time.Duration) time.Time {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for e.status(name).Phase != ph {
		if time.Now().After(deadline) {
			e.t.Fatalf("phase %q after %s, want %q", e.status(name).Phase, limit, ph)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Now()
}

// Ten requests in flight with a target of two want five replicas, and
// they come at once: the load average must not hold a scale-up back.
func TestAutoscaleUpIsFast(t *testing.T) {
	for _, tc := range []struct {
		name   string
		warm   bool // light traffic just before: the load window holds low samples
		leases int
		want   int
	}{
		{"from idle", false, 10, 5},
		{"while warm", true, 10, 5},
		{"capped at max", true, 20, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(function.LabelScaleType, function.ScaleCapacity, function.LabelScaleProportion, "1", function.LabelScaleTarget, "2", function.LabelScaleMax, "6"))
				synctest.Wait()
				if tc.warm {
					for range 10 {
						e.acquire("echo")
						time.Sleep(time.Second)
					}
				} else {
					time.Sleep(5 * time.Minute)
				}
				synctest.Wait()
				if got := e.status("echo").Desired; got != 1 {
					t.Fatalf("desired = %d before the load, want 1", got)
				}

				ls := e.hold("echo", tc.leases)
				defer release(ls)
				time.Sleep(2 * interval)
				synctest.Wait()
				st := e.status("echo")
				if st.Desired != tc.want || st.Ready != tc.want {
					t.Errorf("%s after %d in flight: desired %d, ready %d; want %d of each",
						2*interval, tc.leases, st.Desired, st.Ready, tc.want)
				}
				if got := len(e.rt.createdFor("echo")); got != tc.want {
					t.Errorf("created %d replicas, want %d", got, tc.want)
				}
			})
		})
	}
}

// Load that drops is followed only after the down window, and replicas
// leaving keep their in-flight requests until those are done.
func TestAutoscaleDownIsSlowAndDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const downWindow = 10 * time.Second
		e := newEnv(t, scale.Config{DrainTimeout: 10 * time.Minute})
		e.start()
		e.deploy(labelled(function.LabelScaleType, function.ScaleCapacity, function.LabelScaleProportion, "1", function.LabelScaleTarget, "2", function.LabelScaleMax, "6",
			function.LabelScaleDownWindow, downWindow.String()))
		synctest.Wait()

		burst := e.hold("echo", 10)
		time.Sleep(2 * loadWindow)
		synctest.Wait()
		if st := e.status("echo"); st.Desired != 5 || st.Ready != 5 {
			t.Fatalf("with 10 in flight: desired %d, ready %d; want 5 of each", st.Desired, st.Ready)
		}
		all := e.readyIDs("echo")
		byAddr := map[string]string{}
		for id, a := range e.addrs("echo") {
			byAddr[a] = id
		}
		// Two requests stay in flight, on two replicas (round-robin).
		kept := e.hold("echo", 2)
		leased := map[string]bool{byAddr[kept[0].Addr()]: true, byAddr[kept[1].Addr()]: true}
		if len(leased) != 2 {
			t.Fatalf("the two kept leases share replica %v", leased)
		}

		release(burst)
		if got := e.watch("echo", downWindow); len(got) != 0 {
			t.Errorf("desired changed within the down window after the load dropped: %+v", got)
		}
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Errorf("removed %v within the down window", got)
		}

		// After it: down to min (1) within a load window or so, never up.
		steps := e.watch("echo", loadWindow+2*time.Second)
		for _, c := range steps {
			if c.To > c.From {
				t.Errorf("scaled up while the load fell: %+v", steps)
			}
		}
		st := e.status("echo")
		if st.Desired != 1 || st.Ready != 1 {
			t.Fatalf("%s after the load dropped: desired %d, ready %d; want 1 of each (changes %+v)",
				downWindow+loadWindow+2*time.Second, st.Desired, st.Ready, steps)
		}
		survivor := e.readyIDs("echo")[0]

		// Drained replicas with a request in flight stay until it is done;
		// the others are gone. Neither serves new requests.
		time.Sleep(time.Minute)
		synctest.Wait()
		var wantRemoved, draining []string
		for _, id := range all {
			switch {
			case id == survivor:
			case leased[id]:
				draining = append(draining, id)
			default:
				wantRemoved = append(wantRemoved, id)
			}
		}
		removed := e.rt.removedIDs()
		slices.Sort(removed)
		if !slices.Equal(removed, wantRemoved) {
			t.Errorf("removed %v with leases out on %v, want %v", removed, slices.Sorted(maps.Keys(leased)), wantRemoved)
		}
		for _, id := range draining {
			if got := e.states("echo")[id]; got != function.StateStopping {
				t.Errorf("drained replica %s with a lease out: state %q, want %q", id, got, function.StateStopping)
			}
		}
		for range 10 {
			if got, want := e.acquire("echo"), e.addrs("echo")[survivor]; got != want {
				t.Fatalf("Acquire = %s, want only the survivor %s", got, want)
			}
		}

		release(kept)
		eventually(t, "drained replicas removed", func() bool { return len(e.rt.removedIDs()) == len(all)-1 })
		if got := e.rt.live(); !slices.Equal(got, []string{survivor}) {
			t.Errorf("live replicas %v, want [%s]", got, survivor)
		}
	})
}

// Steady load settles on one count and stays there: over minutes, the
// desired count changes only while it settles.
func TestAutoscaleNoFlapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leases func(i int) int // in flight during the i-th second
		want   int
	}{
		{"4 in flight", func(int) int { return 4 }, 2},
		{"3 or 4 in flight", func(i int) int { return 3 + i%2 }, 2},
		{"4 or 5 in flight", func(i int) int { return 4 + i%2 }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const settle = 2 * loadWindow
				e := newEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(function.LabelScaleType, function.ScaleCapacity, function.LabelScaleProportion, "1", function.LabelScaleTarget, "2", function.LabelScaleMax, "6",
					function.LabelScaleDownWindow, "10s"))
				synctest.Wait()

				stop := e.load("echo", time.Second, tc.leases)
				changes := e.watch("echo", 5*time.Minute)
				stop()
				var late []change
				for _, c := range changes {
					if c.At > settle {
						late = append(late, c)
					}
				}
				if len(late) != 0 {
					t.Errorf("desired changed after settling (%s): %+v; all changes %+v", settle, late, changes)
				}
				if st := e.status("echo"); st.Desired != tc.want || st.Ready != tc.want {
					t.Errorf("desired %d, ready %d; want %d of each (changes %+v)", st.Desired, st.Ready, tc.want, changes)
				}
				if got := len(e.rt.createdFor("echo")); got != tc.want {
					t.Errorf("created %d replicas, want %d: replicas churned", got, tc.want)
				}
				if got := e.rt.removedIDs(); len(got) != 0 {
					t.Errorf("removed %v under steady load", got)
				}
			})
		})
	}
}

// In rps mode the count follows requests per second, not requests in
// flight: 20 short requests a second with a target of 5 want 4 replicas.
func TestAutoscaleRPS(t *testing.T) {
	for _, tc := range []struct {
		rps, want int
		bug       string
	}{
		{20, 4, ""},
		{10, 2, "the rate is taken over the samples' span, 250ms at first: 3 requests read as 12 rps and the overshoot (3 replicas) is held for the down window"},
	} {
		t.Run(strconv.Itoa(tc.rps)+"rps", func(t *testing.T) {
			if tc.bug != "" {
			}
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(function.LabelScaleType, function.ScaleRPS, function.LabelScaleProportion, "1", function.LabelScaleTarget, "5",
					function.LabelScaleDownWindow, "10s"))
				synctest.Wait()

				quit, done := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(done)
					// Off the autoscaler's 250ms grid, so no request and no
					// sample share an instant and every 3s holds exactly
					// 3*rps requests.
					time.Sleep(time.Millisecond)
					for {
						select {
						case <-quit:
							return
						default:
						}
						l, err := e.c.Acquire(t.Context(), "echo")
						if err != nil {
							t.Errorf("Acquire: %v", err)
							return
						}
						l.Release()
						time.Sleep(time.Second / time.Duration(tc.rps))
					}
				}()
				changes := e.watch("echo", 2*time.Minute)
				close(quit)
				<-done

				for _, c := range changes {
					if c.To > tc.want || c.To < c.From {
						t.Errorf("desired went %d → %d at %s under a steady %d rps: changes %+v", c.From, c.To, c.At, tc.rps, changes)
					}
				}
				if st := e.status("echo"); st.Desired != tc.want || st.Ready != tc.want {
					t.Errorf("desired %d, ready %d at %d rps; want %d of each", st.Desired, st.Ready, tc.rps, tc.want)
				}
				if got := len(e.rt.createdFor("echo")); got != tc.want {
					t.Errorf("created %d replicas, want %d", got, tc.want)
				}
			})
		})
	}
}

// min == max turns the autoscaler off: no load changes the count.
func TestAutoscaleOffWhenMinIsMax(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(function.LabelScaleMin, strconv.Itoa(n), function.LabelScaleMax, strconv.Itoa(n),
					function.LabelScaleTarget, "1"))
				synctest.Wait()
				if got := e.status("echo").Desired; got != n {
					t.Fatalf("desired = %d after deploy, want %d", got, n)
				}

				ls := e.hold("echo", 10)
				changes := e.watch("echo", time.Minute)
				release(ls)
				changes = append(changes, e.watch("echo", 2*time.Minute)...)
				if len(changes) != 0 {
					t.Errorf("desired changed with min == max: %+v", changes)
				}
				if st := e.status("echo"); st.Desired != n || st.Ready != n {
					t.Errorf("desired %d, ready %d; want %d of each", st.Desired, st.Ready, n)
				}
				if got := len(e.rt.createdFor("echo")); got != n {
					t.Errorf("created %d replicas, want %d", got, n)
				}
			})
		})
	}
}

// An idle function is paused after its zero-duration, not before, and a
// request thaws the same replica.
func TestIdlePausesAndThaws(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const zeroAfter = 30 * time.Second
		e, _ := newAutoEnv(t, scale.Config{})
		e.start()
		e.deploy(labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, zeroAfter.String()))
		synctest.Wait()
		id := e.readyIDs("echo")[0]
		addr := e.acquire("echo")
		lastRequest := time.Now()

		time.Sleep(zeroAfter - time.Millisecond)
		synctest.Wait()
		if got := e.status("echo").Phase; got != "active" {
			t.Errorf("phase %q before the zero-duration, want active", got)
		}
		if got := e.rt.count("Freeze", "echo"); got != 0 {
			t.Errorf("froze %d times before the zero-duration", got)
		}
		e.phase("echo", "paused", 2*time.Second)
		if idle := e.rt.last("Freeze", "echo").Sub(lastRequest); idle < zeroAfter || idle > zeroAfter+time.Second {
			t.Errorf("paused after %s idle, want about %s", idle, zeroAfter)
		}
		if got := e.rt.status(id); got != function.TaskPaused {
			t.Errorf("task %q, want paused (frozen)", got)
		}
		if st := e.status("echo"); st.Ready != 0 || st.Desired != 0 {
			t.Errorf("paused: %d ready, desired %d; want 0 of each", st.Ready, st.Desired)
		}

		if got := e.acquire("echo"); got != addr {
			t.Errorf("Acquire on a paused function = %s, want the thawed %s", got, addr)
		}
		if got := e.rt.count("Thaw", "echo"); got != 1 {
			t.Errorf("thawed %d times, want 1", got)
		}
		if got := e.status("echo").Phase; got != "active" {
			t.Errorf("phase %q after a request, want active", got)
		}
		if got := len(e.rt.createdFor("echo")); got != 1 {
			t.Errorf("created %d replicas, want 1", got)
		}
	})
}

// A function paused for delete-after is parked, not before; a request
// starts the parked replica again.
func TestPausedParksAndWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const deleteAfter = 2 * time.Minute
		e, _ := newAutoEnv(t, scale.Config{})
		e.start()
		e.deploy(labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, "30s",
			function.LabelDeleteAfter, deleteAfter.String()))
		synctest.Wait()
		id := e.readyIDs("echo")[0]
		addr := e.acquire("echo")

		e.phase("echo", "paused", time.Minute)
		pausedAt := e.rt.last("Freeze", "echo")
		time.Sleep(deleteAfter - time.Since(pausedAt) - time.Millisecond)
		synctest.Wait()
		if got := e.status("echo").Phase; got != "paused" || e.rt.count("Park", "echo") != 0 {
			t.Errorf("phase %q, parked %d times, %s after pausing; want paused until delete-after (%s)",
				got, e.rt.count("Park", "echo"), time.Since(pausedAt), deleteAfter)
		}
		e.phase("echo", "zero", 2*time.Second)
		eventually(t, "parked", func() bool { return e.rt.count("Park", "echo") == 1 })
		if d := e.rt.last("Park", "echo").Sub(pausedAt); d > deleteAfter+time.Second {
			t.Errorf("parked %s after pausing, want about %s", d, deleteAfter)
		}
		if got := e.rt.status(id); got != function.TaskCreated {
			t.Errorf("task %q after parking, want created (no process)", got)
		}

		if got := e.acquire("echo"); got != addr {
			t.Errorf("Acquire on a parked function = %s, want the unparked %s", got, addr)
		}
		if got := e.rt.count("Unpark", "echo"); got != 1 {
			t.Errorf("unparked %d times, want 1", got)
		}
		if got := len(e.rt.createdFor("echo")); got != 1 {
			t.Errorf("created %d replicas, want 1 (woken, not recreated)", got)
		}
	})
}

// A function woken by a request is paused again after another
// zero-duration of idleness, like any active function.
func TestIdleAgainAfterWake(t *testing.T) {
	for _, from := range []string{"paused", "zero"} {
		t.Run(from, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const zeroAfter = 30 * time.Second
				e, _ := newAutoEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, zeroAfter.String(),
					function.LabelDeleteAfter, "1m"))
				synctest.Wait()
				e.acquire("echo")
				e.phase("echo", from, 5*time.Minute)
				time.Sleep(time.Second) // let a park finish
				synctest.Wait()

				e.acquire("echo")
				woke := time.Now()
				freezes := e.rt.count("Freeze", "echo")
				e.phase("echo", "paused", zeroAfter+2*time.Second)
				if got := e.rt.count("Freeze", "echo"); got != freezes+1 {
					t.Errorf("froze %d times after the wake, want 1", got-freezes)
				}
				if d := e.rt.last("Freeze", "echo").Sub(woke); d < zeroAfter {
					t.Errorf("paused %s after the wake, want at least %s", d, zeroAfter)
				}
			})
		})
	}
}

// Low memory parks a paused function before its delete-after.
func TestMemoryLowParksPaused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other bool // another function is busy, so the autoscaler is awake anyway
		bug   string
	}{
		{"another function busy", true, ""},
		{"host otherwise idle", false, "the autoscaler sleeps until the paused function's delete-after deadline, so MemoryLow is not read and low memory parks nothing early"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
			}
			synctest.Test(t, func(t *testing.T) {
				e, mem := newAutoEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, "30s",
					function.LabelDeleteAfter, "30m"))
				if tc.other {
					e.deploy(spec("busy", "busy:1"))
				}
				synctest.Wait()
				if tc.other {
					defer e.load("busy", time.Second, func(int) int { return 1 })()
				}
				e.phase("echo", "paused", time.Minute)
				time.Sleep(time.Minute)
				synctest.Wait()
				if got := e.status("echo").Phase; got != "paused" {
					t.Fatalf("phase %q a minute after pausing, want still paused", got)
				}

				mem.low.Store(true)
				low := time.Now()
				e.phase("echo", "zero", 10*time.Minute)
				if d := time.Since(low); d > 10*time.Second {
					t.Errorf("parked %s after memory ran low, want within 10s", d)
				}
				eventually(t, "parked", func() bool { return e.rt.count("Park", "echo") == 1 })
			})
		})
	}
}

// Concurrent requests to a parked function share one wake-up.
func TestConcurrentWakeSharesOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		e, _ := newAutoEnv(t, scale.Config{})
		e.start()
		e.deploy(labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, "30s",
			function.LabelDeleteAfter, "1m", function.LabelScaleTarget, "100"))
		synctest.Wait()
		addr := e.acquire("echo")
		e.phase("echo", "zero", 5*time.Minute)
		eventually(t, "parked", func() bool { return e.rt.count("Park", "echo") == 1 })

		start := time.Now()
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex // guards leases, errs
			leases []function.Lease
			errs   []error
		)
		for range n {
			wg.Go(func() {
				l, err := e.c.Acquire(t.Context(), "echo")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				leases = append(leases, l)
			})
		}
		wg.Wait()
		took := time.Since(start)
		defer release(leases)
		if len(errs) != 0 {
			t.Errorf("%d of %d Acquires failed: %v", len(errs), n, errs[0])
		}
		for _, l := range leases {
			if l.Addr() != addr {
				t.Errorf("Acquire = %s, want the unparked %s", l.Addr(), addr)
				break
			}
		}
		if took > time.Second {
			t.Errorf("wake took %s", took)
		}
		if got := e.rt.count("Unpark", "echo"); got != 1 {
			t.Errorf("unparked %d times for %d requests, want 1", got, n)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st := e.status("echo"); st.Desired != 1 || len(st.Replicas) != 1 {
			t.Errorf("desired %d, %d replicas; want 1 of each", st.Desired, len(st.Replicas))
		}
		if got := len(e.rt.createdFor("echo")); got != 1 {
			t.Errorf("created %d replicas, want 1", got)
		}
	})
}

// A request waits for a wake-up no longer than WakeTimeout, and no more
// than MaxWaiting requests wait.
func TestWakeBounds(t *testing.T) {
	const wakeTimeout = 5 * time.Second
	// parkedNeverReady returns an env whose function is parked and whose
	// replica, once started, never writes its lock.
	parkedNeverReady := func(t *testing.T) *env {
		e, _ := newAutoEnv(t, scale.Config{WakeTimeout: wakeTimeout, MaxWaiting: 3})
		e.start()
		e.deploy(labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, "30s",
			function.LabelDeleteAfter, "1m"))
		synctest.Wait()
		id := e.readyIDs("echo")[0]
		e.phase("echo", "zero", 5*time.Minute)
		eventually(t, "parked", func() bool { return e.rt.count("Park", "echo") == 1 })
		e.rt.setLock(id, false)
		return e
	}

	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := parkedNeverReady(t)
			start := time.Now()
			_, err := e.c.Acquire(t.Context(), "echo")
			if !errors.Is(err, function.ErrNoReplica) {
				t.Errorf("Acquire = %v, want ErrNoReplica", err)
			}
			if d := time.Since(start); d != wakeTimeout {
				t.Errorf("Acquire failed after %s, want WakeTimeout %s", d, wakeTimeout)
			}
			if got := e.rt.count("Unpark", "echo"); got != 1 {
				t.Errorf("unparked %d times, want 1", got)
			}
		})
	})

	t.Run("queue full", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := parkedNeverReady(t)
			type result struct {
				err  error
				took time.Duration
			}
			results := make(chan result, 4)
			start := time.Now()
			for range 4 {
				go func() {
					_, err := e.c.Acquire(t.Context(), "echo")
					results <- result{err, time.Since(start)}
				}()
			}
			var full, timedOut int
			for range 4 {
				r := <-results
				switch {
				case errors.Is(r.err, function.ErrQueueFull) && r.took == 0:
					full++
				case errors.Is(r.err, function.ErrNoReplica) && r.took == wakeTimeout:
					timedOut++
				default:
					t.Errorf("Acquire = %v after %s, want ErrQueueFull at once or ErrNoReplica after %s", r.err, r.took, wakeTimeout)
				}
			}
			if full != 1 || timedOut != 3 {
				t.Errorf("%d ErrQueueFull, %d ErrNoReplica; want 1 and 3 with MaxWaiting 3", full, timedOut)
			}

			// The queue empties with them: the next request waits again,
			// and is served once the replica is ready.
			id := e.status("echo").Replicas[0].ID
			go func() {
				time.Sleep(time.Second)
				e.rt.setLock(id, true)
			}()
			if _, err := e.c.Acquire(t.Context(), "echo"); err != nil {
				t.Errorf("Acquire after the lock appeared: %v", err)
			}
		})
	})
}

// A paused function and a parked one cost nothing: for an hour nothing
// checks their replicas, and a parked function's autoscaler sleeps. A
// paused one may only check memory, which is how it is parked early.
func TestIdleCostsNothing(t *testing.T) {
	for _, tc := range []struct {
		phase       string
		deleteAfter string
		maxMemReads int64
	}{
		{"paused", "2h", int64(time.Hour/(5*time.Second)) + 1},
		{"zero", "1m", 0},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, mem := newAutoEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(function.LabelScaleZero, "true", function.LabelScaleZeroDuration, "30s",
					function.LabelDeleteAfter, tc.deleteAfter))
				synctest.Wait()
				e.acquire("echo")
				e.phase("echo", tc.phase, 5*time.Minute)
				time.Sleep(time.Second) // let a park finish
				synctest.Wait()

				ops := []string{"LockVisible", "ProbeLock", "Dial", "Wait", "Create", "Freeze", "Thaw", "Park", "Unpark"}
				counts := func() map[string]int {
					m := map[string]int{}
					for _, op := range ops {
						m[op] = e.rt.count(op, "")
					}
					return m
				}
				before, memBefore := counts(), mem.calls.Load()
				time.Sleep(time.Hour)
				synctest.Wait()
				if diff := cmp.Diff(before, counts()); diff != "" {
					t.Errorf("runtime calls during an idle hour (-before +after):\n%s", diff)
				}
				if n := mem.calls.Load() - memBefore; n > tc.maxMemReads {
					t.Errorf("the autoscaler read memory %d times during an idle hour, want at most %d", n, tc.maxMemReads)
				}
				if got := e.status("echo").Phase; got != tc.phase {
					t.Errorf("phase %q after an idle hour, want %q", got, tc.phase)
				}
			})
		})
	}
}

// A function scaled up and then idle wakes from zero with one replica:
// the parked one. The count it had before it went idle is history.
func TestWakeFromZeroStartsOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newAutoEnv(t, scale.Config{})
		e.start()
		e.deploy(labelled(function.LabelScaleType, function.ScaleCapacity, function.LabelScaleProportion, "1", function.LabelScaleTarget, "2", function.LabelScaleMax, "6",
			function.LabelScaleZero, "true", function.LabelScaleZeroDuration, "10s",
			function.LabelDeleteAfter, "20s"))
		synctest.Wait()
		release(e.hold("echo", 1)) // count some activity
		ls := e.hold("echo", 10)
		time.Sleep(2 * loadWindow)
		synctest.Wait()
		if got := e.status("echo").Desired; got != 5 {
			t.Fatalf("desired %d with 10 in flight, want 5", got)
		}
		release(ls)
		e.phase("echo", "zero", 5*time.Minute)
		eventually(t, "parked", func() bool { return e.rt.count("Park", "echo") == 1 })
		eventually(t, "others removed", func() bool { return len(e.rt.live()) == 1 })

		e.acquire("echo")
		time.Sleep(time.Second)
		synctest.Wait()
		if st := e.status("echo"); st.Desired != 1 || len(st.Replicas) != 1 {
			t.Errorf("woken by one request: desired %d, %d replicas; want 1 of each", st.Desired, len(st.Replicas))
		}
		if got := len(e.rt.createdFor("echo")); got != 5 {
			t.Errorf("created %d replicas in all, want the first 5 only", got)
		}
	})
}

// calls runs a goroutine that starts rps calls a second, each holding its
// lease for d, until the returned stop is called.
func (e *env) calls(name string, rps int, d time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	go func() {
		defer close(done)
		defer wg.Wait()
		// Off the autoscaler's 250ms grid, so no call and no sample
		// share an instant.
		time.Sleep(time.Millisecond)
		for {
			select {
			case <-quit:
				return
			default:
			}
			l, err := e.c.Acquire(e.t.Context(), name)
			if err != nil {
				e.t.Errorf("Acquire(%s): %v", name, err)
				return
			}
			wg.Go(func() {
				time.Sleep(d)
				l.Release()
			})
			time.Sleep(time.Second / time.Duration(rps))
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// Without Pro's labels a function follows OpenFaaS CE's rule, as the
// certifier's throughput test checks it: over 5 rps for 5s adds
// ceil(max × 20%) replicas, and the end of the load returns it to min.
func TestAutoscaleCE(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []string
		want   int
	}{
		{"certifier max 2", []string{function.LabelScaleMin, "1", function.LabelScaleMax, "2"}, 2},
		{"default max 20: steps of 4", nil, 5},
		{"factor 50 of max 4", []string{function.LabelScaleMax, "4", function.LabelScaleFactor, "50"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(tc.labels...))
				synctest.Wait()

				stop := e.calls("echo", 10, time.Millisecond)
				up := e.watch("echo", 20*time.Second)
				stop()
				down := e.watch("echo", 60*time.Second)

				if len(up) != 1 || up[0].From != 1 || up[0].To != tc.want {
					t.Fatalf("under 10 rps for 20s: changes %+v, want one step 1 → %d", up, tc.want)
				}
				if up[0].At < 5*time.Second || up[0].At > 8*time.Second {
					t.Errorf("stepped up after %s of 10 rps, want after the rule's 5s (and within 8s)", up[0].At)
				}
				if len(down) != 1 || down[0].To != 1 {
					t.Fatalf("after the load: changes %+v, want one step back to min 1", down)
				}
				if down[0].At > 20*time.Second {
					t.Errorf("back to min %s after the load ended, want within 20s (the certifier waits 60s)", down[0].At)
				}
				if st := e.status("echo"); st.Desired != 1 || st.Ready != 1 {
					t.Errorf("desired %d, ready %d after the cool-down; want 1 of each", st.Desired, st.Ready)
				}
			})
		})
	}
}

// Five requests a second or fewer never fire CE's rule; a load that lasts
// fires it again every 30s, up to max.
func TestAutoscaleCESteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(labelled(function.LabelScaleMax, "10")) // steps of 2
		synctest.Wait()

		stop := e.calls("echo", 4, time.Millisecond)
		if changes := e.watch("echo", time.Minute); len(changes) != 0 {
			t.Errorf("4 rps changed the count: %+v", changes)
		}
		stop()
		stop = e.calls("echo", 20, time.Millisecond)
		changes := e.watch("echo", 140*time.Second)
		stop()
		var path []int
		for _, c := range changes {
			path = append(path, c.To)
		}
		if want := []int{3, 5, 7, 9, 10}; !slices.Equal(path, want) {
			t.Errorf("20 rps for 140s went through %v, want %v: %+v", path, want, changes)
		}
		for i := 1; i < len(changes); i++ {
			if gap := changes[i].At - changes[i-1].At; gap < 30*time.Second || gap > 31*time.Second {
				t.Errorf("step %d came %s after the one before, want AlertManager's 30s repeat", i+1, gap)
			}
		}
	})
}

// Pro's labels: desired = ceil(load / (target × target-proportion)), the
// load being requests per second, requests in flight or millicores.
func TestAutoscalePro(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []string
		load   func(e *env) (stop func())
		want   int
	}{
		// Pro's documented example: capacity target 5, 15 in flight.
		{"capacity 15 in flight, target 5, proportion 1", []string{function.LabelScaleType, function.ScaleCapacity,
			function.LabelScaleTarget, "5", function.LabelScaleProportion, "1"},
			func(e *env) func() { return e.load("echo", time.Second, func(int) int { return 15 }) }, 3},
		{"capacity 15 in flight, target 5, default proportion 0.9", []string{function.LabelScaleType, function.ScaleCapacity,
			function.LabelScaleTarget, "5"},
			func(e *env) func() { return e.load("echo", time.Second, func(int) int { return 15 }) }, 4},
		{"rps default target 50: 40 rps stays", []string{function.LabelScaleType, function.ScaleRPS},
			func(e *env) func() { return e.calls("echo", 40, time.Millisecond) }, 1},
		{"rps default target 50: 100 rps", []string{function.LabelScaleType, function.ScaleRPS},
			func(e *env) func() { return e.calls("echo", 100, time.Millisecond) }, 3},
		{"target alone means rps", []string{function.LabelScaleTarget, "10"},
			func(e *env) func() { return e.calls("echo", 40, time.Millisecond) }, 5},
		{"cpu 450m, target 100m", []string{function.LabelScaleType, function.ScaleCPU, function.LabelScaleTarget, "100"},
			func(e *env) func() {
				e.rt.setCPU(450)
				stop := e.calls("echo", 2, time.Millisecond)
				return func() {
					stop()
					e.rt.setCPU(1) // the load ends with the calls
				}
			}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled(append(tc.labels, function.LabelScaleDownWindow, "10s")...))
				synctest.Wait()

				stop := tc.load(e)
				changes := e.watch("echo", 30*time.Second)
				stop()
				if st := e.status("echo"); st.Desired != tc.want || st.Ready != tc.want {
					t.Errorf("desired %d, ready %d; want %d of each (changes %+v)", st.Desired, st.Ready, tc.want, changes)
				}
				for _, c := range changes {
					if c.To > tc.want {
						t.Errorf("overshot: %d → %d at %s", c.From, c.To, c.At)
					}
				}
				if got := len(e.watch("echo", 30*time.Second)); tc.want > 1 && got == 0 {
					t.Errorf("no scale-down within 30s of the load's end (down window 10s)")
				}
				if st := e.status("echo"); st.Desired != 1 {
					t.Errorf("desired %d 30s after the load, want min 1", st.Desired)
				}
			})
		})
	}
}

// On a saturated host a function whose replicas are busy gets no more,
// under either rule; one whose replicas idle still does (a replica that
// would idle too takes nothing from anyone). Once the CPU frees up, the
// held scale-up happens.
func TestAutoscaleCPUBrake(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []string
		load   func(e *env) (stop func())
		want   int // once the brake is off
		held   bool
	}{
		{"capacity, busy replicas", []string{function.LabelScaleType, function.ScaleCapacity,
			function.LabelScaleTarget, "2", function.LabelScaleProportion, "1"},
			func(e *env) func() { return e.load("echo", time.Second, func(int) int { return 10 }) }, 5, true},
		{"CE, busy replicas (10 rps of 200ms)", nil,
			func(e *env) func() { return e.calls("echo", 10, 200*time.Millisecond) }, 5, true},
		{"CE, idle replicas (10 rps of 1ms)", nil,
			func(e *env) func() { return e.calls("echo", 10, time.Millisecond) }, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var saturated atomic.Bool
				saturated.Store(true)
				var reads atomic.Int64
				e := newEnv(t, scale.Config{CPUSaturated: func() bool {
					reads.Add(1)
					return saturated.Load()
				}})
				e.start()
				e.deploy(labelled(tc.labels...))
				synctest.Wait()

				stop := tc.load(e)
				defer stop()
				changes := e.watch("echo", 20*time.Second)
				if tc.held && !onlyProbes(changes, 1) {
					t.Errorf("grew on a saturated host: %+v, want at most undone probes", changes)
				}
				if !tc.held && (len(changes) != 1 || changes[0].To != tc.want) {
					t.Errorf("idle replicas on a saturated host: changes %+v, want one step to %d", changes, tc.want)
				}
				if reads.Load() == 0 {
					t.Error("CPUSaturated never read")
				}
				saturated.Store(false)
				time.Sleep(2 * time.Second)
				synctest.Wait()
				if st := e.status("echo"); st.Desired != tc.want {
					t.Errorf("desired %d within 2s of the brake's release, want %d", st.Desired, tc.want)
				}
			})
		})
	}
}

// A held scale-up does not happen as the load ends: the average in flight
// falls below busy before the rate falls below CE's threshold, and the
// brake must not let the replicas through then.
func TestAutoscaleCPUBrakeAtLoadEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{CPUSaturated: func() bool { return true }})
		e.start()
		e.deploy(labelled())
		synctest.Wait()

		stop := e.calls("echo", 100, 10*time.Millisecond) // 1 in flight, 100 rps
		changes := e.watch("echo", 20*time.Second)
		stop()
		if !onlyProbes(changes, 1) {
			t.Errorf("saturated host: changes %+v under the load, want at most undone probes", changes)
		}
		if after := e.watch("echo", 30*time.Second); len(after) != 0 {
			t.Errorf("saturated host: changes %+v after the load, want none", after)
		}
	})
}

// Under CE's rule, a replica is added only where requests wait for one:
// 90 rps of 6 ms calls (half a request in flight) on an idle host stay on
// one replica, 20 rps of 100 ms calls (two in flight) get the step.
func TestAutoscaleCECapacity(t *testing.T) {
	for _, tc := range []struct {
		name string
		rps  int
		d    time.Duration
		want int
	}{
		{"half a request in flight", 90, 6 * time.Millisecond, 1}, // off the 250ms sampling grid
		{"two in flight", 20, 100 * time.Millisecond, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{})
				e.start()
				e.deploy(labelled())
				synctest.Wait()
				stop := e.calls("echo", tc.rps, tc.d)
				changes := e.watch("echo", 20*time.Second)
				stop()
				changes = append(changes, e.watch("echo", 5*time.Second)...)
				if got := e.status("echo").Desired; tc.want == 1 && !onlyProbes(changes, 1) || tc.want > 1 && (len(changes) == 0 || changes[0].To != tc.want) {
					t.Errorf("%d rps of %s: changes %+v (desired now %d), want the first to %d", tc.rps, tc.d, changes, got, tc.want)
				}
			})
		})
	}
}

// onlyProbes reports whether changes are probes from base, each undone:
// base → base+1 → base, and so on.
func onlyProbes(changes []change, base int) bool {
	for i, c := range changes {
		if i%2 == 0 && (c.From != base || c.To != base+1) || i%2 == 1 && (c.From != base+1 || c.To != base) {
			return false
		}
	}
	return len(changes)%2 == 0
}

// closed runs workers that each take a lease, hold it for hold(ready
// replicas) and take the next, until the returned stop is called: a
// closed loop, whose rate shows what a replica more is worth.
func (e *env) closed(name string, workers int, hold func(ready int) time.Duration) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-quit:
					return
				default:
				}
				l, err := e.c.Acquire(e.t.Context(), name)
				if err != nil {
					e.t.Errorf("Acquire(%s): %v", name, err)
					return
				}
				time.Sleep(hold(e.status(name).Ready))
				l.Release()
			}
		})
	}
	return func() {
		close(quit)
		wg.Wait()
	}
}

// A held function tries one replica more, keeps it if the function then
// serves more (its replicas were the limit, not the CPU) and undoes it if
// not, then waits a minute before the next try.
func TestAutoscaleProbe(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold func(ready int) time.Duration
		want []int // the counts desired goes through in 80s
	}{
		{"a replica more serves no more", func(int) time.Duration { return 10 * time.Millisecond },
			[]int{2, 1, 2, 1}},
		{"two replicas serve twice as much", func(ready int) time.Duration {
			return 20 * time.Millisecond / time.Duration(min(max(ready, 1), 2))
		}, []int{2, 3, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{CPUSaturated: func() bool { return true }})
				e.start()
				e.deploy(labelled())
				synctest.Wait()
				stop := e.closed("echo", 8, tc.hold)
				changes := e.watch("echo", 80*time.Second)
				stop()
				var path []int
				for _, c := range changes {
					path = append(path, c.To)
				}
				if !slices.Equal(path, tc.want) {
					t.Errorf("desired went through %v, want %v: %+v", path, tc.want, changes)
				}
			})
		})
	}
}
