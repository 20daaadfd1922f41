package scale_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

var errRunc = errors.New(`runc create failed: exec: "/nope": no such file or directory`)

func minSpec(name, image string, lo int) function.Spec {
	s := spec(name, image)
	s.Labels = map[string]string{function.LabelScaleMin: fmt.Sprint(lo)}
	return s
}

// gaps returns the delays between consecutive attempt times, from start.
func gaps(start time.Time, at []time.Time) []time.Duration {
	var out []time.Duration
	prev := start
	for _, t := range at {
		out = append(out, t.Sub(prev))
		prev = t
	}
	return out
}

// A function whose creations always fail tries a handful of times a minute
// however many replicas it wants: its missing replicas share one backoff,
// and the reason is the function's, not a pseudo-replica's.
func TestCreateFailureBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.setFailCreate(errRunc)
		e.start()
		start := time.Now()
		e.deploy(minSpec("bad", "bad:1", 3))
		time.Sleep(60 * time.Second)
		synctest.Wait()

		// Two at once (the function's share of slots), one failure; then
		// one at a time at 1s, 2s, 4s, 8s, 16s.
		want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
		got := gaps(start, e.rt.createAttempts())
		t.Logf("%d creates in 60s, gaps %v", len(got), got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("create attempts (-want +got):\n%s", diff)
		}
		st := e.status("bad")
		if len(st.Replicas) != 0 || st.Desired != 3 {
			t.Errorf("status = %+v, want 3 desired and no replica", st)
		}
		if !strings.Contains(st.LastError, "create failed") || !strings.Contains(st.LastError, "no such file") {
			t.Errorf("LastError = %q, want the create failure", st.LastError)
		}
		begin := time.Now()
		err := e.c.WaitReady(ctxTimeout(t, time.Minute), "bad")
		if err == nil || !strings.Contains(err.Error(), "create failed") || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("WaitReady = %v, want the create failure", err)
		}
		if d := time.Since(begin); d != 0 {
			t.Errorf("WaitReady took %s on a function that never created, want at once", d)
		}
	})
}

// At most MaxCreates creations run host-wide and two per function; the
// rest queue and all are created in the end.
func TestCreateConcurrencyBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{MaxCreates: 3})
		gate := make(chan struct{})
		e.rt.createGate = gate
		e.start()

		e.deploy(minSpec("a", "a:1", 10))
		synctest.Wait()
		if now, _ := e.rt.creating(); now != 2 {
			t.Errorf("one function of 10: %d creates in flight, want 2", now)
		}
		e.deploy(minSpec("b", "b:1", 10))
		e.deploy(minSpec("c", "c:1", 10))
		synctest.Wait()
		if now, _ := e.rt.creating(); now != 3 {
			t.Errorf("three functions: %d creates in flight, want MaxCreates (3)", now)
		}
		for range 27 {
			gate <- struct{}{}
			synctest.Wait()
			if now, _ := e.rt.creating(); now > 3 {
				t.Fatalf("%d creates in flight, want at most 3", now)
			}
		}
		gate <- struct{}{}
		gate <- struct{}{}
		gate <- struct{}{}
		synctest.Wait()
		for _, name := range []string{"a", "b", "c"} {
			if got := len(e.readyIDs(name)); got != 10 {
				t.Errorf("%s: %d ready, want 10", name, got)
			}
		}
		if _, most := e.rt.creating(); most != 3 {
			t.Errorf("at most %d creates in flight, want 3", most)
		}
	})
}

// A success does not forget earlier failures at once, but a replica
// created since that stays ready for BackoffReset does.
func TestCreateBackoffResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.setFailCreate(errRunc)
		e.start()
		e.deploy(minSpec("fn", "fn:1", 1))
		time.Sleep(10 * time.Second) // failures at 0, 1s, 3s, 7s: next at 15s
		synctest.Wait()
		e.rt.setFailCreate(nil)
		eventually(t, "a replica after the backoff", func() bool { return len(e.readyIDs("fn")) == 1 })
		if st := e.status("fn"); st.LastError != "" {
			t.Errorf("LastError = %q after a success, want none", st.LastError)
		}

		// Fails again soon after: the backoff goes on doubling.
		next := func(n int) time.Duration {
			t.Helper()
			e.rt.setFailCreate(errRunc)
			before := len(e.rt.createAttempts())
			// A raised min, not a scale: the autoscaler would undo that.
			if err := e.c.SetBounds(t.Context(), "fn", &n, nil); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			failed := time.Now()
			e.rt.setFailCreate(nil)
			eventually(t, "the retry", func() bool { return len(e.rt.createAttempts()) == before+2 })
			if got := len(e.readyIDs("fn")); got != n {
				t.Errorf("%d ready after the retry, want %d", got, n)
			}
			return e.rt.createAttempts()[before+1].Sub(failed)
		}
		if got, want := next(2), 16*time.Second; got != want {
			t.Errorf("retry right after a success came after %s, want %s", got, want)
		}
		time.Sleep(10 * time.Minute)
		if got, want := next(3), time.Second; got != want {
			t.Errorf("retry after %s ready came after %s, want %s", 10*time.Minute, got, want)
		}
	})
}

// A new spec may create where the old could not: it is tried at once.
func TestCreateSpecChangeRetriesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.rt.setFailCreate(errRunc)
		e.start()
		e.deploy(minSpec("fn", "fn:1", 1))
		time.Sleep(40 * time.Second) // next try at 63s
		synctest.Wait()
		e.rt.setFailCreate(nil)
		before := len(e.rt.createAttempts())
		at := time.Now()
		e.deploy(minSpec("fn", "fn:2", 1))
		synctest.Wait()
		got := e.rt.createAttempts()
		if len(got) != before+1 || !got[before].Equal(at) {
			t.Errorf("after the new spec: attempts %v, want one at once", gaps(at, got[before:]))
		}
		if r := e.readyIDs("fn"); len(r) != 1 {
			t.Errorf("ready = %v, want the new spec's replica", r)
		}
		if st := e.status("fn"); st.LastError != "" {
			t.Errorf("LastError = %q, want none", st.LastError)
		}
	})
}

// subnetFullErr is the network's error for an exhausted subnet, as the
// controller recognises it.
type subnetFullErr struct{ prefix netip.Prefix }

func (e subnetFullErr) Error() string {
	return "no IP addresses available in range set: 10.0.0.1-10.0.0.14"
}
func (e subnetFullErr) FullSubnet() netip.Prefix { return e.prefix }

func TestCreateSubnetFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(minSpec("fn", "fn:1", 2))
		synctest.Wait()
		e.rt.setFailCreate(fmt.Errorf("network: attach: %w", subnetFullErr{netip.MustParsePrefix("10.0.0.0/28")}))
		before := len(e.rt.createAttempts())
		if err := e.c.Scale(t.Context(), "fn", 30); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		// 2 at once, then at 1s, 3s, 7s, 15s.
		if n := len(e.rt.createAttempts()) - before; n != 6 {
			t.Errorf("%d creates in 20s on a full subnet, want 6", n)
		}
		want := "create failed: subnet 10.0.0.0/28 has no free address: 2 replicas running; use a larger --subnet"
		if st := e.status("fn"); st.LastError != want || st.Ready != 2 {
			t.Errorf("status: %d ready, LastError %q; want 2 ready and %q", st.Ready, st.LastError, want)
		}
	})
}
