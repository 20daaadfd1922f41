//go:build integration

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
)

// TestContainerdRestartRestartsNothing SIGKILLs the containerd under a
// daemon while a function with 2 replicas serves a steady load, keeps the
// load up while containerd is down, then starts containerd again. No
// request may fail, the same processes must serve throughout, nothing is
// restarted, and afterwards the daemon still manages the function: it
// scales, and a replica that crashes is restarted, which needs the wait
// on its exit to have been re-established.
func TestContainerdRestartRestartsNothing(t *testing.T) {
	e := setup(t)
	// A containerd of this test's own: the shared one serves other tests.
	dir, err := os.MkdirTemp("", "ember-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	ctrd, err := itest.StartContainerd(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ctrd.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
		os.RemoveAll(dir)
	})
	own := *e
	own.containerd = ctrd
	d := newDaemon(t, &own)

	const name = "steady"
	d.mustEmber("deploy", name, "--image", e.echo,
		"--label", function.LabelScaleMin+"=2", "--label", function.LabelScaleMax+"=5",
		"--label", function.LabelScaleDownWindow+"=10m")
	before := d.waitFor(name, "2 ready", 60*time.Second, exactlyReady(2))
	pids := replicaProcs(t, ctrd, d, before)

	l := startSteadyLoad(t, d.url("/function/"+name+"/load"), 4, 100_000)
	l.waitOK(t, 50, 10*time.Second)

	time.Sleep(time.Second)
	killed := time.Now()
	if err := ctrd.Kill9(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := ctrd.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	downFor := back.Sub(killed)
	time.Sleep(4 * time.Second)
	st := l.stop()

	t.Logf("steady load: %d requests, %d while containerd was down (%s), %d failed, slowest %s",
		st.requests, st.between(killed, back), downFor.Round(time.Millisecond), len(st.failures),
		st.slowest.Round(time.Millisecond))
	if len(st.failures) > 0 {
		t.Errorf("%d requests failed, first:\n  %s", len(st.failures), strings.Join(st.failures[:min(10, len(st.failures))], "\n  "))
	}
	if n := st.between(killed, back); n < 100 {
		t.Errorf("only %d requests while containerd was down, want a steady load through it", n)
	}

	// The daemon sees containerd again: once each, not per replica.
	waitLog(t, d, "containerd reachable again", 15*time.Second)
	for _, msg := range []string{"containerd unreachable", "containerd reachable again"} {
		if n := strings.Count(d.logs.String(), msg); n != 1 {
			t.Errorf("daemon logged %q %d times, want once", msg, n)
		}
	}
	after := d.describe(name)
	if b, a := replicaSet(before), replicaSet(after); !slices.Equal(b, a) || !allReady(after) {
		t.Errorf("replicas before %v, after %v (%+v): want the same, ready", b, a, after.Instances)
	}
	for _, r := range after.Instances {
		if r.Restarts != 0 || r.LastExit != "" {
			t.Errorf("replica %s: %d restarts, last exit %q; want none", r.ID, r.Restarts, r.LastExit)
		}
	}
	if got := replicaProcs(t, ctrd, d, after); !slices.Equal(got, pids) {
		t.Errorf("replica processes before %v, after %v: want the same", pids, got)
	} else {
		t.Logf("same replicas and processes after: %v", got)
	}

	// A process that exits while containerd is down is reported once it
	// is back, with the exit code its shim kept, and restarted.
	if err := ctrd.Kill9(); err != nil {
		t.Fatal(err)
	}
	diedDown := before.Instances[1]
	direct(diedDown.IP, "/_/exit?code=4") // the reply may be lost with the process
	time.Sleep(time.Second)
	if err := ctrd.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, d, name, diedDown.ID, 2, "exit code 4")

	// Still managed: it scales...
	d.mustEmber("scale", name, "--replicas", "3")
	d.waitFor(name, "3 ready", 60*time.Second, exactlyReady(3))
	// ...and a crash is seen and restarted.
	victim := before.Instances[0]
	direct(victim.IP, "/_/exit?code=3")
	waitRestarted(t, d, name, victim.ID, 3, "exit code 3")
}

// waitRestarted waits until replica id has been restarted once and the
// function has n ready replicas, and checks the exit it reports.
func waitRestarted(t *testing.T, d *daemon, name, id string, n int, exit string) {
	t.Helper()
	t0 := time.Now()
	f := d.waitFor(name, id+" restarted", 30*time.Second, func(f wire.FunctionStatus) bool {
		for _, r := range f.Instances {
			if r.ID == id {
				return r.Restarts == 1 && r.State == function.StateReady && exactlyReady(n)(f)
			}
		}
		return false
	})
	for _, r := range f.Instances {
		if r.ID == id && r.LastExit != exit {
			t.Errorf("restarted replica %s: last exit %q, want %q", id, r.LastExit, exit)
		}
	}
	t.Logf("replica %s restarted after %q, ready again in %s", id, exit, time.Since(t0).Round(time.Millisecond))
}

// replicaProcs returns each replica's host pid and its start time (from
// /proc/PID/stat), sorted: the same pid with the same start time is the
// same process.
func replicaProcs(t *testing.T, ctrd *itest.Containerd, d *daemon, f wire.FunctionStatus) []string {
	t.Helper()
	var out []string
	for i, pid := range replicaPIDs(t, ctrd, d, f) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command's closing parenthesis; starttime is
		// the 22nd field, the 20th of these.
		rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		out = append(out, fmt.Sprintf("%s:%d@%s", f.Instances[i].ID, pid, rest[19]))
	}
	slices.Sort(out)
	return out
}

func waitLog(t *testing.T, d *daemon, msg string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !strings.Contains(d.logs.String(), msg); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not log %q within %s", msg, timeout)
		}
	}
}

// steadyLoad runs workers sequential GET loops, paced and bounded in count.
type steadyLoad struct {
	stopping atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex // guards below
	requests int
	ok       int
	starts   []time.Time
	slowest  time.Duration
	failures []string
}

func startSteadyLoad(t *testing.T, url string, workers, maxRequests int) *steadyLoad {
	l := &steadyLoad{}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	var seq atomic.Int64
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Steady, not flat out: the host's cores are shared.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for n := seq.Add(1); n <= int64(maxRequests) && !l.stopping.Load(); n = seq.Add(1) {
				start := time.Now()
				err := getOK(hc, url+"?n="+strconv.FormatInt(n, 10))
				l.mu.Lock()
				l.requests++
				l.starts = append(l.starts, start)
				l.slowest = max(l.slowest, time.Since(start))
				if err != nil {
					l.failures = append(l.failures, fmt.Sprintf("%s %v", start.Format("15:04:05.000"), err))
				} else {
					l.ok++
				}
				l.mu.Unlock()
				<-tick.C
			}
		}()
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func getOK(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %q", resp.StatusCode, body)
	}
	return nil
}

func (l *steadyLoad) waitOK(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		ok := l.ok
		l.mu.Unlock()
		if ok >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests succeeded in %s", ok, n, timeout)
		}
	}
}

func (l *steadyLoad) stop() *steadyLoad {
	l.stopping.Store(true)
	l.wg.Wait()
	return l
}

// between counts the requests that started in [from, to].
func (l *steadyLoad) between(from, to time.Time) int {
	n := 0
	for _, s := range l.starts {
		if !s.Before(from) && !s.After(to) {
			n++
		}
	}
	return n
}
