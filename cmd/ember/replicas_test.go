//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// loadLoop keeps `workers` sequential request loops running against a
// function, recording every failure and which versions answered.
type loadLoop struct {
	ok       atomic.Int64
	mu       sync.Mutex // guards below
	failures []string
	// started holds each failure's start time, by index in failures.
	started  []time.Time
	versions map[string]int
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startLoad(t *testing.T, d *daemon, fn string, workers int) *loadLoop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadLoop{versions: map[string]int{}, cancel: cancel}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 30 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(ctx, "GET", d.url(fmt.Sprintf("/function/%s/load?i=%d", fn, i)), nil)
				t0 := time.Now()
				resp, err := hc.Do(req)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					l.fail(t0, err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if ctx.Err() != nil {
					return
				}
				var er struct{ Version string }
				if err != nil || resp.StatusCode != 200 || json.Unmarshal(body, &er) != nil {
					l.fail(t0, fmt.Sprintf("%d %q %v", resp.StatusCode, body, err))
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.versions[er.Version]++
				l.mu.Unlock()
			}
		}()
	}
	// Let the loop reach a steady state before the test acts.
	deadline := time.Now().Add(10 * time.Second)
	for l.ok.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return l
}

func (l *loadLoop) fail(started time.Time, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+msg)
	l.started = append(l.started, started)
}

// forgiveCut drops the failures of requests that were already on their way
// to a replica when it was killed at killed: the app may have received
// them, so ember must not send them again (they could be what killed it),
// and the caller gets 502. There can be at most one per worker. The
// signal takes a moment to land after the kill call returns, so requests
// started up to killGrace later count too; every other request must
// succeed.
const killGrace = 500 * time.Millisecond

func (l *loadLoop) forgiveCut(t *testing.T, killed time.Time, workers int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var keep []string
	var keepStarted []time.Time
	cut := 0
	for i, f := range l.failures {
		if l.started[i].Before(killed.Add(killGrace)) && strings.Contains(f, " 502 ") {
			cut++
			continue
		}
		keep, keepStarted = append(keep, f), append(keepStarted, l.started[i])
	}
	t.Logf("load: %d requests in flight to the killed replica were cut", cut)
	if cut > workers {
		t.Errorf("%d requests cut by the kill, want at most one per worker (%d)", cut, workers)
	}
	l.failures, l.started = keep, keepStarted
}

// stop ends the loop and fails the test if any request failed.
func (l *loadLoop) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d requests succeeded, %d failed, versions %v", l.ok.Load(), len(l.failures), l.versions)
	if len(l.failures) > 0 {
		t.Errorf("%d requests failed, first: %s", len(l.failures), strings.Join(l.failures[:min(5, len(l.failures))], "; "))
	}
	if l.ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}

func (d *daemon) describe(name string) wire.FunctionStatus {
	d.t.Helper()
	var f wire.FunctionStatus
	if err := json.Unmarshal([]byte(d.mustEmber("describe", name, "-o", "json")), &f); err != nil {
		d.t.Fatal(err)
	}
	return f
}

// waitFor polls describe until cond holds.
func (d *daemon) waitFor(name, what string, timeout time.Duration, cond func(wire.FunctionStatus) bool) wire.FunctionStatus {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := d.describe(name)
		if cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not %s after %s: %+v", name, what, timeout, f.Instances)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countState(f wire.FunctionStatus, st function.State) int {
	n := 0
	for _, r := range f.Instances {
		if r.State == st {
			n++
		}
	}
	return n
}

func exactlyReady(n int) func(wire.FunctionStatus) bool {
	return func(f wire.FunctionStatus) bool {
		return len(f.Instances) == n && countState(f, function.StateReady) == n
	}
}

// TestScaleUnderLoad scales 1→5→1 under a steady request loop, with a
// slow request in flight on every replica while it scales down: no request
// fails, and the slow ones finish.
func TestScaleUnderLoad(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "echo", "--image", e.echo)
	l := startLoad(t, d, "echo", 4)
	d.mustEmber("scale", "echo", "--replicas", "5")
	d.waitFor("echo", "5 ready", 60*time.Second, exactlyReady(5))

	var slow sync.WaitGroup
	slowErrs := make(chan error, 5)
	for range 5 {
		slow.Add(1)
		go func() {
			defer slow.Done()
			body, code, err := get(d.url("/function/echo/_/sleep?ms=1500"))
			if err == nil && (code != 200 || body != "slept") {
				err = fmt.Errorf("%d %q", code, body)
			}
			if err != nil {
				slowErrs <- err
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // the slow requests are in flight
	d.mustEmber("scale", "echo", "--replicas", "1")
	d.waitFor("echo", "back to 1", 60*time.Second, exactlyReady(1))
	slow.Wait()
	close(slowErrs)
	for err := range slowErrs {
		t.Errorf("in-flight request cut by scale-down: %v", err)
	}
	l.stop(t)
}

// TestRoundRobin sends 300 sequential requests to 3 replicas: each gets
// 100 ± 2.
func TestRoundRobin(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "echo", "--image", e.echo, "--label", function.LabelScaleMin+"=3")
	d.waitFor("echo", "3 ready", 60*time.Second, exactlyReady(3))
	counts := map[string]int{}
	for range 300 {
		r, _, err := d.call("GET", "/function/echo/", "")
		if err != nil {
			t.Fatal(err)
		}
		counts[r.Hostname+fmt.Sprint(r.PID)]++
	}
	t.Logf("requests per replica: %v", counts)
	if len(counts) != 3 {
		t.Fatalf("%d replicas answered, want 3: %v", len(counts), counts)
	}
	for k, n := range counts {
		if n < 98 || n > 102 {
			t.Errorf("replica %s got %d of 300 requests, want 100 ± 2", k, n)
		}
	}
}

// TestUnhealthyReplaced removes one replica's lock under load: it leaves
// rotation at once and is replaced (successor ready first); nothing fails.
func TestUnhealthyReplaced(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "echo", "--image", e.echo, "--label", function.LabelScaleMin+"=2")
	before := d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	l := startLoad(t, d, "echo", 4)
	victim := before.Instances[0]
	// The test reaches the replica on the bridge it created.
	if _, code, err := get("http://" + victim.IP + ":8080/_/rmlock"); err != nil || code != 200 {
		t.Fatalf("rmlock: %d %v", code, err)
	}
	d.waitFor("echo", "replaced", 30*time.Second, func(f wire.FunctionStatus) bool {
		for _, r := range f.Instances {
			if r.ID == victim.ID {
				return false
			}
		}
		return exactlyReady(2)(f)
	})
	l.stop(t)
}

// TestLockComesBack removes a lock and restores it before the replica is
// replaced: it returns to rotation.
func TestLockComesBack(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--health-interval", "2s")
	d.mustEmber("deploy", "echo", "--image", e.echo)
	f := d.waitFor("echo", "ready", 60*time.Second, exactlyReady(1))
	id, ip := f.Instances[0].ID, f.Instances[0].IP
	get("http://" + ip + ":8080/_/rmlock")
	d.waitFor("echo", "unhealthy", 10*time.Second, func(f wire.FunctionStatus) bool {
		return countState(f, function.StateUnhealthy) == 1
	})
	get("http://" + ip + ":8080/_/mklock")
	f = d.waitFor("echo", "ready again", 10*time.Second, exactlyReady(1))
	if f.Instances[0].ID != id || f.Instances[0].Restarts != 0 {
		t.Errorf("replica %s (restarts %d) is back, want %s itself, never restarted", f.Instances[0].ID, f.Instances[0].Restarts, id)
	}
}

// TestKilledReplicaRestarts kills one replica's process under load: the
// other keeps serving, the killed one restarts, nothing fails.
func TestKilledReplicaRestarts(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "echo", "--image", e.echo, "--label", function.LabelScaleMin+"=2")
	before := d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	l := startLoad(t, d, "echo", 4)
	victim := before.Instances[0]
	killTask(t, e, d.ns, victim.ID, syscall.SIGKILL)
	killed := time.Now()
	f := d.waitFor("echo", "restarted", 30*time.Second, func(f wire.FunctionStatus) bool {
		for _, r := range f.Instances {
			if r.ID == victim.ID && r.Restarts == 1 && r.State == function.StateReady {
				return true
			}
		}
		return false
	})
	l.forgiveCut(t, killed, 4)
	l.stop(t)
	for _, r := range f.Instances {
		if r.ID == victim.ID && !strings.Contains(r.LastExit, "137") {
			t.Errorf("last exit %q, want the SIGKILL's code 137", r.LastExit)
		}
	}
}

// TestOOMKillReported runs a function over its memory limit.
func TestOOMKillReported(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "echo", "--image", e.echo, "--memory-limit", "32Mi")
	get(d.url("/function/echo/_/alloc?mb=100"))
	d.waitFor("echo", "reported OOM-killed", 30*time.Second, func(f wire.FunctionStatus) bool {
		return len(f.Instances) == 1 && strings.Contains(f.Instances[0].LastExit, "OOM")
	})
}

// TestRollingUpdate deploys a new image under load: every response comes
// from the old or the new version, none fails, and only the new one is
// left.
func TestRollingUpdate(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "echo", "--image", e.echo, "--label", function.LabelScaleMin+"=2")
	d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	l := startLoad(t, d, "echo", 4)
	d.mustEmber("deploy", "echo", "--image", e.echo2, "--label", function.LabelScaleMin+"=2")
	// deploy returns once the rollout is done: from then on every request
	// gets the new version.
	for i := range 50 {
		if r, _, err := d.call("GET", "/function/echo/", ""); err != nil || r.Version != "v2" {
			t.Fatalf("request %d after deploy returned: %+v %v, want v2", i, r, err)
		}
	}
	d.waitFor("echo", "updated", 60*time.Second, exactlyReady(2))
	time.Sleep(300 * time.Millisecond)
	l.stop(t)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.versions["v1"] == 0 || l.versions["v2"] == 0 || len(l.versions) != 2 {
		t.Errorf("versions seen %v, want v1 and v2 only", l.versions)
	}
	r, _, err := d.call("GET", "/function/echo/", "")
	if err != nil || r.Version != "v2" {
		t.Errorf("after the update: %+v %v", r, err)
	}

	// An update that never becomes ready: the old version keeps serving
	// and deploy says why.
	t0 := time.Now()
	_, stderr, err := d.ember(nil, "deploy", "echo", "--image", e.echo, "--env", "CRASH=4", "--label", function.LabelScaleMin+"=2", "--timeout", "10s")
	t.Logf("broken update reported after %s: %s", time.Since(t0).Round(time.Millisecond), stderr)
	if err == nil || !strings.Contains(stderr, "exit code 4") {
		t.Errorf("broken update: err=%v stderr=%q", err, stderr)
	}
	for range 20 {
		if r, _, err := d.call("GET", "/function/echo/", ""); err != nil || r.Version != "v2" {
			t.Fatalf("during a broken update: %+v %v", r, err)
		}
	}
}

func get(url string) (string, int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

func killTask(t *testing.T, e *env, ns, id string, sig syscall.Signal) {
	t.Helper()
	ctx := context.Background()
	cl, err := e.containerd.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	nctx := nsCtx(ctx, ns)
	c, err := cl.LoadContainer(nctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(nctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(nctx, sig); err != nil {
		t.Fatal(err)
	}
}
