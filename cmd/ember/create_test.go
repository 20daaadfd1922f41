//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
)

// TestKillDuringRollingUpdate SIGKILLs the daemon again and again while a
// rolling update's new replicas are starting, under steady load. The
// function must end with exactly its 2 replicas, all of the new version,
// and no request may fail except while the daemon itself is down. It
// must get there without waiting out a drain timeout: the daemon's is an
// hour, far beyond the guard on convergence.
func TestKillDuringRollingUpdate(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--drain-timeout", "1h")
	bounds := []string{"--label", function.LabelScaleMin + "=2", "--label", function.LabelScaleMax + "=2"}
	d.mustEmber(append([]string{"deploy", "echo", "--image", e.echo}, bounds...)...)
	d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	l := startDownLoad(t, d, "echo", 4)

	// The new replicas take 4s to write their lock: each kill lands while
	// they are being created or are starting.
	d.mustEmber(append([]string{"deploy", "echo", "--image", e.echo2, "--env", "LOCK_DELAY=4s", "--wait=false"}, bounds...)...)
	const kills = 4
	for i := range kills {
		time.Sleep(time.Duration(200+400*i) * time.Millisecond)
		f := d.describe("echo")
		t.Logf("kill %d: %d replicas: %s", i+1, len(f.Instances), states(f))
		l.down(func() {
			d.kill9()
			d.start()
		})
	}
	restarted := time.Now()
	f := d.waitFor("echo", "2 ready of v2", 60*time.Second, func(f wire.FunctionStatus) bool {
		return exactlyReady(2)(f) && allAnswer(f, "v2")
	})
	converged := time.Since(restarted)
	// And it stays so: nothing extra is started or left behind later.
	time.Sleep(3 * time.Second)
	if after := d.describe("echo"); !exactlyReady(2)(after) || !slices.Equal(replicaSet(f), replicaSet(after)) {
		t.Errorf("after converging: %s, want the same 2 ready (%s)", states(after), states(f))
	}
	st := l.stop()
	t.Logf("converged on 2 ready v2 replicas %s after the last restart; load: %d ok, %d failed while the daemon was down (%d connection refused), %d failed while it was up; versions %v",
		converged.Round(time.Millisecond), st.ok, st.downFailed, st.refused, len(st.upFailed), st.versions)
	if len(st.upFailed) > 0 {
		t.Errorf("%d requests failed while the daemon was up, first: %s", len(st.upFailed), strings.Join(st.upFailed[:min(5, len(st.upFailed))], "; "))
	}
	if st.ok == 0 || st.versions["v1"] == 0 || st.versions["v2"] == 0 {
		t.Errorf("load: %d ok, versions %v; want both versions served", st.ok, st.versions)
	}
	d.mustEmber("remove", "echo")
	waitGoneNamed(t, d, "echo", 60*time.Second)
	d.assertNoLeftovers()
}

// TestCreateFailureBacksOff deploys a function whose container cannot be
// created (its entrypoint does not exist) with min=3: over 30s the daemon
// tries a few times, not hundreds, and describe says why.
func TestCreateFailureBacksOff(t *testing.T) {
	e := setup(t)
	img, err := itest.BuildImage(t.Context(), itest.ImageOptions{Entrypoint: []string{"/no/such/entrypoint"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := e.registry.Ref("noentry:v1")
	if err := itest.Push(t.Context(), img, ref); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, e)
	start := time.Now()
	_, stderr, err := d.ember(nil, "deploy", "bad", "--image", ref, "--label", function.LabelScaleMin+"=3", "--timeout", "20s")
	t.Logf("deploy returned after %s: %v: %s", time.Since(start).Round(time.Millisecond), err, strings.TrimSpace(stderr))
	if err == nil || !strings.Contains(stderr, "create failed") {
		t.Errorf("deploy: err=%v stderr=%q, want the create failure", err, stderr)
	}
	time.Sleep(30*time.Second - time.Since(start))
	elapsed := time.Since(start)
	failures := metric(t, d, `ember_replica_create_failures_total{function_name="bad.openfaas-fn"}`)
	logged := len(regexp.MustCompile(`msg="create replica failed" component=scale fn=bad `).FindAllString(d.logs.String(), -1))
	f := d.describe("bad")
	out := d.mustEmber("describe", "bad")
	t.Logf("in %s: %d create attempts (metric), %d logged; %d replicas; last error: %s",
		elapsed.Round(time.Millisecond), failures, logged, len(f.Instances), f.LastError)
	if failures < 3 || failures > 10 {
		t.Errorf("%d failed creates in %s, want a handful (3-10)", failures, elapsed)
	}
	if logged != failures {
		t.Errorf("%d failures logged, metric says %d", logged, failures)
	}
	if len(f.Instances) != 0 || !strings.Contains(f.LastError, "create failed") || !strings.Contains(f.LastError, "no such file") {
		t.Errorf("describe: instances %+v, lastError %q; want none and the reason", f.Instances, f.LastError)
	}
	if !strings.Contains(out, "Last error: create failed") {
		t.Errorf("describe output lacks the reason:\n%s", out)
	}
	d.mustEmber("remove", "bad")
	waitGoneNamed(t, d, "bad", 30*time.Second)
	d.assertNoLeftovers()
}

// metric reads one counter from the daemon's /metrics.
func metric(t *testing.T, d *daemon, series string) int {
	t.Helper()
	resp, err := http.Get(d.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return int(n)
		}
	}
	return 0
}

func states(f wire.FunctionStatus) string {
	var s []string
	for _, r := range f.Instances {
		s = append(s, fmt.Sprintf("%s=%s/%s", r.ID, r.State, r.Hash[:min(6, len(r.Hash))]))
	}
	return strings.Join(s, " ")
}

// allAnswer reports whether every replica answers / with version want.
func allAnswer(f wire.FunctionStatus, want string) bool {
	for _, r := range f.Instances {
		body, code, err := direct(r.IP, "/")
		var er itest.EchoResponse
		json.Unmarshal([]byte(body), &er)
		if err != nil || code != 200 || er.Version != want {
			return false
		}
	}
	return len(f.Instances) > 0
}

func waitGoneNamed(t *testing.T, d *daemon, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if len(d.leftovers()) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s: replicas left %s after removal", name, timeout)
}

// downLoad is a request loop that tells failures while the daemon is down
// (killed, not yet serving again) from failures while it serves.
type downLoad struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	classify func() // sorts the failures once the loop has stopped

	mu         sync.Mutex // guards below
	windows    [][2]time.Time
	ok         int
	refused    int
	downFailed int
	upFailed   []string
	versions   map[string]int
}

type failure struct {
	from, to time.Time
	msg      string
	refused  bool
}

func startDownLoad(t *testing.T, d *daemon, fn string, workers int) *downLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &downLoad{cancel: cancel, versions: map[string]int{}}
	var fails []failure
	var fmu sync.Mutex
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for i := 0; ctx.Err() == nil; i++ {
				from := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "GET", d.url(fmt.Sprintf("/function/%s/?i=%d", fn, i)), nil)
				resp, err := hc.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if ctx.Err() != nil {
					return
				}
				var er itest.EchoResponse
				if err == nil && (resp.StatusCode != 200 || json.Unmarshal(body, &er) != nil) {
					err = fmt.Errorf("%d %q", resp.StatusCode, body)
				}
				if err != nil {
					fmu.Lock()
					fails = append(fails, failure{from: from, to: time.Now(), msg: time.Now().Format("15:04:05.000 ") + err.Error(),
						refused: strings.Contains(err.Error(), "connection refused")})
					fmu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				l.mu.Lock()
				l.ok++
				l.versions[er.Version]++
				l.mu.Unlock()
			}
		}()
	}
	l.classify = func() {
		fmu.Lock()
		defer fmu.Unlock()
		for _, f := range fails {
			if l.overlapsDown(f.from, f.to) {
				l.downFailed++
				if f.refused {
					l.refused++
				}
			} else {
				l.upFailed = append(l.upFailed, f.msg)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		n := l.ok
		l.mu.Unlock()
		if n >= 20 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return l
}

// down runs kill (a SIGKILL and a restart) as a window in which requests
// may fail.
func (l *downLoad) down(kill func()) {
	from := time.Now()
	kill()
	l.mu.Lock()
	l.windows = append(l.windows, [2]time.Time{from, time.Now()})
	l.mu.Unlock()
}

func (l *downLoad) overlapsDown(from, to time.Time) bool {
	for _, w := range l.windows {
		if !to.Before(w[0]) && !from.After(w[1]) {
			return true
		}
	}
	return false
}

func (l *downLoad) stop() *downLoad {
	l.cancel()
	l.wg.Wait()
	l.classify()
	return l
}
