//go:build integration

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/emberfaas/ember/function"
)

// TestTinyMemoryLimit deploys a function under a 5Mi memory limit that it
// fits in: the exec probe, which would join the container's memory cgroup
// and be OOM-killed there, must not run, so the replica becomes ready,
// stays ready, and no OOM is reported.
func TestTinyMemoryLimit(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	// Pinned to one replica: the load below is over CE's 5 requests/s,
	// which would otherwise (rightly) add replicas.
	d.mustEmber("deploy", "echo", "--image", e.echo, "--memory-limit", "5Mi", "--timeout", "30s",
		"--label", "com.openfaas.scale.max=1")
	f := d.waitFor("echo", "ready", 30*time.Second, exactlyReady(1))
	id := f.Instances[0].ID
	deadline := time.Now().Add(15 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		if _, _, err := d.call("GET", "/function/echo/", ""); err != nil {
			t.Fatalf("request %d: %v", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	f = d.describe("echo")
	if len(f.Instances) != 1 {
		t.Fatalf("replicas %+v, want one", f.Instances)
	}
	r := f.Instances[0]
	if r.ID != id || r.State != function.StateReady || r.Restarts != 0 || r.LastExit != "" {
		t.Errorf("after 15s: %+v, want %s still ready, never restarted", r, id)
	}
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if strings.Contains(line, "OOM") || strings.Contains(line, "probe") && strings.Contains(line, "level=WARN") {
			t.Errorf("daemon log: %s", line)
		}
	}
}
