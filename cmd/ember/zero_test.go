//go:build integration

package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// TestAutoscale puts a concurrent load of slow requests on a function with
// a small capacity target: it scales up while the load lasts and back down
// after. The CPU brake is off: the test host is shared, and other work
// saturating it would rightly hold the scale-up (TestAutoscaleCPUBrake in
// package scale covers the brake).
func TestAutoscale(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--autoscale-cpu-brake", "0")
	d.mustEmber("deploy", "auto", "--image", e.echo,
		"--label", function.LabelScaleType+"="+function.ScaleCapacity,
		"--label", function.LabelScaleTarget+"=2",
		"--label", function.LabelScaleMax+"=4",
		"--label", function.LabelScaleDownWindow+"=3s")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, code, err := get(d.url("/function/auto/_/sleep?ms=200")); err != nil || code != 200 {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		}()
	}
	up := d.waitFor("auto", "scaled up to 4", 30*time.Second, exactlyReady(4))
	t.Logf("under load: %d replicas ready", countState(up, function.StateReady))
	close(stop)
	wg.Wait()
	if failures > 0 {
		t.Errorf("%d requests failed during scale-up", failures)
	}
	start := time.Now()
	d.waitFor("auto", "scaled down to 1", 30*time.Second, exactlyReady(1))
	t.Logf("scaled down %s after the load ended", time.Since(start).Round(100*time.Millisecond))
}

// TestAutoscaleCE is the OpenFaaS certifier's throughput test on ember's
// defaults: with only min 1 and max 2, about 10 requests a second of 1 ms
// calls take the function from one replica to two, and it is back at one
// within the certifier's 60s cool-down after the load ends.
func TestAutoscaleCE(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "ce", "--image", e.echo,
		"--label", function.LabelScaleMin+"=1",
		"--label", function.LabelScaleMax+"=2")
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		failures := 0
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- failures
				return
			case <-tick.C:
			}
			if _, code, err := get(d.url("/function/ce/_/sleep?ms=1")); err != nil || code != 200 {
				failures++
			}
		}
	}()
	start := time.Now()
	d.waitFor("ce", "desired 2", 30*time.Second, func(f wire.FunctionStatus) bool { return f.Replicas == 2 })
	t.Logf("desired 2 after %s of 10 rps", time.Since(start).Round(100*time.Millisecond))
	up := d.waitFor("ce", "2 ready", 30*time.Second, exactlyReady(2))
	t.Logf("2 ready after %s: %d instances", time.Since(start).Round(100*time.Millisecond), len(up.Instances))
	close(stop)
	if n := <-done; n > 0 {
		t.Errorf("%d requests failed", n)
	}
	ended := time.Now()
	d.waitFor("ce", "back at 1 within the certifier's 60s", 60*time.Second, func(f wire.FunctionStatus) bool { return f.Replicas == 1 })
	t.Logf("desired back at 1 %s after the load ended", time.Since(ended).Round(100*time.Millisecond))
	d.waitFor("ce", "1 ready", 30*time.Second, exactlyReady(1))
	t.Logf("1 replica %s after the load ended", time.Since(ended).Round(100*time.Millisecond))
}

// TestScaleToZero: idle, the function is paused; idle longer, parked; each
// time the next request succeeds and wakes it.
func TestScaleToZero(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "idle", "--image", e.echo,
		"--label", function.LabelScaleZero+"=true",
		"--label", function.LabelScaleZeroDuration+"=1s",
		"--label", function.LabelDeleteAfter+"=2s")
	first := d.describe("idle").Instances[0]

	paused := d.waitFor("idle", "paused", 15*time.Second, func(f wire.FunctionStatus) bool {
		return len(f.Instances) == 1 && f.Instances[0].State == function.StatePaused
	})
	if paused.AvailableReplicas != 0 {
		t.Errorf("paused function shows %d available replicas", paused.AvailableReplicas)
	}
	r, _, err := d.call("GET", "/function/idle/from-paused", "")
	if err != nil {
		t.Fatalf("request to a paused function: %v", err)
	}
	if r.Path != "/from-paused" {
		t.Errorf("got %+v", r)
	}
	f := d.describe("idle")
	if f.Instances[0].ID != first.ID || f.Instances[0].State != function.StateReady {
		t.Errorf("after wake from paused: %+v, want %s ready", f.Instances, first.ID)
	}

	d.waitFor("idle", "zero", 20*time.Second, func(f wire.FunctionStatus) bool {
		return len(f.Instances) == 1 && f.Instances[0].State == function.StateZero
	})
	list := d.mustEmber("list")
	t.Logf("list at zero:\n%s", list)
	if got := listColumn(list, "idle", "STATE"); got != "zero" {
		t.Errorf("list shows idle at zero as %q, want zero:\n%s", got, list)
	}
	r, _, err = d.call("POST", "/function/idle/from-zero", "body")
	if err != nil {
		t.Fatalf("request to a function at zero: %v", err)
	}
	if r.Path != "/from-zero" || r.Body != "body" {
		t.Errorf("got %+v", r)
	}
	f = d.describe("idle")
	if len(f.Instances) != 1 || f.Instances[0].ID != first.ID || f.Instances[0].IP != first.IP {
		t.Errorf("after wake from zero: %+v, want the same replica (container, IP) started again", f.Instances)
	}
	d.mustEmber("remove", "idle")
	d.assertNoLeftovers()
}

// TestWakeFromZeroConcurrent sends 50 concurrent requests to a function at
// zero: all succeed, and one replica is started for them.
func TestWakeFromZeroConcurrent(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "burst", "--image", e.echo,
		"--label", function.LabelScaleTarget+"=100")
	d.mustEmber("scale", "burst", "--replicas", "0")
	d.waitFor("burst", "zero", 15*time.Second, func(f wire.FunctionStatus) bool {
		return len(f.Instances) == 1 && f.Instances[0].State == function.StateZero
	})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := d.call("GET", fmt.Sprintf("/function/burst/%d", i), ""); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	f := d.describe("burst")
	if len(f.Instances) != 1 || f.Instances[0].State != function.StateReady {
		t.Errorf("replicas after the burst: %+v, want exactly one, ready", f.Instances)
	}
}
