package scale_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

func service(name, image string) function.Spec {
	return function.Spec{Kind: function.KindService, Name: name, Image: image,
		// Bounds a function would autoscale within: a service ignores them.
		Labels:  map[string]string{function.LabelScaleMax: "5", function.LabelScaleZero: "true", function.LabelScaleZeroDuration: "1s"},
		Service: &function.Service{Healthcheck: &function.Healthcheck{Test: []string{"/check"}, Interval: time.Second}}}
}

func TestServicePolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(service("kv", "kv:1"))
		synctest.Wait()
		if st := e.status("kv"); st.Ready != 0 || len(st.Replicas) != 1 {
			t.Fatalf("status = %+v, want one replica, not ready while its healthcheck fails", st)
		}
		e.rt.mu.Lock()
		e.rt.healthy = true
		e.rt.mu.Unlock()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := e.status("kv"); st.Ready != 1 || st.Desired != 1 {
			t.Fatalf("status = %+v, want 1 ready of 1", st)
		}
		if got, want := e.rt.serviceHosts(), map[string]netip.Addr{"kv": netip.MustParseAddr("10.0.0.1")}; len(got) != 1 || got["kv"] != want["kv"] {
			t.Errorf("hosts = %v, want %v", got, want)
		}
		if err := e.c.Scale(t.Context(), "kv", 3); !errors.Is(err, function.ErrInvalid) {
			t.Errorf("Scale = %v, want ErrInvalid", err)
		}
		if _, err := e.c.Acquire(t.Context(), "kv"); !errors.Is(err, function.ErrNotFound) {
			t.Errorf("Acquire = %v, want ErrNotFound: services are not behind /function/", err)
		}
		// Idle far past the zero duration: a service is never paused.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if st := e.status("kv"); st.Phase != "active" || st.Ready != 1 {
			t.Errorf("after idling: status = %+v, want active and ready", st)
		}
		if err := e.c.Deploy(t.Context(), spec("kv", "echo:1")); !errors.Is(err, function.ErrExists) {
			t.Errorf("deploy a function over a service = %v, want ErrExists", err)
		}
		if err := e.c.Remove(t.Context(), "kv"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := e.rt.serviceHosts(); len(got) != 0 {
			t.Errorf("hosts after removal = %v, want none", got)
		}
	})
}

func TestServiceUpdateStopsOldFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.healthy = true
		e.start()
		e.deploy(service("kv", "kv:1"))
		synctest.Wait()
		e.deploy(service("kv", "kv:2"))
		for range 100 {
			synctest.Wait()
			if n := len(e.status("kv").Replicas); n > 1 {
				t.Fatalf("%d replicas during an update, want at most 1: a service owns its volumes", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		st := e.status("kv")
		if st.Ready != 1 || st.Replicas[0].Hash != service("kv", "kv:2").Hash() {
			t.Errorf("status = %+v, want the new image ready", st)
		}
	})
}

// A service keeps its address through a restart, an image update and a
// reboot, and its name never leaves the hosts files meanwhile: functions
// that cached either keep reaching it once it is back.
func TestServiceKeepsAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.healthy = true
		e.start()
		e.deploy(service("kv", "kv:1"))
		synctest.Wait()
		ip := e.rt.serviceHosts()["kv"]
		if !ip.IsValid() {
			t.Fatalf("hosts = %v, want kv", e.rt.serviceHosts())
		}
		// Another replica takes the next address meanwhile.
		e.deploy(spec("fn", "echo:1"))
		synctest.Wait()
		check := func(when string) {
			t.Helper()
			for range 50 {
				synctest.Wait()
				if got := e.rt.serviceHosts()["kv"]; got != ip {
					t.Fatalf("%s: hosts say kv is %v, want %v throughout", when, got, ip)
				}
				time.Sleep(100 * time.Millisecond)
			}
			st := e.status("kv")
			if st.Ready != 1 || st.Replicas[0].IP != ip.String() {
				t.Fatalf("%s: status = %+v, want one replica ready at %v", when, st, ip)
			}
		}
		first := e.status("kv").Replicas[0].ID
		if err := e.c.Restart(t.Context(), "kv"); err != nil {
			t.Fatal(err)
		}
		check("after a restart")
		if e.status("kv").Replicas[0].ID == first {
			t.Fatalf("restart kept replica %s", first)
		}
		e.deploy(service("kv", "kv:2"))
		check("after an image update")
	})
}

// After a reboot the service's container is there without a task: it is
// removed, and the new replica takes its address.
func TestServiceRebootKeepsAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := service("kv", "kv:1")
		e := newEnv(t, scale.Config{}, s)
		e.rt.healthy = true
		e.survivor(s, "kv-old", 7, time.Hour, function.TaskNone)
		e.start()
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		st := e.status("kv")
		if st.Ready != 1 || st.Replicas[0].IP != "10.0.1.7" {
			t.Fatalf("status = %+v, want one replica ready at 10.0.1.7", st)
		}
		if !slices.Contains(e.rt.removedIDs(), "kv-old") {
			t.Errorf("removed %v, want kv-old", e.rt.removedIDs())
		}
	})
}

// At boot, functions with nothing running start once the services are
// ready, or after ServiceWait if one never is.
func TestServicesStartFirst(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		t.Run(fmt.Sprintf("healthy=%v", healthy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := service("kv", "kv:1")
				e := newEnv(t, scale.Config{ServiceWait: 20 * time.Second}, s, spec("app", "echo:1"))
				e.start()
				time.Sleep(5 * time.Second)
				synctest.Wait()
				if got := e.rt.createdFor("app"); len(got) != 0 {
					t.Fatalf("app created %v while kv is not ready", got)
				}
				at := time.Now()
				if healthy {
					e.rt.mu.Lock()
					e.rt.healthy = true
					e.rt.mu.Unlock()
				} else {
					at = at.Add(15 * time.Second)
				}
				time.Sleep(20 * time.Second)
				synctest.Wait()
				got := e.rt.createdFor("app")
				if len(got) != 1 {
					t.Fatalf("app created %v, want once", got)
				}
				if got[0].At.Before(at) || got[0].At.After(at.Add(2*time.Second)) {
					t.Errorf("app created at %v, want soon after %v", got[0].At, at)
				}
			})
		})
	}
}

// A ready service whose healthcheck keeps failing is reported unhealthy
// after Retries checks, and ready again once one passes; it is neither
// restarted nor replaced for it, as compose does.
func TestServiceUnhealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.healthy = true
		e.start()
		e.deploy(service("kv", "kv:1")) // checks every second, 3 retries
		synctest.Wait()
		id := e.status("kv").Replicas[0].ID
		setHealthy := func(ok bool) {
			e.rt.mu.Lock()
			e.rt.healthy = ok
			e.rt.mu.Unlock()
		}
		setHealthy(false)
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		if r := e.status("kv").Replicas[0]; r.State != function.StateReady {
			t.Fatalf("after 2 failed checks: %+v, want still ready", r)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		r := e.status("kv").Replicas[0]
		if r.State != function.StateUnhealthy || r.Message == "" {
			t.Fatalf("after 3 failed checks: %+v, want unhealthy, saying why", r)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		setHealthy(true)
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		st := e.status("kv")
		if len(st.Replicas) != 1 || st.Replicas[0].ID != id || st.Replicas[0].State != function.StateReady || st.Replicas[0].Restarts != 0 {
			t.Fatalf("after a passing check: %+v, want %s ready again, never restarted", st.Replicas, id)
		}
		if got := len(e.rt.createdFor("kv")); got != 1 {
			t.Errorf("kv created %d times, want once", got)
		}
	})
}
