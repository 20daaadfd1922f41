package scale_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// What a daemon killed at any moment leaves behind, and what the next one
// makes of it.

func boundSpec(name, image string, lo, hi int) function.Spec {
	s := spec(name, image)
	s.Labels = map[string]string{function.LabelScaleMin: fmt.Sprint(lo), function.LabelScaleMax: fmt.Sprint(hi)}
	return s
}

// survivor seeds replica id of spec s as a survivor of a daemon restart,
// created age ago.
func (e *env) survivor(s function.Spec, id string, n int, age time.Duration, status function.TaskStatus) {
	e.rt.add(function.Instance{ID: id, Function: s.Name, Hash: s.Hash(),
		IP: netip.AddrFrom4([4]byte{10, 0, 1, byte(n)}), Pid: uint32(100 + n), Status: status,
		Created: time.Now().Add(-age), Cgroup: "/ember/" + id})
}

// Adoption keeps what ran within the function's bounds: replicas beyond
// max are removed, the newest first.
func TestRecoverClampsToBounds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lo, hi    int
		survivors int
		want      int
	}{
		{"min=max=2, 4 survived", 2, 2, 4, 2},
		{"max=3, 5 survived", 1, 3, 5, 3},
		{"autoscaled to 4 within max", 1, 10, 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := boundSpec("fn", "fn:1", tc.lo, tc.hi)
				e := newEnv(t, scale.Config{}, s)
				var ids []string
				for i := range tc.survivors {
					id := fmt.Sprintf("fn-%d", i)
					ids = append(ids, id)
					e.survivor(s, id, i+1, time.Duration(tc.survivors-i)*time.Hour, function.TaskRunning)
				}
				e.start()
				synctest.Wait()
				if got := e.status("fn").Desired; got != tc.want {
					t.Errorf("desired = %d, want %d", got, tc.want)
				}
				if got, want := e.readyIDs("fn"), ids[:tc.want]; !slices.Equal(got, want) {
					t.Errorf("ready = %v, want the oldest %v", got, want)
				}
				if got := len(e.rt.createdFor("fn")); got != 0 {
					t.Errorf("created %d replicas, want none", got)
				}
			})
		})
	}
}

// Outdated replicas left by an interrupted rolling update do not raise
// the count: a min=1 function killed mid-update, again and again, stays 1.
func TestRecoverOutdatedDoNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v1, v2 := spec("fn", "fn:1"), spec("fn", "fn:2")
		e := newEnv(t, scale.Config{}, v2)
		e.survivor(v1, "fn-old", 1, time.Hour, function.TaskRunning)
		e.survivor(v2, "fn-new", 2, time.Minute, function.TaskRunning)
		e.start()
		synctest.Wait()
		if got := e.status("fn").Desired; got != 1 {
			t.Errorf("desired = %d, want 1", got)
		}
		if got, want := e.readyIDs("fn"), []string{"fn-new"}; !slices.Equal(got, want) {
			t.Errorf("ready = %v, want %v", got, want)
		}
		if got, want := e.rt.removedIDs(), []string{"fn-old"}; !slices.Equal(got, want) {
			t.Errorf("removed %v, want %v", got, want)
		}
	})
}

// A task created but not started (the daemon died between the two) in an
// active function is started and counts toward desired.
func TestRecoverStartsCreatedTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := boundSpec("fn", "fn:1", 2, 2)
		e := newEnv(t, scale.Config{}, s)
		e.survivor(s, "fn-running", 1, time.Hour, function.TaskRunning)
		e.survivor(s, "fn-created", 2, time.Second, function.TaskCreated)
		e.start()
		synctest.Wait()
		st := e.status("fn")
		if st.Phase != "active" || st.Ready != 2 || len(st.Replicas) != 2 {
			t.Errorf("status = %+v, want active with 2 ready", st)
		}
		if _, _, _, unparked := e.rt.calls(); !slices.Equal(unparked, []string{"fn-created"}) {
			t.Errorf("started %v, want the created task", unparked)
		}
		if got := len(e.rt.createdFor("fn")); got != 0 {
			t.Errorf("created %d replicas, want none", got)
		}
	})
}

// A created task of an outdated spec is removed, not started; a new one
// takes its place.
func TestRecoverRemovesOutdatedCreatedTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v1, v2 := boundSpec("fn", "fn:1", 1, 1), boundSpec("fn", "fn:2", 1, 1)
		e := newEnv(t, scale.Config{}, v2)
		e.survivor(v2, "fn-new", 1, time.Minute, function.TaskRunning)
		e.survivor(v1, "fn-created", 2, time.Second, function.TaskCreated)
		e.start()
		synctest.Wait()
		if got, want := e.readyIDs("fn"), []string{"fn-new"}; !slices.Equal(got, want) {
			t.Errorf("ready = %v, want %v", got, want)
		}
		if got, want := e.rt.removedIDs(), []string{"fn-created"}; !slices.Equal(got, want) {
			t.Errorf("removed %v, want %v", got, want)
		}
		if _, _, _, unparked := e.rt.calls(); len(unparked) != 0 {
			t.Errorf("started %v, want nothing", unparked)
		}
	})
}

// Killed mid-update: the outdated replicas that were serving keep serving
// until enough current ones are ready, then drain.
func TestRecoverMidUpdateKeepsOldServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v1, v2 := boundSpec("fn", "fn:1", 2, 2), boundSpec("fn", "fn:2", 2, 2)
		e := newEnv(t, scale.Config{}, v2)
		e.survivor(v1, "fn-old1", 1, 2*time.Hour, function.TaskRunning)
		e.survivor(v1, "fn-old2", 2, time.Hour, function.TaskRunning)
		e.survivor(v2, "fn-new1", 3, time.Second, function.TaskRunning)
		e.survivor(v2, "fn-new2", 4, time.Second, function.TaskRunning)
		e.rt.setLock("fn-new1", false) // still starting up
		e.rt.setLock("fn-new2", false)
		e.rt.setOnRemove(func(fn, id string) {
			if ready := e.readyIDs("fn"); len(ready) == 0 {
				t.Errorf("removing %s with no ready replica left", id)
			}
		})
		e.start()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got, want := e.readyIDs("fn"), []string{"fn-old1", "fn-old2"}; !slices.Equal(got, want) {
			t.Errorf("ready = %v, want the old ones serving %v", got, want)
		}
		if got := e.rt.removedIDs(); len(got) != 0 {
			t.Errorf("removed %v before a new replica was ready", got)
		}
		if got, want := e.acquire("fn"), "10.0.1.1:8080"; got != want && got != "10.0.1.2:8080" {
			t.Errorf("Acquire = %s, want an old replica", got)
		}

		e.rt.setLock("fn-new1", true)
		eventually(t, "one old replica removed", func() bool { return len(e.rt.removedIDs()) == 1 })
		e.rt.setLock("fn-new2", true)
		eventually(t, "both old replicas removed", func() bool { return len(e.rt.removedIDs()) == 2 })
		if got, want := e.readyIDs("fn"), []string{"fn-new1", "fn-new2"}; !slices.Equal(got, want) {
			t.Errorf("ready = %v, want %v", got, want)
		}
		if got := e.status("fn").Desired; got != 2 {
			t.Errorf("desired = %d, want 2", got)
		}
		if got := len(e.rt.createdFor("fn")); got != 0 {
			t.Errorf("created %d replicas, want none", got)
		}
	})
}
