package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// flakySweep fails its first n passes, each with two errors joined, as a
// sweep that could not free two things reports it.
type flakySweep struct {
	mu    sync.Mutex // guards below
	fails int
	calls []time.Time
	// during runs inside a pass, outside mu.
	during func()
}

func (s *flakySweep) sweep(context.Context) error {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	fail := s.fails > 0
	if fail {
		s.fails--
	}
	during := s.during
	s.mu.Unlock()
	if during != nil {
		during()
	}
	if fail {
		return errors.Join(errors.New("cni del a-1: injected"), errors.New("cni del a-2: injected"))
	}
	return nil
}

func (s *flakySweep) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.calls); i++ {
		out = append(out, s.calls[i].Sub(s.calls[i-1]))
	}
	return out
}

// metric reads a gauge's or counter's value from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func startJanitor(t *testing.T, s *flakySweep) (*janitor, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	j := newJanitor(s.sweep, time.Second, 8*time.Second, slog.New(slog.DiscardHandler), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		j.run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return j, reg
}

func TestJanitorRetriesWithBackoffUntilClean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &flakySweep{fails: 5}
		j, reg := startJanitor(t, s)
		j.kick()
		synctest.Wait()
		st := j.status()
		if st.Pending != 2 || st.Failures != 1 || st.LastError == "" {
			t.Errorf("after a failed pass: %+v, want 2 pending, 1 failure and the error", st)
		}
		if got, want := time.Until(st.RetryAt), time.Second; got != want {
			t.Errorf("retry in %s, want %s", got, want)
		}
		if got := metric(t, reg, "ember_cleanup_pending"); got != 2 {
			t.Errorf("ember_cleanup_pending = %v, want 2", got)
		}

		time.Sleep(time.Minute)
		synctest.Wait()
		want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
		if got := s.gaps(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("passes %v apart, want %v (doubling from 1s, at most 8s)", got, want)
		}
		st = j.status()
		if st.Pending != 0 || st.LastError != "" || !st.RetryAt.IsZero() || st.Failures != 5 {
			t.Errorf("after the passes: %+v, want nothing pending and 5 failures", st)
		}
		if got := metric(t, reg, "ember_cleanup_failures_total"); got != 5 {
			t.Errorf("ember_cleanup_failures_total = %v, want 5", got)
		}
		if got := metric(t, reg, "ember_cleanup_pending"); got != 0 {
			t.Errorf("ember_cleanup_pending = %v, want 0", got)
		}

		// Clean again: the next failure starts over at the shortest delay.
		s.mu.Lock()
		s.fails = 1
		s.mu.Unlock()
		j.kick()
		synctest.Wait()
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := s.gaps(); got[len(got)-1] != time.Second {
			t.Errorf("retry of a new failure after %s, want 1s", got[len(got)-1])
		}
	})
}

func TestJanitorKickDuringPassRunsAnother(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &flakySweep{}
		j, _ := startJanitor(t, s)
		var once sync.Once
		// A replica leaves while the first pass runs: the pass may have
		// looked at it while it was live, so another must follow.
		s.during = func() { once.Do(func() { j.kick(); j.kick(); j.kick() }) }
		j.kick()
		synctest.Wait()
		s.mu.Lock()
		n := len(s.calls)
		s.mu.Unlock()
		if n != 2 {
			t.Errorf("%d passes, want 2: kicks during a pass coalesce into one more", n)
		}
	})
}

func TestJanitorIdleWithoutKick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &flakySweep{}
		startJanitor(t, s)
		time.Sleep(time.Hour)
		synctest.Wait()
		if len(s.calls) != 0 {
			t.Errorf("%d passes without a kick, want none", len(s.calls))
		}
	})
}
