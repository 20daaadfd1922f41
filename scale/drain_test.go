package scale_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// A replica leaving service waits for its in-flight requests: it is
// removed as the last one finishes, not at some poll after it, and at
// DrainTimeout when one never does.
func TestDrain(t *testing.T) {
	const drainTimeout = 30 * time.Second
	for _, tc := range []struct {
		name    string
		release bool
	}{
		{"released", true},
		{"drain timeout", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{DrainTimeout: drainTimeout})
				e.start()
				e.deploy(spec("echo", "echo:1"))
				synctest.Wait()
				id := e.readyIDs("echo")[0]
				slow, err := e.c.Acquire(t.Context(), "echo")
				if err != nil {
					t.Fatal(err)
				}

				start := time.Now()
				removed := make(chan error, 1)
				go func() { removed <- e.c.Remove(t.Context(), "echo") }()
				time.Sleep(drainTimeout / 3)
				synctest.Wait()
				if got := e.rt.removedIDs(); len(got) != 0 {
					t.Fatalf("removed %v with a request still in flight", got)
				}
				select {
				case err := <-removed:
					t.Fatalf("Remove returned (%v) with a request still in flight", err)
				default:
				}

				if tc.release {
					slow.Release()
				} else {
					time.Sleep(drainTimeout - time.Since(start) - time.Millisecond)
					synctest.Wait()
					if got := e.rt.removedIDs(); len(got) != 0 {
						t.Fatalf("removed %v before DrainTimeout", got)
					}
					time.Sleep(time.Millisecond)
				}
				// Nothing may wait on the clock from here: the removal
				// follows the release, or the timeout, at once.
				synctest.Wait()
				took := time.Since(start)
				if got := e.rt.removedIDs(); !slices.Equal(got, []string{id}) {
					t.Fatalf("removed %v %s after the drain began, want [%s] then", got, took, id)
				}
				if err := <-removed; err != nil {
					t.Errorf("Remove: %v", err)
				}
				if want := map[bool]time.Duration{true: drainTimeout / 3, false: drainTimeout}[tc.release]; took != want {
					t.Errorf("removed %s after the drain began, want %s", took, want)
				}
				if !tc.release {
					slow.Release() // late; must not panic or resurrect anything
				}
			})
		})
	}
}

// A request that counts itself in on a replica as it closes backs off; if
// it was the one the drain saw, its backing off ends the drain.
func TestDrainEndsWithLastOfManyRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{DrainTimeout: time.Hour})
		e.start()
		e.deploy(spec("echo", "echo:1"))
		synctest.Wait()
		id := e.readyIDs("echo")[0]
		var leases []function.Lease
		for range 3 {
			l, err := e.c.Acquire(t.Context(), "echo")
			if err != nil {
				t.Fatal(err)
			}
			leases = append(leases, l)
		}
		go e.c.Remove(t.Context(), "echo")
		for i, l := range leases {
			time.Sleep(time.Second)
			synctest.Wait()
			if got := e.rt.removedIDs(); len(got) != 0 {
				t.Fatalf("removed %v with %d requests in flight", got, len(leases)-i)
			}
			l.Release()
		}
		synctest.Wait()
		if got := e.rt.removedIDs(); !slices.Equal(got, []string{id}) {
			t.Errorf("removed %v once the last request finished, want [%s]", got, id)
		}
	})
}

// Parking waits for in-flight requests as a drain does: the process stops
// as the last request finishes, or at DrainTimeout.
func TestParkWaitsForInFlight(t *testing.T) {
	const drainTimeout = 30 * time.Second
	for _, tc := range []struct {
		name    string
		release bool
	}{
		{"released", true},
		{"drain timeout", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, scale.Config{DrainTimeout: drainTimeout})
				e.start()
				e.deploy(spec("echo", "echo:1"))
				synctest.Wait()
				id := e.readyIDs("echo")[0]
				slow, err := e.c.Acquire(t.Context(), "echo")
				if err != nil {
					t.Fatal(err)
				}
				parked := func() []string {
					_, _, p, _ := e.rt.calls()
					return p
				}

				start := time.Now()
				if err := e.c.Scale(t.Context(), "echo", 0); err != nil {
					t.Fatal(err)
				}
				time.Sleep(drainTimeout / 3)
				synctest.Wait()
				if got := parked(); len(got) != 0 {
					t.Fatalf("parked %v with a request still in flight", got)
				}
				if tc.release {
					slow.Release()
				} else {
					time.Sleep(drainTimeout - time.Since(start) - time.Millisecond)
					synctest.Wait()
					if got := parked(); len(got) != 0 {
						t.Fatalf("parked %v before DrainTimeout", got)
					}
					time.Sleep(time.Millisecond)
				}
				synctest.Wait()
				took := time.Since(start)
				if got := parked(); !slices.Equal(got, []string{id}) {
					t.Fatalf("parked %v %s after Scale(0), want [%s] then", got, took, id)
				}
				if want := map[bool]time.Duration{true: drainTimeout / 3, false: drainTimeout}[tc.release]; took != want {
					t.Errorf("parked %s after Scale(0), want %s", took, want)
				}
				if !tc.release {
					slow.Release()
				}
			})
		})
	}
}
