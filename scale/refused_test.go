package scale_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// The last ready replica dies while the other is out of rotation: the
// first refused connection takes it out at once, and requests are held,
// as during a wake, until the restarted replica is ready. None fails.
func TestRefusedLastReplicaHoldsRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 5 * time.Second
		e := newEnv(t, scale.Config{HealthInterval: interval, HealthMisses: 100})
		e.start()
		s := spec("echo", "echo:1")
		s.Replicas = 2
		e.deploy(s)
		synctest.Wait()
		ready := e.readyIDs("echo")
		if len(ready) != 2 {
			t.Fatalf("ready = %v, want 2", ready)
		}
		sick, crash := ready[0], ready[1]
		addrs := e.addrs("echo")
		e.rt.setLock(sick, false)
		time.Sleep(interval)
		synctest.Wait()
		if got := e.readyIDs("echo"); !slices.Equal(got, []string{crash}) {
			t.Fatalf("ready = %v, want only %s", got, crash)
		}

		// The process dies; containerd has not said so yet.
		e.rt.die(crash)
		l, err := e.c.Acquire(t.Context(), "echo")
		if err != nil || l.Addr() != addrs[crash] {
			t.Fatalf("Acquire = %v, %v; want the last ready replica", l, err)
		}
		l.Refused()
		l.Release()
		synctest.Wait()
		if got := e.readyIDs("echo"); len(got) != 0 {
			t.Fatalf("after a refusal: ready = %v, want none", got)
		}

		type result struct {
			addr string
			err  error
			at   time.Time
		}
		held := make(chan result, 3)
		for range cap(held) {
			go func() {
				l, err := e.c.Acquire(t.Context(), "echo")
				r := result{err: err, at: time.Now()}
				if err == nil {
					r.addr = l.Addr()
					l.Release()
				}
				held <- r
			}()
		}
		synctest.Wait()
		if len(held) != 0 {
			t.Fatal("Acquire answered while no replica was ready, want it held")
		}
		time.Sleep(time.Second) // the exit event arrives late
		e.rt.exit(crash, 137)
		exitAt := time.Now()
		for range cap(held) {
			r := <-held
			if r.err != nil || r.addr != addrs[crash] {
				t.Errorf("held Acquire = %q, %v; want the restarted replica", r.addr, r.err)
			}
			if r.at.Before(exitAt) {
				t.Errorf("held Acquire answered at %v, before the replica was back", r.at)
			}
		}
		if got := e.status("echo").Replicas; len(got) != 2 {
			t.Errorf("replicas %v, want the same two", got)
		}
		for _, r := range e.status("echo").Replicas {
			if r.ID == crash && r.Restarts != 1 {
				t.Errorf("%s restarts = %d, want 1", crash, r.Restarts)
			}
		}
	})
}

// A refusal from a replica that is in fact alive (a full accept queue, say)
// takes it out of rotation only until a dial succeeds: nothing restarts.
func TestRefusedTransientComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		synctest.Wait()
		ready := e.readyIDs("echo")
		l, err := e.c.Acquire(t.Context(), "echo")
		if err != nil {
			t.Fatal(err)
		}
		l.Refused()
		l.Refused() // a burst of refusals is one event
		l.Release()
		synctest.Wait()
		if got := e.readyIDs("echo"); !slices.Equal(got, ready) {
			t.Errorf("ready = %v, want %v back", got, ready)
		}
		if got := e.states("echo")[ready[0]]; got != function.StateReady {
			t.Errorf("state %q, want ready", got)
		}
		if n := len(e.rt.restarts()); n != 0 {
			t.Errorf("%d restarts, want none", n)
		}
		if got := e.acquire("echo"); got != e.addrs("echo")[ready[0]] {
			t.Errorf("Acquire = %q, want the replica back in rotation", got)
		}
	})
}

// WaitReady returns only once every replica in rotation runs the new
// spec: a caller's next request after a deploy never reaches the old one.
func TestWaitReadyWaitsForRollout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		v1 := spec("echo", "echo:1")
		v1.Replicas = 2
		e.deploy(v1)
		synctest.Wait()
		old := e.addrs("echo")

		e.rt.setNewLock(false)
		v2 := v1
		v2.Image = "echo:2"
		e.deploy(v2)
		synctest.Wait()
		var fresh []string
		for id := range e.states("echo") {
			if _, ok := old[id]; !ok {
				fresh = append(fresh, id)
			}
		}
		if len(fresh) != 2 {
			t.Fatalf("new replicas %v, want 2", fresh)
		}
		done := make(chan error, 1)
		go func() { done <- e.c.WaitReady(t.Context(), "echo") }()

		e.rt.setLock(fresh[0], true)
		time.Sleep(time.Second)
		select {
		case err := <-done:
			t.Fatalf("WaitReady = %v with one new replica ready and an old one serving", err)
		default:
		}
		e.rt.setLock(fresh[1], true)
		if err := <-done; err != nil {
			t.Fatalf("WaitReady: %v", err)
		}
		for range 20 {
			a := e.acquire("echo")
			for id, oa := range old {
				if a == oa {
					t.Fatalf("after WaitReady, Acquire = %s, the old replica %s", a, id)
				}
			}
		}
	})
}
