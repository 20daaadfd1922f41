package scale_test

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/scale"
)

func TestInvocationTotalsOutliveDaemonAndFunction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		// What an earlier daemon flushed.
		e.counts.totals = map[string]uint64{"fn": 100}
		e.start()
		e.deploy(spec("fn", "fn:1"))
		eventually(t, "a ready replica", func() bool { return len(e.readyIDs("fn")) == 1 })
		for range 30 {
			e.acquire("fn")
		}
		if got := e.status("fn").Invoked; got != 130 {
			t.Errorf("Invoked = %d, want 130 (100 stored + 30)", got)
		}
		if got := e.counts.get("fn"); got != 100 {
			t.Errorf("stored %d before the flush, want 100: no write per request", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := e.counts.get("fn"); got != 130 {
			t.Errorf("stored %d after the flush interval, want 130", got)
		}

		// Removed and deployed again, as faas-cli deploy --replace does.
		if err := e.c.Remove(t.Context(), "fn"); err != nil {
			t.Fatal(err)
		}
		e.deploy(spec("fn", "fn:1"))
		eventually(t, "a ready replica", func() bool { return len(e.readyIDs("fn")) == 1 })
		e.acquire("fn")
		if got := e.status("fn").Invoked; got != 131 {
			t.Errorf("Invoked after a remove and a deploy = %d, want 131", got)
		}
	})
}

func TestInvocationRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(spec("fn", "fn:1"))
		eventually(t, "a ready replica", func() bool { return len(e.readyIDs("fn")) == 1 })
		if got := e.status("fn").Rate; got != 0 {
			t.Errorf("Rate before any request = %v, want 0", got)
		}
		// 3 requests a second for two minutes: the rate is over the last
		// minute, so the first minute's do not dilute it.
		for range 120 {
			for range 3 {
				e.acquire("fn")
			}
			time.Sleep(time.Second)
		}
		if got := e.status("fn").Rate; math.Abs(got-3) > 0.2 {
			t.Errorf("Rate at 3 requests a second = %.2f, want 3", got)
		}
		// Then silence: a minute later the rate is zero.
		time.Sleep(quietWindow)
		synctest.Wait()
		if got := e.status("fn").Rate; got != 0 {
			t.Errorf("Rate a quiet minute later = %.2f, want 0", got)
		}
	})
}

// quietWindow is the rate's window and one flush interval.
const quietWindow = scale.RateWindow + 10*time.Second
