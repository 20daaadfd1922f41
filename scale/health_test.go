package scale_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// An exec probe that cannot run because containerd is unreachable says
// nothing about the replica: it stays in rotation however long containerd
// is away, and nothing is replaced. Any other probe failure is a miss.
func TestProbeRuntimeUnavailableIsNoMiss(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		wantHealthy bool
	}{
		{"runtime unavailable", fmt.Errorf("exec probe: %w", function.ErrRuntimeUnavailable), true},
		{"probe failed", errors.New("exec probe: permission denied"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{HealthInterval: 5 * time.Second, HealthMisses: 3,
					ProbeSpacing: time.Second, ProbeEvery: 10 * time.Second})
				e.start()
				s := spec("echo", "echo:1")
				s.Labels = map[string]string{function.LabelScaleMin: "2", function.LabelScaleMax: "2"}
				e.deploy(s)
				synctest.Wait()
				ready := e.readyIDs("echo")
				if len(ready) != 2 {
					t.Fatalf("ready = %v, want 2", ready)
				}
				probes := e.rt.count("ProbeLock", "echo")

				e.rt.setProbeErr(tc.err)
				// Watch often: the lock's stat brings a replica whose
				// probe failed back within a health interval.
				sawUnhealthy := false
				for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); {
					time.Sleep(100 * time.Millisecond)
					synctest.Wait()
					for _, st := range e.states("echo") {
						sawUnhealthy = sawUnhealthy || st == function.StateUnhealthy
					}
				}
				if n := e.rt.count("ProbeLock", "echo") - probes; n < 4 {
					t.Fatalf("%d probes in 2 minutes, want the probe loop to have kept trying", n)
				}
				if sawUnhealthy == tc.wantHealthy {
					t.Errorf("a replica turned unhealthy: %v, want %v", sawUnhealthy, !tc.wantHealthy)
				}
				if !tc.wantHealthy {
					return
				}
				if got := e.readyIDs("echo"); !slices.Equal(got, ready) {
					t.Errorf("ready = %v, want the same %v", got, ready)
				}
				if n := len(e.rt.createdFor("echo")); n != 2 {
					t.Errorf("created %d replicas, want 2 (nothing replaced)", n)
				}
				if r := e.rt.removedIDs(); len(r) != 0 {
					t.Errorf("removed %v, want nothing", r)
				}
			})
		})
	}
}
